package uplink

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The domain must stay pure: it decides, others touch the kernel. net/netip is allowed: it is
// address values, not networking.
func TestUplinkImportsNoNetworking(t *testing.T) {
	forbidden := []string{"net", "net/http", "syscall", "os/exec", "golang.org/x/sys", "github.com/vishvananda", "github.com/prometheus-community", "github.com/google/nftables", "github.com/coreos", "github.com/uplinkd/uplinkd/"}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "net/netip" {
				continue
			}
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") || (strings.HasSuffix(bad, "/") && strings.HasPrefix(path, bad)) {
					t.Errorf("%s imports %s", f, path)
				}
			}
		}
	}
}
