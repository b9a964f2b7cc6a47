package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestSelectScenarios(t *testing.T) {
	tests := []struct {
		name string
		only string
		want []string // nil: all twelve
		ok   bool
	}{
		{"nothing selects every scenario", "", nil, true},
		{"a full name selects one", "silent/masquerade/tuned", []string{"silent/masquerade/tuned"}, true},
		{"empty parts match everything", "carrier//default", []string{"carrier/masquerade/default", "carrier/snat/default"}, true},
		{"a star matches everything", "*/snat/tuned", []string{"silent/snat/tuned", "carrier/snat/tuned", "loss30/snat/tuned"}, true},
		{"a short pattern leaves the rest open", "loss30/snat", []string{"loss30/snat/default", "loss30/snat/tuned"}, true},
		{"several patterns add up in run order", "silent/snat/tuned,silent/masquerade/tuned", []string{"silent/masquerade/tuned", "silent/snat/tuned"}, true},
		{"an unknown fault is an error", "flood//", nil, false},
		{"too many parts is an error", "a/b/c/d", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectScenarios(tt.only)
			if (err == nil) != tt.ok {
				t.Fatalf("selectScenarios(%q) error %v, want ok=%v", tt.only, err, tt.ok)
			}
			if !tt.ok {
				return
			}
			var names []string
			for _, s := range got {
				names = append(names, s.String())
			}
			if tt.want == nil {
				if len(names) != 12 {
					t.Errorf("got %d scenarios, want 12", len(names))
				}
				return
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("got %v, want %v", names, tt.want)
			}
		})
	}
}

func TestMedianMax(t *testing.T) {
	tests := []struct {
		name      string
		v         []float64
		med, most float64
	}{
		{"one value is both", []float64{3}, 3, 3},
		{"an odd count takes the middle", []float64{5, 1, 3}, 3, 5},
		{"an even count averages the middle two", []float64{4, 1, 2, 10}, 3, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := medianMax(tt.v)
			if s == nil || s.Median != tt.med || s.Max != tt.most {
				t.Errorf("medianMax(%v) = %+v, want %g/%g", tt.v, s, tt.med, tt.most)
			}
		})
	}
	if medianMax(nil) != nil {
		t.Error("no values gave a figure")
	}
}

func TestOutageAfterSkipsOutagesThatEndedBeforeTheCut(t *testing.T) {
	t0 := time.Now()
	r := netlab.FlowReport{Outages: []netlab.Outage{
		{Start: t0.Add(-2 * time.Second), End: t0.Add(-time.Second), Lost: 3},
		{Start: t0.Add(10 * time.Millisecond), End: t0.Add(600 * time.Millisecond), Lost: 59},
	}}
	o, ok := outageAfter(r, t0)
	if !ok || o.Lost != 59 {
		t.Errorf("outageAfter = %+v, %v; want the 59-datagram outage", o, ok)
	}
	if _, ok := outageAfter(r, t0.Add(time.Second)); ok {
		t.Error("found an outage after the last one")
	}
}

func TestSummarizeKeepsUnmeasuredFiguresOut(t *testing.T) {
	s := scenario{Fault: netlab.Loss30, NAT: netlab.NATSNAT, Config: "tuned"}
	runs := []runResult{
		{RestoreFlow: -1, RestoreNew: time.Second, Failback: 2 * time.Second, Switch: time.Millisecond, Moved: time.Second, Flaps: 1, FlowLoss: 30, Usage: netlab.Usage{CPU: time.Second, VmHWM: 20 << 20}},
		{RestoreFlow: -1, RestoreNew: 3 * time.Second, Failback: 4 * time.Second, Switch: 3 * time.Millisecond, Moved: 3 * time.Second, Flaps: 2, FlowLoss: 20, Usage: netlab.Usage{CPU: time.Second, VmHWM: 18 << 20}},
	}
	r := summarize(s, runs, []string{"run 3: boom"})
	if r.RestoreFlow != nil {
		t.Errorf("restore_flow %+v, want none for loss30", r.RestoreFlow)
	}
	if r.RestoreNew == nil || r.RestoreNew.Median != 2000 || r.RestoreNew.Max != 3000 {
		t.Errorf("restore_new %+v, want 2000/3000 ms", r.RestoreNew)
	}
	if r.Flaps == nil || r.Flaps.Max != 2 || r.FlowLoss == nil || r.FlowLoss.Median != 25 {
		t.Errorf("flaps %+v, flow loss %+v", r.Flaps, r.FlowLoss)
	}
	if r.VmHWMKiB != 20<<10 || r.Runs != 2 || len(r.Errors) != 1 {
		t.Errorf("vmhwm %d KiB, runs %d, errors %v", r.VmHWMKiB, r.Runs, r.Errors)
	}
	if !strings.Contains(r.Target, "as fast as masquerade") {
		t.Errorf("an SNAT scenario's target %q does not compare it with masquerade", r.Target)
	}
}

