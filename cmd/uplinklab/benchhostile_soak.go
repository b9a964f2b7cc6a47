package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// soak: isp1 flaps, carrier loss and silent failure in turn, each held until uplinkd judged it
// down and, healed, until isp1 carries the traffic again; then uplinkd idles. What uplinkd
// holds in the kernel and in its process must not grow.

const soakMetrics = "127.0.0.1:9847" // on the gateway namespace's loopback

const soakMethod = "soak: tuned config (100 ms rounds, 200 ms timeout, down after 3, up after 5) with hold_down 100ms " +
	"(damping would hold isp1 down for minutes after three quick silent failures; the soak measures the daemon, not the " +
	"damping) and metrics on the gateway's loopback; FLAPS flaps of isp1, carrier loss and silent failure in turn: " +
	"break → isp1's 'down' event (≤ 10 s) → heal → 'active [isp1]' (≤ 15 s); then IDLE. Counts before (2 s after ready) " +
	"and after: rules and routes with proto 85 (both families, all tables), lines of `nft list table inet uplinkd`, " +
	"/proc/PID/fd entries, threads, go_goroutines (metrics); RSS at warm-up (after min(20, FLAPS/10) flaps), after the " +
	"flaps and at the end, max sampled every flap and every 10 s idle."

type soakCounts struct {
	Rules      int   `json:"rules"`
	Routes     int   `json:"routes"`
	NftLines   int   `json:"nft_lines"`
	FDs        int   `json:"fds"`
	Threads    int   `json:"threads"`
	Goroutines int   `json:"goroutines"`
	RSSKiB     int64 `json:"rss_kib"`
}

type soakReport struct {
	reportError
	Scenario      string     `json:"scenario"`
	Flaps         int        `json:"flaps"`
	FlapsDone     int        `json:"flaps_done"`
	FlapSeconds   float64    `json:"flaps_s"`
	CarrierDownMS *stat      `json:"carrier_down_ms"` // cut → isp1 down
	SilentDownMS  *stat      `json:"silent_down_ms"`
	BackMS        *stat      `json:"back_ms"` // heal → active [isp1]
	IdleS         float64    `json:"idle_s"`
	Before        soakCounts `json:"before"`
	After         soakCounts `json:"after"`
	RSSWarmKiB    int64      `json:"rss_warm_kib"`
	RSSFlapsKiB   int64      `json:"rss_after_flaps_kib"`
	RSSMaxKiB     int64      `json:"rss_max_kib"`
	Growth        []string   `json:"growth"` // counts that grew, "fds 52→53"
	RulesSame     bool       `json:"rules_identical"`
	RoutesSame    bool       `json:"routes_identical"`
	Targets       struct {
		NoGrowth bool `json:"no_growth"`
		RSSFlat  bool `json:"rss_flat"` // end ≤ warm-up + 2 MiB
	} `json:"targets_met"`
	Method string `json:"method"`
}

func (r *soakReport) human() string {
	growth := "none"
	if len(r.Growth) > 0 {
		growth = strings.Join(r.Growth, ", ")
	}
	return fmt.Sprintf("%d/%d flaps in %.0f s (carrier down %s ms, silent down %s ms, back %s ms), idle %.0f s: rules %d→%d, routes %d→%d, nft lines %d→%d, fds %d→%d, threads %d→%d, goroutines %d→%d; growth: %s (%s); RSS warm %s → end %s (max %s; %s)",
		r.FlapsDone, r.Flaps, r.FlapSeconds, fmtStat(r.CarrierDownMS), fmtStat(r.SilentDownMS), fmtStat(r.BackMS), r.IdleS,
		r.Before.Rules, r.After.Rules, r.Before.Routes, r.After.Routes, r.Before.NftLines, r.After.NftLines,
		r.Before.FDs, r.After.FDs, r.Before.Threads, r.After.Threads, r.Before.Goroutines, r.After.Goroutines,
		growth, yesNo(r.Targets.NoGrowth), fmtMiB(r.RSSWarmKiB), fmtMiB(r.After.RSSKiB), fmtMiB(r.RSSMaxKiB), yesNo(r.Targets.RSSFlat))
}

func soakConfig() netlab.DaemonConfig {
	c := tunedConfig
	c.DaemonKeys = fmt.Sprintf("metrics_listen = %q\n", soakMetrics)
	c.DefaultsKeys = "hold_down = \"100ms\"\nmax_hold_down = \"1s\"\n"
	return c
}

// soakSnapshot reads the counts. It asks for the status first, so that the one kept-alive
// control connection of ours is open at every snapshot alike.
func soakSnapshot(ctx context.Context, lab *netlab.Lab, d *netlab.Daemon) (c soakCounts, rules, routes []string, err error) {
	if _, err := d.Status(ctx); err != nil {
		return c, nil, nil, err
	}
	ps, err := netlab.ReadProcStats(d.Proc().Pid())
	if err != nil {
		return c, nil, nil, err
	}
	c.FDs, c.Threads, c.RSSKiB = ps.FDs, ps.Threads, kib(ps.RSS)
	gw := lab.NS(netlab.RoleGW)
	if rules, routes, err = netlab.Owned(gw); err != nil {
		return c, nil, nil, err
	}
	c.Rules, c.Routes = len(rules), len(routes)
	table, err := netlab.NftTable(gw)
	if err != nil {
		return c, nil, nil, err
	}
	c.NftLines = strings.Count(table, "\n")
	body, err := netlab.HTTPGetInNS(gw, soakMetrics, "/metrics")
	if err != nil {
		return c, nil, nil, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return c, nil, nil, fmt.Errorf("go_goroutines %q: %w", v, err)
			}
			c.Goroutines = int(n)
		}
	}
	return c, rules, routes, nil
}

