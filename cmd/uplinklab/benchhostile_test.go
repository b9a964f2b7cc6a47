package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestBenchHostileRefusesBadFlagsBeforeBuildingAnything(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"more readers than the daemon admits", []string{"-readers", "100"}, "want 0 to 60"},
		{"an unknown scenario", []string{"-only", "status_flood,bogus"}, `unknown scenario "bogus"`},
		{"more than 250 uplinks", []string{"-sizes", "251x2"}, "N in 1..250"},
		{"a fight shorter than a second", []string{"-fight", "10ms"}, "want 1s to 1h"},
		{"no flaps", []string{"-flaps", "0"}, "want 1 to 100000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := cmdBenchHostile(context.Background(), tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTheStormScriptAddsAndDeletesDistinctDocumentationRoutes(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(stormScript(70000)), "\n")
	if len(lines) != 140000 {
		t.Fatalf("%d lines, want 140000", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines[:70000] {
		f := strings.Fields(l)
		if len(f) != 6 || f[1] != "add" || !strings.HasPrefix(f[3], "2001:db8:f") || f[5] != "4242" {
			t.Fatalf("unexpected line %q", l)
		}
		if seen[f[3]] {
			t.Fatalf("route %s added twice", f[3])
		}
		seen[f[3]] = true
	}
	if !strings.HasPrefix(lines[70000], "route del blackhole 2001:db8:f000:0::/64") {
		t.Errorf("deletions start with %q", lines[70000])
	}
}

func TestPercentileTakesTheNearestRank(t *testing.T) {
	v := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5}, {0.95, 10}, {1, 10}, {0, 1}} {
		if got := percentile(v, tt.p); got != tt.want {
			t.Errorf("percentile(%g) = %d, want %d", tt.p, got, tt.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("no values should give 0")
	}
}

// tinyHostile is the benchmark with parameters small enough for CI (a few seconds per
// scenario); its output goes to the test log. The scenarios' labs are independent, so their
// tests run in parallel: what they assert does not depend on timing.
func tinyHostile(t *testing.T) (*hostile, *bytes.Buffer) {
	testkit.NeedRoot(t)
	t.Parallel()
	var out bytes.Buffer
	return &hostile{
		bin: testBinary(t),
		opt: hostileOptions{
			Runs: 1, Readers: 10, Conns: 300, FloodWindow: 2 * time.Second,
			Fight: 2 * time.Second, FightEvery: 10 * time.Millisecond,
			Sizes: []scaleSize{{63, 8}}, ScaleWindow: time.Second,
			Flaps: 4, Idle: time.Second, StormRoutes: 20000,
		},
		out:      &out,
		progress: testWriter{t},
	}, &out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runScenario runs one scenario and returns its JSON line decoded into rep.
func runScenario(t *testing.T, name string, rep any) {
	t.Helper()
	h, out := tinyHostile(t)
	err := h.scenario(context.Background(), name)
	t.Logf("%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], name+": ") {
		t.Fatalf("want a human line and a JSON line, got %q", out.String())
	}
	if err := json.Unmarshal([]byte(lines[1]), rep); err != nil {
		t.Fatalf("JSON line: %v", err)
	}
}

func TestStatusFloodIsReadByNonRootWhileRootIsAnsweredAndIsp2TakesOver(t *testing.T) {
	var r floodReport
	runScenario(t, "status_flood", &r)
	if !r.ReadersNonRoot {
		t.Error("the readers were not refused a change: they did not count as non-root")
	}
	if r.ReaderRequests == 0 || r.RootSamples == 0 || r.RootErrors != 0 {
		t.Errorf("reader requests %d, root samples %d, root errors %d", r.ReaderRequests, r.RootSamples, r.RootErrors)
	}
	if r.Conntrack < r.Conns {
		t.Errorf("conntrack held %d entries, want ≥ %d", r.Conntrack, r.Conns)
	}
	if !r.Targets.Threads {
		t.Errorf("uplinkd had %d threads, want ≤ 64", r.ThreadsMax)
	}
	if r.FailoverMS == nil {
		t.Error("no failover figure")
	}
}

func TestAFightOverARuleEndsWithTheRuleBackAndOneWarningOfEachKind(t *testing.T) {
	var r fightReport
	runScenario(t, "fight", &r)
	if !r.Back {
		t.Error("the rule did not come back after the fight")
	}
	if r.Deleted == 0 {
		t.Error("the fight never found the rule to delete")
	}
	if r.RestoredLines != 1 || r.FightLines > 1 {
		t.Errorf("%d 'restored' and %d 'keeps deleting' lines in a %s fight, want 1 and at most 1", r.RestoredLines, r.FightLines, time.Duration(r.Seconds*float64(time.Second)))
	}
}

func TestSixtyThreeUplinksArePinnedWithoutAnError(t *testing.T) {
	var r manyReport
	runScenario(t, "many_uplinks", &r)
	if len(r.Runs) != 1 {
		t.Fatalf("%d sizes reported, want 1", len(r.Runs))
	}
	m := r.Runs[0]
	if m.Errors != 0 {
		t.Errorf("%d ERROR lines, e.g. %q", m.Errors, m.FirstErrors)
	}
	if !m.Pinned {
		t.Errorf("%d pin chains for %d uplinks", m.PinChains, m.Uplinks)
	}
}

func TestFlapsLeaveTheKernelAsTheyFoundIt(t *testing.T) {
	var r soakReport
	runScenario(t, "soak", &r)
	if r.FlapsDone != r.Flaps {
		t.Errorf("%d of %d flaps done", r.FlapsDone, r.Flaps)
	}
	if !r.RulesSame || !r.RoutesSame || r.Before.NftLines != r.After.NftLines {
		t.Errorf("owned state changed: rules same %t, routes same %t, nft lines %d → %d", r.RulesSame, r.RoutesSame, r.Before.NftLines, r.After.NftLines)
	}
	if r.Before.Goroutines == 0 {
		t.Error("no go_goroutines from the metrics listener")
	}
}

func TestANetlinkStormLeavesRulesRoutesAndTheActiveUplinkIntact(t *testing.T) {
	var r enobufsReport
	runScenario(t, "monitor_enobufs", &r)
	if !r.Targets.Intact {
		t.Errorf("state changed: rules intact %t, routes intact %t, active %v → %v", r.RulesIntact, r.RoutesIntact, r.ActiveBefore, r.ActiveAfter)
	}
	if r.ErrorLines != 0 {
		t.Errorf("%d ERROR lines after the storm", r.ErrorLines)
	}
}
