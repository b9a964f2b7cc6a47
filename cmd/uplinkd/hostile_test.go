package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink"
)

// complaints counts the daemon's WARN and ERROR lines that contain about.
func complaints(out, about string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) && strings.Contains(line, about) {
			n++
		}
	}
	return n
}

func TestAMissingInterfaceIsOneLineAndADownStateNotALogFlood(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	cfg := fastConfig()
	cfg.Extra = "\n[[uplink]]\nname = \"ppp\"\ninterface = \"ppp0\"\ngateway = \"192.0.2.254\"\npriority = 3\n"
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	// 20 probe rounds later (the window is full), the missing interface had 20 chances to flood.
	st := d.waitFor("20 probe rounds", 10*time.Second, func(st api.Status) bool { return st.Uplinks[0].Targets[0].Samples >= 20 })
	if ppp := st.Uplinks[2]; ppp.State != uplink.Down || !strings.Contains(ppp.Reason, "ppp0") {
		t.Errorf("ppp is %s (%s), want down naming ppp0", ppp.State, ppp.Reason)
	}
	out := string(d.proc.Output())
	if n := complaints(out, "ppp0"); n > 1 {
		t.Errorf("%d warnings or errors about ppp0 in 20 rounds, want at most 1:\n%s", n, out)
	}
	if strings.Contains(out, "routing: routing:") {
		t.Errorf("doubled prefix in the log")
	}
	if n := len(d.events.All()); n > 10 {
		t.Errorf("%d events in 20 rounds: %v", n, d.events.All())
	}
}

func TestARuleDeletedInALoopIsRepairedAtABoundedRate(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	owned := routingText(t, lab)
	before, err := d.d.Usage()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	deletions := 0
	for range 200 { // someone deletes our rule every 10 ms for about 2 s (bounded)
		if _, err := lab.Exec(t.Context(), netlab.RoleGW, "ip", "-4", "rule", "del", "pref", "1040"); err == nil {
			deletions++
		}
		time.Sleep(10 * time.Millisecond)
	}
	wall := time.Since(start)
	after, err := d.d.Usage()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the rule to come back after the fight", func() bool { return routingText(t, lab) == owned })
	out := string(d.proc.Output())
	repairs := strings.Count(out, "restored owned rules") + strings.Count(out, "keeps deleting")
	if repairs > 3 {
		t.Errorf("%d repair warnings during a %s fight, want at most 3 (rate-limited)", repairs, wall.Round(time.Millisecond))
	}
	if deletions < 5 {
		t.Errorf("only %d deletions found a rule to delete: repairs must still happen", deletions)
	}
	t.Logf("%d deletions in %s: uplinkd used %s CPU (%.1f%% of a core), %d repair warnings",
		deletions, wall.Round(time.Millisecond), after.CPU-before.CPU, 100*float64(after.CPU-before.CPU)/float64(wall), repairs)
}

// Passive evidence: every probe target stops answering ICMP, yet the LAN's flow through isp1
// keeps getting its replies: isp1 works, so it is not judged down; isp2, which carries
// nothing, is judged by its probes alone.
func TestRepliesForTheLANsConnectionsKeepAnUplinkWhoseProbesGoUnanswered(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	flow, err := lab.StartFlow(netlab.FlowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer flow.Stop()
	if err := lab.DropICMP(netlab.Targets4[:]...); err != nil {
		t.Fatal(err)
	}
	d.waitFor("isp2 judged down by its probes", 10*time.Second, func(st api.Status) bool { return st.Uplinks[1].State == uplink.Down })
	st := d.waitFor("another 20 rounds", 10*time.Second, func(st api.Status) bool { return st.Uplinks[0].Targets[0].Loss >= 99 })
	if st.Uplinks[0].State == uplink.Down || !slices.Equal(st.Active, []string{"isp1"}) {
		t.Errorf("isp1 is %s and active is %v: its connections' replies prove it works", st.Uplinks[0].State, st.Active)
	}
	for _, tr := range d.events.Transitions("isp1") {
		if strings.HasSuffix(tr, "down") {
			t.Errorf("isp1 went down: %v", d.events.Transitions("isp1"))
		}
	}
}