func TestOneBenchRunGivesPositiveFiguresAndValidJSON(t *testing.T) {
	testkit.NeedRoot(t)
	bin := testBinary(t)
	path := filepath.Join(t.TempDir(), "bench.json")
	var out, progress bytes.Buffer
	err := runBench(context.Background(), []string{"-runs", "1", "-only", "silent/masquerade/tuned", "-idle", "1s", "-json", path, "-uplinkd", bin}, &out, &progress)
	t.Logf("table:\n%s\nprogress:\n%s", out.String(), progress.String())
	if err != nil {
		t.Fatalf("bench failed: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the JSON does not parse: %v\n%s", err, b)
	}
	if len(rep.Scenarios) != 1 {
		t.Fatalf("%d scenarios in the report, want 1", len(rep.Scenarios))
	}
	s := rep.Scenarios[0]
	if s.Fault != "silent" || s.NAT != "masquerade" || s.Config != "tuned" || s.Runs != 1 || len(s.Errors) != 0 {
		t.Fatalf("scenario %s/%s/%s: %d runs, errors %v", s.Fault, s.NAT, s.Config, s.Runs, s.Errors)
	}
	for name, st := range map[string]*stat{"restore_flow": s.RestoreFlow, "restore_new": s.RestoreNew, "failback": s.Failback, "switch": s.Switch, "moved": s.Moved, "cpu": s.CPU} {
		if st == nil || st.Median <= 0 || st.Max < st.Median {
			t.Errorf("%s = %+v, want a positive median no larger than the max", name, st)
		}
	}
	if s.VmHWMKiB <= 0 {
		t.Errorf("vmhwm %d KiB, want positive", s.VmHWMKiB)
	}
	if len(rep.Idle) != 2 {
		t.Fatalf("%d idle figures, want default and tuned", len(rep.Idle))
	}
	for _, r := range rep.Idle {
		if r.VmHWMKiB <= 0 || r.CPUPercent < 0 || r.Seconds <= 0 {
			t.Errorf("idle %s: %+v, want a positive VmHWM and period", r.Config, r)
		}
	}
	if !strings.Contains(out.String(), "restore_flow") || !strings.Contains(out.String(), "dpinger") {
		t.Errorf("the table lacks its header or the reference points:\n%s", out.String())
	}
	if s.FailbackTCP == nil || s.FailbackTCP.Runs != 1 {
		t.Errorf("failback_tcp %+v, want a verdict for the one run", s.FailbackTCP)
	}
	if len(rep.Drain) != 1 {
		t.Fatalf("%d drain figures, want one for masquerade", len(rep.Drain))
	}
	if dr := rep.Drain[0]; dr.Runs != 1 || dr.DrainTCP == nil || dr.NewTCP == nil || dr.NewTCP.Median <= 0 || len(dr.Errors) != 0 {
		t.Errorf("drain %+v, want one run with a verdict and a positive new_tcp", dr)
	}
	if !strings.Contains(out.String(), "failback_tcp") || !strings.Contains(out.String(), "drain_tcp") {
		t.Errorf("the table lacks failback_tcp or the drain table:\n%s", out.String())
	}
}
