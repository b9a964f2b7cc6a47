// Package testkit is what the project's tests share: the root check, namespace labs, the
// uplinkd binary built once per test binary, and golden files. Only tests import it, so the
// testing package never ships inside a binary.
package testkit

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/vishvananda/netns"
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
	NeedRoot(tb) // it runs only in labs, which need root; and a normal user need not build it
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

var nsSeq atomic.Int32

// Netns adds an empty network namespace, with lo up, named after this process and tag, and
// deletes it when tb ends, whether it passed or not. It needs root (see NeedRoot).
func Netns(tb testing.TB, tag string) string {
	tb.Helper()
	name := fmt.Sprintf("tk%d-%d%s", os.Getpid(), nsSeq.Add(1), tag)
	Run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	Run(tb, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// NsHandle opens the namespace called name for tb's duration.
func NsHandle(tb testing.TB, name string) netns.NsHandle {
	tb.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		tb.Fatalf("open namespace %s: %v", name, err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// Run runs a command and fails tb with its output when it fails.
func Run(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// WaitUntil polls ok every 20 ms until it holds or limit passes (then the test fails, naming
// what it waited for), and returns how long it took: the one bounded wait of the tests, so an
// outcome is asserted, never a timing that load can stretch.
func WaitUntil(tb testing.TB, limit time.Duration, what string, ok func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for {
		if ok() {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			tb.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
