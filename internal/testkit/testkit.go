// Package testkit is what the project's tests share: the root check, namespace labs, the
// uplinkd binary built once per test binary, and golden files. Only tests import it, so the
// testing package never ships inside a binary.
package testkit

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// SkipReason is the message root-only tests skip with.
const SkipReason = "needs root: builds network namespaces"

// NeedRoot skips tb unless it runs as root.
func NeedRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip(SkipReason)
	}
}

// Lab builds a namespace lab for tb, or skips tb when not root. The lab is removed when tb
// ends; if tb failed, the gateway's addresses, routes, rules and nftables are logged first.
func Lab(tb testing.TB, opts netlab.Options) *netlab.Lab {
	tb.Helper()
	NeedRoot(tb)
	l, err := netlab.New(opts)
	if err != nil {
		tb.Fatalf("build lab: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("gateway state at failure:\n%s", l.Dump(netlab.RoleGW))
		}
		if err := l.Close(); err != nil {
			tb.Errorf("remove lab: %v", err)
		}
	})
	return l
}

// Uplinkd returns the path of cmd/uplinkd built once for this test binary; a failed build
// fails tb. Packages that use it call Main from TestMain.
func Uplinkd(tb testing.TB) string {
	tb.Helper()
	bin, err := netlab.SharedUplinkd()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// Main is a TestMain for packages that use Uplinkd: it runs the tests, removes the shared
// binary and exits.
func Main(m *testing.M) {
	code := m.Run()
	netlab.RemoveSharedUplinkd()
	os.Exit(code)
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

// Golden compares got with the file at path; with -update it writes got there instead.
func Golden(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
