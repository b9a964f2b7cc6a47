package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// testBinary builds cmd/uplinkd once per test run, for the root tests of demo and bench.
func testBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "uplinklab-test-")
		if buildErr == nil {
			builtBin, buildErr = uplinkdBinary(context.Background(), "", buildDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// needRootTest skips t unless it runs as root.
func needRootTest(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(netlab.SkipReason)
	}
}

// labNamespaces lists the namespaces whose names start with prefix-.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var found []string
	for line := range strings.Lines(string(out)) {
		if name, _, _ := strings.Cut(strings.TrimSpace(line), " "); strings.HasPrefix(name, prefix+"-") {
			found = append(found, name)
		}
	}
	return found
}

// uniquePrefix is a lab prefix no other test run uses.
func uniquePrefix(tag string) string {
	return tag + strconv.FormatInt(int64(os.Getpid()), 36)
}

func TestParseStatTicksCountsFieldsAfterTheCommandName(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want int64
		ok   bool
	}{
		{"a plain command name", "42 (uplinkd) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 8 0", 10, true},
		{"a name with spaces and parentheses", "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 120 30 0 0", 150, true},
		{"a line cut short", "42 (uplinkd) S 1 42", 0, false},
		{"no command name", "42 uplinkd S", 0, false},
		{"a non-number in utime", "42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 x 3 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatTicks(tt.stat)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseStatTicks = %d, %v; want %d, ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseStatusKiBFindsTheKey(t *testing.T) {
	status := "Name:\tuplinkd\nVmPeak:\t 1300000 kB\nVmHWM:\t   15896 kB\nVmRSS:\t   15000 kB\n"
	if got, err := parseStatusKiB(status, "VmHWM"); err != nil || got != 15896 {
		t.Errorf("VmHWM = %d, %v; want 15896", got, err)
	}
	if _, err := parseStatusKiB(status, "VmSwap"); err == nil {
		t.Error("a missing key gave no error")
	}
	if _, err := parseStatusKiB("VmHWM:\tlots\n", "VmHWM"); err == nil {
		t.Error("a malformed value gave no error")
	}
}

func TestReadUsageOfThisProcess(t *testing.T) {
	u, err := readUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.VmHWM <= 0 || u.CPU < 0 {
		t.Errorf("usage %+v: want a positive VmHWM and a non-negative CPU time", u)
	}
}

func TestIspOfNamesTheUplinkOfAnAddressTheServerSaw(t *testing.T) {
	tests := []struct{ via, want string }{
		{"198.51.100.2:40000", "isp1"},
		{"198.51.100.10:40000", "isp1"}, // isp1's SNAT address
		{"198.51.100.66", "isp2"},
		{"198.51.100.74:1", "isp2"},
		{"[2001:db8:12::2]:40000", "isp2"},
		{"192.0.2.10:1", "?"},
		{"", "?"},
	}
	for _, tt := range tests {
		if got := ispOf(tt.via); got != tt.want {
			t.Errorf("ispOf(%q) = %q, want %q", tt.via, got, tt.want)
		}
	}
}

func TestEventLogFindsAndCountsEventsFromATime(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var seen int
	l := &eventLog{onEvent: func(uplink.Event) { seen++ }}
	l.add(uplink.Event{Time: t0, Kind: "state", Uplink: "isp1", To: "down"})
	l.add(uplink.Event{Time: t0.Add(time.Second), Kind: "active", Active: []string{"isp2"}})
	l.add(uplink.Event{Time: t0.Add(2 * time.Second), Kind: "state", Uplink: "isp1", To: "up"})
	l.add(uplink.Event{Time: t0.Add(3 * time.Second), Kind: "active", Active: []string{"isp1"}})
	if seen != 4 {
		t.Errorf("onEvent saw %d events, want 4", seen)
	}
	if ev, ok := l.find(t0.Add(time.Second), activeIs("isp1")); !ok || !ev.Time.Equal(t0.Add(3*time.Second)) {
		t.Errorf("find active isp1 = %v, %v", ev, ok)
	}
	if _, ok := l.find(t0.Add(4*time.Second), activeIs("isp1")); ok {
		t.Error("find returned an event from before since")
	}
	if n := l.count(t0, t0.Add(2*time.Second), isp1State); n != 1 {
		t.Errorf("count = %d isp1 state changes in [0s, 2s), want 1", n)
	}
}
