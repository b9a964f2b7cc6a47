package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/testkit"
)

// testBinary builds cmd/uplinkd once per test run, for the root tests of demo and bench.
func testBinary(t *testing.T) string { return testkit.Uplinkd(t) }

func TestMain(m *testing.M) { testkit.Main(m) }

// needRootTest skips t unless it runs as root.
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

func TestTheTunedConfigJudgesASilentFailureWithinHalfASecond(t *testing.T) {
	c := tunedConfig
	// Worst case: the cut falls just after a round was answered, so the first failed round
	// starts up to one interval later; the down_after-th failed round then times out.
	worst := time.Duration(c.DownAfter)*c.Interval + c.Timeout
	if worst > 500*time.Millisecond {
		t.Errorf("tuned config judges a silent failure after up to %s, want ≤ 0.5 s", worst)
	}
	if c.Timeout > 2*c.Interval {
		t.Errorf("timeout %s is more than two rounds of %s: rounds would pile up", c.Timeout, c.Interval)
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
