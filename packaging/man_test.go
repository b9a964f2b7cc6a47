package packaging

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The configuration is documented twice, in the README's reference and in uplinkd.toml(5), and
// defined once, in uplink/config's raw* structs. These tests keep the three naming the
// same keys in the same tables, so that none of them can drift.

// tables are the parts of the file, as both documents head them, and the struct behind each.
var tables = []struct{ name, rawType string }{
	{"[daemon]", "rawDaemon"},
	{"[defaults]", "rawProbe"},
	{"[[uplink]]", "rawUplink"},
	{"[[service]]", "rawService"},
	{"[ha]", "rawHA"},
	{"[[hook]]", "rawHook"},
	{"[dns]", "rawDNS"},
	{"[[dns.name]]", "rawDNSName"},
	{"[dns.update]", "rawUpdate"},
	{"[dns.check]", "rawCheck"},
	{"[[site]]", "rawSite"},
	{"[ipv6]", "rawIPv6"},
}

func TestManPageREADMEAndCodeNameTheSameKeys(t *testing.T) {
	man := manKeys(t, "man/uplinkd.toml.5.md")
	readme := readmeKeys(t, "../README.md")
	code, embeds := codeKeys(t, "../uplink/config")
	for _, tb := range tables {
		t.Run(tb.name, func(t *testing.T) {
			m, r, c := man[tb.name], readme[tb.name], code[tb.rawType]
			if len(c) == 0 {
				t.Fatalf("no toml keys found in config.%s: update this test with the code", tb.rawType)
			}
			if !reflect.DeepEqual(m, c) {
				t.Errorf("uplinkd.toml(5) documents %v; the code (config.%s) reads %v", m, tb.rawType, c)
			}
			if !reflect.DeepEqual(r, c) {
				t.Errorf("the README documents %v; the code (config.%s) reads %v", r, tb.rawType, c)
			}
		})
	}
	// An [[uplink]] takes every [defaults] key too: both documents must say so.
	if !embeds["rawUplink+rawProbe"] {
		t.Fatal("config.rawUplink no longer embeds rawProbe: update this test and the documents")
	}
	for doc, text := range map[string]string{"README.md": readFile(t, "../README.md"), "uplinkd.toml(5)": readFile(t, "man/uplinkd.toml.5.md")} {
		if !regexp.MustCompile("(?i)any (key of )?`?\\*{0,2}\\[defaults\\]").MatchString(text) {
			t.Errorf("%s does not say that an [[uplink]] may override any [defaults] key", doc)
		}
	}
}

// manKeys reads the definition-list terms ("**key** = *type*") under each table's heading.
func manKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	table := ""
	term := regexp.MustCompile(`\*\*([a-z0-9_]+)\*\* =`)
	for _, line := range strings.Split(readFile(t, path), "\n") {
		if strings.HasPrefix(line, "# ") {
			table = tableIn(line)
			continue
		}
		if table == "" || line == "" || line[0] == ' ' || line[0] == ':' {
			continue
		}
		for _, m := range term.FindAllStringSubmatch(line, -1) {
			out[table] = append(out[table], m[1])
		}
	}
	return sorted(out)
}

// readmeKeys reads the first column of the tables under "## Configuration".
func readmeKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	text := readFile(t, path)
	start := strings.Index(text, "\n## Configuration\n")
	if start < 0 {
		t.Fatalf("%s has no '## Configuration' section", path)
	}
	text = text[start+1:]
	if end := strings.Index(text[3:], "\n## "); end >= 0 {
		text = text[:end+3]
	}
	out := map[string][]string{}
	table := ""
	key := regexp.MustCompile("`([a-z0-9_]+)`")
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "### ") {
			table = tableIn(line)
			continue
		}
		if table == "" || !strings.HasPrefix(line, "| ") {
			continue
		}
		first := strings.TrimSpace(strings.Split(line, "|")[1])
		if first == "key" || strings.HasPrefix(first, "any ") {
			continue // the header row; "any [defaults] key"
		}
		for _, m := range key.FindAllStringSubmatch(first, -1) {
			out[table] = append(out[table], m[1])
		}
	}
	return sorted(out)
}

// tableIn returns which table a heading is about, or "".
func tableIn(heading string) string {
	for _, tb := range slices.Backward(tables) { // [[uplink]] before [uplink]-like substrings
		if strings.Contains(heading, tb.name) {
			return tb.name
		}
	}
	return ""
}

// codeKeys returns the toml tags of every struct type in the Go package at dir, by type name,
// and which structs embed which ("A+B": struct A embeds B).
func codeKeys(t *testing.T, dir string) (keys map[string][]string, embeds map[string]bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	out := map[string][]string{}
	embeds = map[string]bool{}
	fset := token.NewFileSet()
	tag := regexp.MustCompile(`toml:"([^",]+)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, field := range st.Fields.List {
				if len(field.Names) == 0 {
					if id, ok := field.Type.(*ast.Ident); ok {
						embeds[ts.Name.Name+"+"+id.Name] = true
					}
					continue
				}
				if field.Tag == nil {
					continue
				}
				s, _ := strconv.Unquote(field.Tag.Value)
				if m := tag.FindStringSubmatch(s); m != nil {
					out[ts.Name.Name] = append(out[ts.Name.Name], m[1])
				}
			}
			return false
		})
	}
	return sorted(out), embeds
}

func sorted(m map[string][]string) map[string][]string {
	for _, v := range m {
		slices.Sort(v)
	}
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestManPagesAreNamedLikeTheirTitles checks NAME.SECTION.md starts with the title NAME SECTION,
// which go-md2man turns into the page's .TH line.
func TestManPagesAreNamedLikeTheirTitles(t *testing.T) {
	pages, _ := filepath.Glob("man/*.md")
	want := []string{"man/uplinkctl.1.md", "man/uplinkd.8.md", "man/uplinkd.toml.5.md"}
	if !slices.Equal(pages, want) {
		t.Errorf("man pages %v, want %v (nfpm.yaml installs exactly these)", pages, want)
	}
	for _, p := range pages {
		base := strings.TrimSuffix(filepath.Base(p), ".md")
		i := strings.LastIndexByte(base, '.')
		title := strings.ToUpper(base[:i]) + " " + base[i+1:] + " "
		if first, _, _ := strings.Cut(readFile(t, p), "\n"); !strings.HasPrefix(first, title) {
			t.Errorf("%s starts with %q, want %q...", p, first, title)
		}
		if !strings.Contains(readFile(t, "nfpm.yaml"), "dist/man/"+base+".gz") {
			t.Errorf("nfpm.yaml does not install %s", base)
		}
	}
}
