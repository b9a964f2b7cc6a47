package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// The cost part of `uplinklab bench -quality`: what a metered backup's probes cost and how fast
// it still takes over, and what idle probing costs in CPU.
const costMethod = "metered: one fresh lab, shipped defaults, isp2 metered = true; after isp2 is probed gently, its probe bytes (uplinkd's count, IP bytes both ways; " +
	"cross-checked with the echo requests counted in isp2's namespace × an echo's and its reply's bytes) over -metered-window, per day. takeover: isp1 dies silently at a random phase of the probe round, " +
	"time until isp2 carries the traffic (uplinkd's event), with isp2 metered and, in the same number of runs, not metered. " +
	"idle_cpu_pct: bench-scale's measure (N uplinks × M targets, icmp, pin_connections off, utime+stime over 30 s after every uplink is up)."

type costReport struct {
	MeteredBytesPerDay   float64   `json:"metered_probe_bytes_per_day"`
	MeteredCountedPerDay float64   `json:"metered_probe_bytes_per_day_counted_at_isp"`
	TakeoverMetered      []float64 `json:"takeover_metered_s"`
	TakeoverPlain        []float64 `json:"takeover_not_metered_s"`
	IdleCPU2x3           float64   `json:"idle_cpu_pct_2x3"`
	IdleCPU2x3Fast       float64   `json:"idle_cpu_pct_2x3_100ms"`
	IdleCPU64x8          float64   `json:"idle_cpu_pct_64x8"`
	Method               string    `json:"method"`
}

func benchCost(ctx context.Context, bin string, window time.Duration, takeovers int, idle bool, progress func(string, ...any)) (*costReport, error) {
	rep := &costReport{Method: costMethod}
	for _, metered := range []bool{true, false} {
		if err := meteredLab(ctx, bin, metered, window, takeovers, rep, progress); err != nil {
			return nil, err
		}
	}
	if !idle {
		return rep, nil
	}
	tmp, err := os.MkdirTemp("", "uplinklab-cost-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for i, sz := range []struct {
		n, m     int
		interval time.Duration
		into     *float64
	}{{2, 3, 500 * time.Millisecond, &rep.IdleCPU2x3}, {2, 3, 100 * time.Millisecond, &rep.IdleCPU2x3Fast}, {64, 8, 500 * time.Millisecond, &rep.IdleCPU64x8}} {
		r, err := scaleRun(ctx, bin, tmp, fmt.Sprintf("ul%dc%d", os.Getpid()%100000, i), sz.n, sz.m, sz.interval, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("idle %dx%d@%s: %w", sz.n, sz.m, sz.interval, err)
		}
		*sz.into = r.CPUPercent
		progress("idle %dx%d@%s: %.2f %% of a core", sz.n, sz.m, sz.interval, r.CPUPercent)
	}
	return rep, nil
}

// meteredLab measures one lab: isp2 metered or not.
func meteredLab(ctx context.Context, bin string, metered bool, window time.Duration, takeovers int, rep *costReport, progress func(string, ...any)) error {
	lab, err := netlab.New(netlab.Options{})
	if err != nil {
		return err
	}
	defer lab.Close()
	cfg := shipped()
	if metered {
		cfg.UplinkKeys[1] = "metered = true"
	}
	d, err := startDaemon(ctx, lab, bin, cfg, 20*time.Second, nil)
	if err != nil {
		return err
	}
	defer d.Stop()
	if metered {
		if _, err := d.WaitStatus(ctx, 10*time.Second, "isp2 probed gently", func(st api.Status) bool { return st.Uplink("isp2").ProbeMode == "gentle" }); err != nil {
			return err
		}
		// isp2's probe bytes by uplinkd's count, and the echo requests counted where they leave.
		count := func() (bytes, echoes uint64, err error) {
			st, err := d.Status(ctx)
			if err != nil {
				return 0, 0, err
			}
			c, err := lab.Counters(2)
			return st.Uplink("isp2").ProbeBytes, c.UpICMP, err
		}
		b0, e0, err := count()
		if err != nil {
			return err
		}
		start := time.Now()
		sleepCtx(ctx, window)
		b1, e1, err := count()
		if err != nil {
			return err
		}
		perDay := 86400 / time.Since(start).Seconds()
		rep.MeteredBytesPerDay = float64(b1-b0) * perDay
		echo := probe.WireBytes(uplink.Method{Name: uplink.MethodICMP}, false, true) // request and reply
		rep.MeteredCountedPerDay = float64((e1-e0)*uint64(echo)) * perDay
		progress("metered isp2: %.0f B/day by uplinkd's count, %.0f B/day counted at isp2", rep.MeteredBytesPerDay, rep.MeteredCountedPerDay)
	}
	interval := shipped().Interval
	for i := range takeovers {
		sleepCtx(ctx, time.Duration(rand.Int64N(int64(interval))))
		cut := time.Now()
		if err := lab.Break(1, netlab.SilentFailure); err != nil {
			return err
		}
		ev, err := d.WaitEvent(ctx, 15*time.Second, cut, "the takeover by isp2", netlab.ActiveIs("isp2"))
		if err != nil {
			return err
		}
		took := ev.Time.Sub(cut).Seconds()
		if metered {
			rep.TakeoverMetered = append(rep.TakeoverMetered, took)
		} else {
			rep.TakeoverPlain = append(rep.TakeoverPlain, took)
		}
		progress("takeover %d/%d (isp2 metered: %v): %.2f s", i+1, takeovers, metered, took)
		healed := time.Now()
		if err := lab.Heal(1); err != nil {
			return err
		}
		// Flap damping holds isp1 longer after each cut: up to max_hold_down.
		if _, err := d.WaitEvent(ctx, 3*time.Minute, healed, "the failback to isp1", netlab.ActiveIs("isp1")); err != nil {
			return err
		}
		if metered { // back to gentle before the next cut, as in the field
			if _, err := d.WaitStatus(ctx, 30*time.Second, "isp2 probed gently again", func(st api.Status) bool { return st.Uplink("isp2").ProbeMode == "gentle" }); err != nil {
				return err
			}
		}
	}
	return nil
}
