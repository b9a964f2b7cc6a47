package main

import (
	"context"
	"fmt"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/vishvananda/netlink"
)

// fight: another process deletes one of uplinkd's rules (IPv4 pref 1040, the active table's)
// every 10 ms through netlink. uplinkd restores it at a backed-off rate and names the fight in
// its log; what it costs is its CPU over the fight, and once the fight stops the rule must be
// back within a second.

const fightMethod = "fight: shipped config, standard lab; after the daemon is ready and 2 s more, its CPU over IDLE s " +
	"(idle_cpu_pct), then the IPv4 rule pref 1040 proto 85 is deleted through netlink from the gateway namespace every " +
	"FIGHT-EVERY for FIGHT (deleted = deletions that found the rule); cpu_pct = uplinkd's utime+stime over the fight / " +
	"its length; log lines counted in uplinkd's output; back_after = fight end → the rule listed again (polled every 5 ms, " +
	"at most 10 s)."

type fightReport struct {
	reportError
	Scenario      string  `json:"scenario"`
	Seconds       float64 `json:"seconds"`
	EveryMS       float64 `json:"every_ms"`
	Attempts      int     `json:"attempts"`
	Deleted       int     `json:"deleted"`
	IdleCPUPct    float64 `json:"idle_cpu_pct"`
	CPUPct        float64 `json:"cpu_pct"`
	RestoredLines int     `json:"restored_log_lines"`   // "restored owned rules or routes that someone else deleted"
	FightLines    int     `json:"keeps_deleting_lines"` // "another process keeps deleting ..."
	LogLines      int     `json:"log_lines"`            // every line uplinkd wrote from the fight until the rule was back
	Back          bool    `json:"rule_back"`
	BackAfterMS   float64 `json:"back_after_ms"`
	Targets       struct {
		CPU  bool `json:"cpu_le_5pct"`
		Back bool `json:"back_within_1s"`
	} `json:"targets_met"`
	Method string `json:"method"`
}

func (r *fightReport) human() string {
	back := "NOT back within 10 s"
	if r.Back {
		back = fmt.Sprintf("back %.0f ms after the fight (%s)", r.BackAfterMS, yesNo(r.Targets.Back))
	}
	return fmt.Sprintf("rule deleted %d times in %.0f s (every %g ms): uplinkd %.2f %% CPU (idle %.2f %%; %s), %d log lines (%d restored, %d keeps-deleting), rule %s",
		r.Deleted, r.Seconds, r.EveryMS, r.CPUPct, r.IdleCPUPct, yesNo(r.Targets.CPU), r.LogLines, r.RestoredLines, r.FightLines, back)
}

// fightRule is the rule the fight deletes: uplinkd's IPv4 "lookup <active table>" at pref 1040.
func fightRule() *netlink.Rule {
	r := netlink.NewRule()
	r.Priority = 1040
	r.Family = netlink.FAMILY_V4
	r.Protocol = netlab.UplinkdProto
	return r
}

func hasFightRule(h *netlink.Handle) (bool, error) {
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return false, err
	}
	for _, r := range rules {
		if r.Priority == 1040 && r.Protocol == netlab.UplinkdProto {
			return true, nil
		}
	}
	return false, nil
}

func (h *hostile) fight(ctx context.Context) (rep *fightReport, err error) {
	o := h.opt
	r := &fightReport{Scenario: "fight", EveryMS: ms(o.FightEvery), Method: fightMethod}
	lab, d, done, err := h.labDaemon(ctx, defaultConfig)
	if err != nil {
		return r, err
	}
	defer done(&err)
	nl, err := netlab.NetlinkHandle(lab.NS(netlab.RoleGW))
	if err != nil {
		return r, err
	}
	defer nl.Close()
	if ok, err := hasFightRule(nl); err != nil || !ok {
		return r, fmt.Errorf("uplinkd's rule pref 1040 is not there before the fight (%v)", err)
	}
	sleepCtx(ctx, 2*time.Second)
	idle := min(o.Fight, 10*time.Second)
	u0, err := d.Usage()
	if err != nil {
		return r, err
	}
	sleepCtx(ctx, idle)
	u1, err := d.Usage()
	if err != nil {
		return r, err
	}
	r.IdleCPUPct = round(100*(u1.CPU-u0.CPU).Seconds()/idle.Seconds(), 2)
	h.logf("fight: deleting rule pref 1040 every %s for %s", o.FightEvery, o.Fight)
	outBefore := len(d.Proc().Output())
	rule := fightRule()
	start := time.Now()
	t := time.NewTicker(o.FightEvery)
	for end := start.Add(o.Fight); time.Now().Before(end); { // bounded by the fight's length
		select {
		case <-ctx.Done():
			t.Stop()
			return r, ctx.Err()
		case <-t.C:
		}
		r.Attempts++
		if nl.RuleDel(rule) == nil {
			r.Deleted++
		}
	}
	t.Stop()
	stop := time.Now()
	u2, err := d.Usage()
	if err != nil {
		return r, err
	}
	el := stop.Sub(start)
	r.Seconds = round(el.Seconds(), 1)
	r.CPUPct = round(100*(u2.CPU-u1.CPU).Seconds()/el.Seconds(), 2)
	for deadline := stop.Add(10 * time.Second); time.Now().Before(deadline); { // bounded: 10 s
		ok, err := hasFightRule(nl)
		if err != nil {
			return r, err
		}
		if ok {
			r.Back, r.BackAfterMS = true, ms(time.Since(stop))
			break
		}
		sleepCtx(ctx, 5*time.Millisecond)
	}
	out := string(d.Proc().Output()[outBefore:])
	r.RestoredLines, _ = countLines(out, "restored owned rules", 0)
	r.FightLines, _ = countLines(out, "keeps deleting", 0)
	r.LogLines, _ = countLines(out, "", 0)
	r.Targets.CPU = r.CPUPct <= 5
	r.Targets.Back = r.Back && r.BackAfterMS <= 1000
	return r, nil
}
