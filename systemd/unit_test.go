package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const unitFile = "uplinkd.service"

// TestUnitPassesSystemdAnalyzeVerify runs systemd's own checker on the unit, including its
// check that the man pages named in Documentation= exist: they are rendered from
// packaging/man/*.md with the converter the package build uses, into a MANPATH of their own.
// The packaged binaries are not installed here, so a copy of the unit points at stubs.
func TestUnitPassesSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: cannot verify the unit")
	}
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("man is not installed: systemd-analyze verify cannot check Documentation=man: (install man-db)")
	}
	src, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit := src
	for _, bin := range []string{"/usr/sbin/uplinkd", "/usr/bin/uplinkctl"} {
		stub := filepath.Join(dir, filepath.Base(bin))
		if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(unit, []byte("="+bin+" ")) {
			t.Fatalf("the unit no longer runs %s: update this test with the unit", bin)
		}
		unit = bytes.ReplaceAll(unit, []byte("="+bin+" "), []byte("="+stub+" "))
	}
	path := filepath.Join(dir, unitFile)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	manpath := renderManPages(t, filepath.Join(dir, "man"))

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(analyze, "verify", path)
	cmd.Env = append(os.Environ(), "MANPATH="+manpath)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	// verify exits 0 on warnings; any word on stderr is a finding.
	if err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s%s", err, stdout.String(), stderr.String())
	}
}

// renderManPages converts ../packaging/man/NAME.SECTION.md into dir/manSECTION/NAME.SECTION
// with the go-md2man that packaging/build.sh pins, and returns dir.
func renderManPages(t *testing.T, dir string) string {
	t.Helper()
	build, err := os.ReadFile("../packaging/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^MD2MAN=(\S+@v\S+)`).FindSubmatch(build)
	if m == nil {
		t.Fatal("packaging/build.sh has no MD2MAN=module@version line")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not in PATH: cannot render the man pages")
	}
	tools := t.TempDir()
	install := exec.Command(goCmd, "install", string(m[1]))
	install.Env = append(os.Environ(), "GOBIN="+tools, "GOOS=", "GOARCH=", "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install %s (needs the module proxy or the module cache): %v\n%s", m[1], err, out)
	}
	pages, err := filepath.Glob("../packaging/man/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no man pages in ../packaging/man: %v", err)
	}
	for _, md := range pages {
		name := strings.TrimSuffix(filepath.Base(md), ".md") // uplinkd.8
		section := name[strings.LastIndexByte(name, '.')+1:]
		out := filepath.Join(dir, "man"+section, name)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		conv := exec.Command(filepath.Join(tools, "go-md2man"), "-in", md, "-out", out)
		if b, err := conv.CombinedOutput(); err != nil || len(b) > 0 {
			t.Fatalf("go-md2man %s: %v\n%s", md, err, b)
		}
	}
	return dir
}

// TestSecurityExposure keeps the sandbox tight: systemd's own score of the unit's exposure
// (0 = locked down, 10 = nothing restricted) must stay at 2.0 or below. The unit explains each
// item that is still exposed.
func TestSecurityExposure(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: cannot score the unit")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(analyze, "security", "--offline=true", "--no-pager", unitFile)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// Exits non-zero only with --threshold; anything else is a failure to run.
		t.Fatalf("systemd-analyze security: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d)`).FindSubmatch(stdout.Bytes())
	if m == nil {
		t.Fatalf("no overall exposure in the output:\n%s%s", stdout.String(), stderr.String())
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exposure %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0:\n%s", score, stdout.String())
	}
}

// TestUnitKeepsItsPromises pins the settings other parts of uplinkd rely on.
func TestUnitKeepsItsPromises(t *testing.T) {
	unit := parseUnit(t, unitFile)
	tests := []struct {
		name, key, want string
	}{
		{"readiness comes from sd_notify", "Service.Type", "notify"},
		{"the daemon reads the packaged config", "Service.ExecStart", "/usr/sbin/uplinkd --config /etc/uplinkd/uplinkd.toml"},
		{"reload waits for the verdict, so a refused file fails the reload", "Service.ExecReload", "/usr/bin/uplinkctl reload"},
		{"the man pages", "Unit.Documentation", "man:uplinkd(8) man:uplinkctl(1) man:uplinkd.toml(5) https://github.com/uplinkd/uplinkd"},
		{"the watchdog is 10s, pinged at half", "Service.WatchdogSec", "10"},
		{"a crash restarts it after a second", "Service.Restart", "on-failure"},
		{"restart delay", "Service.RestartSec", "1"},
		{"the daemon may write its socket directory, nothing else", "Service.ReadWritePaths", "-/run/uplinkd"},
		{"what outlives a restart is in /var/lib/uplinkd (the default state_file)", "Service.StateDirectory", "uplinkd"},
		{"the state is root's alone", "Service.StateDirectoryMode", "0700"},
		{"only the three network capabilities are kept", "Service.CapabilityBoundingSet", "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE"},
		{"netlink is allowed", "Service.RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"},
		{"the file system is read-only", "Service.ProtectSystem", "strict"},
		{"it starts at boot once enabled", "Install.WantedBy", "multi-user.target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unit[tt.key]; len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
	t.Run("the socket directory is made, then given to the socket group when it exists, never failing the start", func(t *testing.T) {
		want := []string{"+/usr/bin/install -d -o root -g root -m 0755 /run/uplinkd", "-+/usr/bin/install -d -o root -g uplinkd -m 2755 /run/uplinkd"}
		if got := unit["Service.ExecStartPre"]; !slices.Equal(got, want) {
			t.Errorf("ExecStartPre = %q, want %q", got, want)
		}
	})
	t.Run("no RuntimeDirectory: systemd would give the directory back to root:root before every command", func(t *testing.T) {
		for _, key := range []string{"Service.RuntimeDirectory", "Service.RuntimeDirectoryMode"} {
			if got := unit[key]; len(got) > 0 {
				t.Errorf("%s = %q", key, got)
			}
		}
	})
	t.Run("no cleanup on stop: the routes stay (fail static)", func(t *testing.T) {
		if got := unit["Service.ExecStopPost"]; len(got) > 0 {
			t.Errorf("ExecStopPost = %q", got)
		}
	})
	t.Run("no setting that fails the start when the group uplinkd is missing", func(t *testing.T) {
		for _, key := range []string{"Service.SupplementaryGroups", "Service.Group", "Service.DynamicUser"} {
			if got := unit[key]; len(got) > 0 {
				t.Errorf("%s = %q", key, got)
			}
		}
	})
	t.Run("no CAP_CHOWN: the socket group comes from the directory", func(t *testing.T) {
		for _, key := range []string{"Service.CapabilityBoundingSet", "Service.AmbientCapabilities"} {
			for _, v := range unit[key] {
				if strings.Contains(v, "CAP_CHOWN") {
					t.Errorf("%s = %q", key, v)
				}
			}
		}
	})
	t.Run("it never runs as another user, which would lose netlink rights", func(t *testing.T) {
		if got := unit["Service.User"]; len(got) > 0 && !slices.Equal(got, []string{"root"}) {
			t.Errorf("User = %q", got)
		}
	})
}

// parseUnit reads "Section.Key" → values; enough of the unit syntax for our own file (no line
// continuations).
func parseUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: cannot read %q", path, n, line)
			}
			out[section+"."+strings.TrimSpace(k)] = append(out[section+"."+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
