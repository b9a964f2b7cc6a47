package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// monitor_enobufs: a storm of netlink route events in the gateway (routes added to and deleted
// from a table uplinkd does not own, as fast as ip -batch goes) overflows the receive buffer of
// uplinkd's netlink monitor. The kernel then drops events and the next read fails with
// ENOBUFS; uplinkd must notice ("netlink events were lost; re-learning every uplink"), learn
// everything again, and keep its rules, routes and active uplink.

const stormTable = 4242 // a table uplinkd does not own

const enobufsMethod = "monitor_enobufs: shipped config, standard lab; 2 s after ready, one `ip -force -batch` in the gateway " +
	"adds STORM IPv6 blackhole routes (2001:db8:f000::/36, /64 each) to table 4242 and deletes them again; resync = uplinkd's " +
	"'netlink events were lost; re-learning' lines (waited for up to 5 s after the storm); then rules and routes with " +
	"proto 85 (both families, all tables) compared line by line with before the storm (polled up to 10 s), and the " +
	"active set in the status."

type enobufsReport struct {
	reportError
	Scenario      string   `json:"scenario"`
	Routes        int      `json:"routes"`
	Events        int      `json:"events"` // route events the storm caused: adds + deletes
	StormS        float64  `json:"storm_s"`
	Resyncs       int      `json:"resync_log_lines"`
	Resubscribed  int      `json:"monitor_resubscribe_lines"`
	RulesIntact   bool     `json:"rules_intact"`
	RoutesIntact  bool     `json:"routes_intact"`
	IntactAfterMS float64  `json:"intact_after_ms"` // storm end → rules and routes equal to before
	ActiveBefore  []string `json:"active_before"`
	ActiveAfter   []string `json:"active_after"`
	ErrorLines    int      `json:"error_lines"`
	Targets       struct {
		Intact bool `json:"state_intact"` // rules, routes and the active set unchanged
	} `json:"targets_met"`
	Method string `json:"method"`
}

func (r *enobufsReport) human() string {
	return fmt.Sprintf("%d route events in %.2f s: %d resync lines (\"netlink events were lost; re-learning\"), rules intact %t, routes intact %t (after %.0f ms), active %v → %v (%s), %d ERROR lines",
		r.Events, r.StormS, r.Resyncs, r.RulesIntact, r.RoutesIntact, r.IntactAfterMS, r.ActiveBefore, r.ActiveAfter, yesNo(r.Targets.Intact), r.ErrorLines)
}

// stormScript adds n routes to stormTable and deletes them.
func stormScript(n int) string {
	var add, del strings.Builder
	for i := range n {
		p := fmt.Sprintf("2001:db8:f%03x:%x::/64", i>>16, i&0xffff)
		fmt.Fprintf(&add, "route add blackhole %s table %d\n", p, stormTable)
		fmt.Fprintf(&del, "route del blackhole %s table %d\n", p, stormTable)
	}
	return add.String() + del.String()
}

func (h *hostile) enobufs(ctx context.Context) (rep *enobufsReport, err error) {
	o := h.opt
	r := &enobufsReport{Scenario: "monitor_enobufs", Routes: o.StormRoutes, Events: 2 * o.StormRoutes, Method: enobufsMethod}
	lab, d, done, err := h.labDaemon(ctx, defaultConfig)
	if err != nil {
		return r, err
	}
	defer done(&err)
	sleepCtx(ctx, 2*time.Second)
	gw := lab.NS(netlab.RoleGW)
	rules0, routes0, err := netlab.Owned(gw)
	if err != nil {
		return r, err
	}
	st, err := d.Status(ctx)
	if err != nil {
		return r, err
	}
	r.ActiveBefore = st.Active
	script := stormScript(o.StormRoutes)
	h.logf("monitor_enobufs: %d route events", r.Events)
	outBefore := len(d.Proc().Output())
	took, err := netlab.IPBatch(gw, script)
	if err != nil {
		return r, err
	}
	stormEnd := time.Now()
	r.StormS = round(took.Seconds(), 2)
	resyncs := func() int {
		n, _ := countLines(string(d.Proc().Output()[outBefore:]), "netlink events were lost", 0)
		return n
	}
	for deadline := stormEnd.Add(5 * time.Second); resyncs() == 0 && time.Now().Before(deadline); { // bounded: 5 s
		sleepCtx(ctx, 50*time.Millisecond)
	}
	var rules1, routes1 []string
	for deadline := stormEnd.Add(10 * time.Second); ; { // bounded: 10 s
		if rules1, routes1, err = netlab.Owned(gw); err != nil {
			return r, err
		}
		r.RulesIntact, r.RoutesIntact = slices.Equal(rules0, rules1), slices.Equal(routes0, routes1)
		if r.RulesIntact && r.RoutesIntact {
			r.IntactAfterMS = ms(time.Since(stormEnd))
			break
		}
		if !time.Now().Before(deadline) {
			break
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	sleepCtx(ctx, time.Second) // anything the resync still changes shows in the status too
	if st, err = d.Status(ctx); err != nil {
		return r, fmt.Errorf("status after the storm: %w", err)
	}
	r.ActiveAfter = st.Active
	out := string(d.Proc().Output()[outBefore:])
	r.Resyncs = resyncs()
	r.Resubscribed, _ = countLines(out, "monitor resubscribes", 0)
	r.ErrorLines, _ = countLines(out, "level=ERROR", 0)
	r.Targets.Intact = r.RulesIntact && r.RoutesIntact && slices.Equal(r.ActiveBefore, r.ActiveAfter)
	if !r.Targets.Intact {
		return r, fmt.Errorf("state changed by the storm: rules %v → %v, routes %v → %v, active %v → %v",
			rules0, rules1, routes0, routes1, r.ActiveBefore, r.ActiveAfter)
	}
	return r, nil
}