func isp1To(state uplink.State) func(api.Event) bool {
	return func(ev api.Event) bool {
		return ev.Kind == api.KindState && ev.Uplink == "isp1" && ev.To == state.String()
	}
}

func (h *hostile) soak(ctx context.Context) (rep *soakReport, err error) {
	o := h.opt
	r := &soakReport{Scenario: "soak", Flaps: o.Flaps, Method: soakMethod}
	lab, d, done, err := h.labDaemon(ctx, soakConfig())
	if err != nil {
		return r, err
	}
	defer done(&err)
	defer func() { err = errors.Join(err, lab.Heal(1)) }() // before the daemon stops
	sleepCtx(ctx, 2*time.Second)
	before, rules0, routes0, err := soakSnapshot(ctx, lab, d)
	if err != nil {
		return r, err
	}
	r.Before = before
	r.RSSMaxKiB = before.RSSKiB
	pid := d.Proc().Pid()
	sampleRSS := func() int64 {
		if ps, err := netlab.ReadProcStats(pid); err == nil {
			r.RSSMaxKiB = max(r.RSSMaxKiB, kib(ps.RSS))
			return kib(ps.RSS)
		}
		return 0
	}
	warmAt := min(20, max(1, o.Flaps/10))
	var carrier, silent, back []float64
	start := time.Now()
	h.logf("soak: %d flaps", o.Flaps)
	for i := range o.Flaps { // bounded: each wait is bounded too
		fault := netlab.CarrierLoss
		if i%2 == 1 {
			fault = netlab.SilentFailure
		}
		cut := time.Now()
		if err := lab.Break(1, fault); err != nil {
			return r, err
		}
		ev, err := d.WaitEvent(ctx, 10*time.Second, cut, "isp1 down", isp1To(uplink.Down))
		if err != nil {
			return r, fmt.Errorf("flap %d (%s): %w", i+1, fault, err)
		}
		if fault == netlab.CarrierLoss {
			carrier = append(carrier, ms(ev.Time.Sub(cut)))
		} else {
			silent = append(silent, ms(ev.Time.Sub(cut)))
		}
		healed := time.Now()
		if err := lab.Heal(1); err != nil {
			return r, err
		}
		ev, err = d.WaitEvent(ctx, 15*time.Second, healed, "active [isp1]", netlab.ActiveIs("isp1"))
		if err != nil {
			return r, fmt.Errorf("flap %d (%s) heal: %w", i+1, fault, err)
		}
		back = append(back, ms(ev.Time.Sub(healed)))
		r.FlapsDone = i + 1
		rss := sampleRSS()
		if r.FlapsDone == warmAt {
			r.RSSWarmKiB = rss
		}
		if r.FlapsDone%50 == 0 {
			h.logf("soak: %d flaps done, RSS %s", r.FlapsDone, fmtMiB(rss))
		}
	}
	r.FlapSeconds = round(time.Since(start).Seconds(), 1)
	r.CarrierDownMS, r.SilentDownMS, r.BackMS = medianMax(carrier), medianMax(silent), medianMax(back)
	r.RSSFlapsKiB = sampleRSS()
	h.logf("soak: idle %s", o.Idle)
	idleStart := time.Now()
	for end := idleStart.Add(o.Idle); time.Now().Before(end) && ctx.Err() == nil; { // bounded by the idle period
		sleepCtx(ctx, min(10*time.Second, time.Until(end)))
		sampleRSS()
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	r.IdleS = round(time.Since(idleStart).Seconds(), 1)
	after, rules1, routes1, err := soakSnapshot(ctx, lab, d)
	if err != nil {
		return r, err
	}
	r.After = after
	r.RSSMaxKiB = max(r.RSSMaxKiB, after.RSSKiB)
	r.RulesSame = strings.Join(rules0, "\n") == strings.Join(rules1, "\n")
	r.RoutesSame = strings.Join(routes0, "\n") == strings.Join(routes1, "\n")
	for _, c := range []struct {
		name string
		a, b int
	}{
		{"rules", before.Rules, after.Rules}, {"routes", before.Routes, after.Routes}, {"nft lines", before.NftLines, after.NftLines},
		{"fds", before.FDs, after.FDs}, {"threads", before.Threads, after.Threads}, {"goroutines", before.Goroutines, after.Goroutines},
	} {
		if c.b > c.a {
			r.Growth = append(r.Growth, fmt.Sprintf("%s %d→%d", c.name, c.a, c.b))
		}
	}
	r.Targets.NoGrowth = len(r.Growth) == 0 && r.RulesSame && r.RoutesSame
	r.Targets.RSSFlat = r.RSSWarmKiB > 0 && after.RSSKiB <= r.RSSWarmKiB+2048
	return r, nil
}
