package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

func probesThrough(t *testing.T, lab *netlab.Lab, isp int, over time.Duration) uint64 {
	t.Helper()
	before, err := lab.Counters(isp)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(over) // an upper bound: a busy machine only sends fewer
	after, err := lab.Counters(isp)
	if err != nil {
		t.Fatal(err)
	}
	return after.Sub(before).UpICMP
}

// waitProbesThrough waits (bounded by limit) until n probes have left through isp, and says
// how long that took: a lower bound asserted as an outcome, which load cannot turn red.
func waitProbesThrough(t *testing.T, lab *netlab.Lab, isp int, n uint64, limit time.Duration) time.Duration {
	t.Helper()
	before, err := lab.Counters(isp)
	if err != nil {
		t.Fatal(err)
	}
	return waitUntil(t, limit, fmt.Sprintf("%d probes through isp%d", n, isp), func() bool {
		after, err := lab.Counters(isp)
		return err == nil && after.Sub(before).UpICMP >= n
	})
}

// TestAMeteredBackupIsProbedGentlyAndStillTakesOver: isp2 is a metered backup. Idle, it gets
// one probe every 15 s (counted where it leaves, in isp2's namespace); when isp1 dies it is
// probed at full rate and takes over as a non-metered backup would.
func TestAMeteredBackupIsProbedGentlyAndStillTakesOver(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	cfg := fastConfig()
	cfg.UplinkKeys[1] = "metered = true"
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	d.waitFor("isp2 probed gently", 5*time.Second, func(st api.Status) bool { return st.Uplink("isp2").ProbeMode == "gentle" })

	if n := probesThrough(t, lab, 2, 3*time.Second); n > 1 {
		t.Errorf("%d probes left through the idle metered isp2 in 3 s; want at most 1 (one every 15 s)", n)
	}
	// isp1 is not metered: 3 targets every 100 ms, where a gentle uplink sends one in 15 s.
	took := waitProbesThrough(t, lab, 1, 15, 10*time.Second)
	t.Logf("15 probes through isp1 in %s", took)

	cut := time.Now()
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(5*time.Second, "isp2")
	t.Logf("the metered backup took over %s after the cut", time.Since(cut))
	st := d.status()
	if u := st.Uplink("isp2"); u.ProbeMode != "full" || u.ProbeBytes == 0 || !u.Metered {
		t.Errorf("isp2 carrying: %+v; want probed fully, its probe bytes counted", u)
	}
}

// TestTrafficThatProvesLifeThinsTheProbesAndDetectionStaysFast: a long-lived flow keeps isp1's
// connections receiving, so isp1 gets one target per round; a silent failure is still caught
// by the confirmation rounds.
func TestTrafficThatProvesLifeThinsTheProbesAndDetectionStaysFast(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	flow, err := lab.StartFlow(netlab.FlowOptions{SrcPort: 40100, ReplyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer flow.Stop()
	d.waitFor("isp1 probed sparsely", 5*time.Second, func(st api.Status) bool { return st.Uplink("isp1").ProbeMode == "sparse" })
	if n := probesThrough(t, lab, 1, 2*time.Second); n > 25 {
		t.Errorf("%d probes through isp1 in 2 s while its traffic proves it alive; want about one per round (20)", n)
	}
	cut := time.Now()
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	t.Logf("silent failure of a sparsely probed isp1 detected %s after the cut", time.Since(cut))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := flow.WaitReply(ctx, time.Now()); err != nil {
		t.Errorf("the flow did not come back through isp2: %v", err)
	}
}
