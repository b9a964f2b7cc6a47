package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// The IPv6 benchmark (`uplinklab bench -ipv6`): each ISP delegates its own LAN /64 (no NAT66,
// BCP 38 at both), the client configures itself by SLAAC from uplinkd's RAs, and isp1 dies
// silently and heals.
const ipv6Method = "one fresh lab per run with a LAN /64 per ISP (no NAT66, BCP 38 at both ISPs), the client on SLAAC with temporary addresses (use_tempaddr=2); uplinkd on the shipped defaults plus prefixes = [...] per uplink ([ipv6] defaults: RAs, NPTv6). " +
	"isp1 dies silently at a random phase of the probe round (times count from when the fault is in force). From the client, a new TCP connection is started every 50 ms per family to the server (each times out after 800 ms): " +
	"v4_failover_s and v6_new_flows_outage_s are from the cut until the first attempt that succeeded (resolution 50 ms); v6_deprecated_after_s is when every client address in isp1's prefix shows deprecated (polled every 50 ms); " +
	"v6_source_switch_s is when a new connect() without a bound source first used isp2's prefix; v6_long_lived_alive: a connection opened from isp2's prefix during the outage still answers after the heal; " +
	"v6_back_after_s is from the heal until a new connect() uses isp1's prefix again; rs_answer_ms is rdisc6's solicitation answered (its process start included)."

type ipv6Run struct {
	Phase           float64 `json:"phase_s,omitempty"`
	V4Failover      float64 `json:"v4_failover_s"`
	V6Outage        float64 `json:"v6_new_flows_outage_s"`
	V6Deprecated    float64 `json:"v6_deprecated_after_s"`
	V6SourceSwitch  float64 `json:"v6_source_switch_s"`
	V6LongLived     bool    `json:"v6_long_lived_alive"`
	V6Back          float64 `json:"v6_back_after_s"`
	RSAnswerMs      float64 `json:"rs_answer_ms"`
	TranslatedFlows bool    `json:"nptv6_carried_old_source"` // a connection from isp1's prefix got through after the switch
}

type ipv6Report struct {
	Runs   int       `json:"runs"`
	PerRun []ipv6Run `json:"per_run"`
	Median ipv6Run   `json:"median"`
	Worst  ipv6Run   `json:"worst"`
	Method string    `json:"method"`
}

func runBenchIPv6Flags(ctx context.Context, args []string, stdout, progress io.Writer) error {
	fs, _ := newFlags("bench -ipv6")
	fs.Bool("ipv6", true, "the IPv6 prefixes benchmark")
	jsonOnly := fs.Bool("json", false, "print only the JSON report")
	runs := fs.Int("runs", 3, "runs (a fresh lab each)")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 || *runs > 50 {
		return fmt.Errorf("want -runs 1..50")
	}
	path, done, err := rootAndBinary(ctx, *bin)
	if err != nil {
		return err
	}
	defer done()
	rep := ipv6Report{Runs: *runs, Method: ipv6Method}
	for r := range *runs {
		fmt.Fprintf(progress, "ipv6 run %d/%d\n", r+1, *runs)
		run, err := ipv6Once(ctx, path)
		if err != nil {
			return fmt.Errorf("ipv6 run %d: %w", r+1, err)
		}
		fmt.Fprintf(progress, "  phase %.2fs: v4 %.2fs, v6 new flows %.2fs, deprecated %.2fs, source switch %.2fs, back %.2fs, long-lived %v, RS %.1f ms\n",
			run.Phase, run.V4Failover, run.V6Outage, run.V6Deprecated, run.V6SourceSwitch, run.V6Back, run.V6LongLived, run.RSAnswerMs)
		rep.PerRun = append(rep.PerRun, run)
	}
	col := func(f func(*ipv6Run) *float64) {
		var v []float64
		for i := range rep.PerRun {
			v = append(v, *f(&rep.PerRun[i]))
		}
		s := medianMax(v)
		*f(&rep.Median), *f(&rep.Worst) = s.Median, s.Max
	}
	col(func(r *ipv6Run) *float64 { return &r.V4Failover })
	col(func(r *ipv6Run) *float64 { return &r.V6Outage })
	col(func(r *ipv6Run) *float64 { return &r.V6Deprecated })
	col(func(r *ipv6Run) *float64 { return &r.V6SourceSwitch })
	col(func(r *ipv6Run) *float64 { return &r.V6Back })
	col(func(r *ipv6Run) *float64 { return &r.RSAnswerMs })
	// The booleans hold in the summary only if they held in every run.
	alive, translated := true, true
	for _, r := range rep.PerRun {
		alive, translated = alive && r.V6LongLived, translated && r.TranslatedFlows
	}
	rep.Median.V6LongLived, rep.Worst.V6LongLived = alive, alive
	rep.Median.TranslatedFlows, rep.Worst.TranslatedFlows = translated, translated
	if !*jsonOnly {
		m, w := rep.Median, rep.Worst
		fmt.Fprintf(stdout, "ipv6 (%d runs, median / worst): IPv4 failover %.2f / %.2f s; new IPv6 connections fail %.2f / %.2f s; isp1's prefix deprecated after %.2f / %.2f s; new connections on isp2's prefix after %.2f / %.2f s; back on isp1's prefix %.2f / %.2f s after the heal; long-lived IPv6 connection survives the heal: %v; RS answered in %.1f / %.1f ms\n",
			*runs, m.V4Failover, w.V4Failover, m.V6Outage, w.V6Outage, m.V6Deprecated, w.V6Deprecated, m.V6SourceSwitch, w.V6SourceSwitch, m.V6Back, w.V6Back, w.V6LongLived, m.RSAnswerMs, w.RSAnswerMs)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}

// attempt is one new connection from the client.
type attempt struct {
	start time.Time
	ok    bool
	local netip.Addr
}

// connectLoop starts a new TCP connection to dst every 50 ms until ctx ends, and returns them.
func connectLoop(ctx context.Context, lab *netlab.Lab, dst netip.AddrPort) func() []attempt {
	var mu sync.Mutex
	var out []attempt
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			wg.Go(func() {
				a := attempt{start: time.Now()}
				c, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
				defer cancel()
				local, _, err := lab.CheckTCPFrom(c, netlab.RoleLAN, netip.Addr{}, dst)
				a.ok, a.local = err == nil, local.Addr()
				mu.Lock()
				out = append(out, a)
				mu.Unlock()
			})
		}
	})
	return func() []attempt {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return out
	}
}

// firstAfter is the time from t to the start of the first attempt after t that ok accepts; -1
// when none did.
func firstAfter(as []attempt, t time.Time, ok func(attempt) bool) float64 {
	best := -1.0
	for _, a := range as {
		if !a.start.Before(t) && ok(a) {
			if s := a.start.Sub(t).Seconds(); best < 0 || s < best {
				best = s
			}
		}
	}
	return best
}

func ipv6Once(ctx context.Context, bin string) (run ipv6Run, err error) {
	lab, err := netlab.New(netlab.Options{Servers: true, IPv6Prefixes: true})
	if err != nil {
		return run, err
	}
	defer lab.Close()
	if err := lab.StartChat(); err != nil {
		return run, err
	}
	cfg := shipped()
	cfg.IPv6Prefixes = true
	d, err := startDaemon(ctx, lab, bin, cfg, 20*time.Second, nil)
	if err != nil {
		return run, err
	}
	defer d.Stop()
	p1, p2 := netlab.LANPrefixISP1, netlab.LANPrefixISP2
	state := func() (dep1, has2, dep2 bool) {
		addrs, err := lab.ClientAddrs6(ctx)
		if err != nil {
			return false, false, false
		}
		_, dep1 = netlab.PrefixState(addrs, p1)
		has2, dep2 = netlab.PrefixState(addrs, p2)
		return dep1, has2, dep2
	}
	if _, ok := pollUntil(ctx, time.Now(), 15*time.Second, 50*time.Millisecond, func() bool {
		dep1, has2, dep2 := state()
		return !dep1 && has2 && dep2
	}); !ok {
		return run, fmt.Errorf("the client never held isp1's prefix preferred and isp2's deprecated")
	}
	_, took, err := lab.Solicit(ctx)
	if err != nil {
		return run, err
	}
	run.RSAnswerMs = float64(took.Microseconds()) / 1000

	loopCtx, stopLoops := context.WithCancel(ctx)
	v4 := connectLoop(loopCtx, lab, netip.AddrPortFrom(netlab.Server4, netlab.TCPPort))
	v6 := connectLoop(loopCtx, lab, netip.AddrPortFrom(netlab.Server6, netlab.TCPPort))
	sleepCtx(ctx, time.Second)
	phase := time.Duration(rand.Int64N(int64(shipped().Interval)))
	sleepCtx(ctx, phase)
	run.Phase = phase.Seconds()
	old := netip.Addr{}
	if addrs, err := lab.ClientAddrs6(ctx); err == nil {
		for _, a := range addrs {
			if p1.Contains(a.Addr) && !a.Deprecated {
				old = a.Addr
			}
		}
	}
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		stopLoops()
		return run, err
	}
	cut := time.Now() // the fault is in force: an attempt started before may still have got through
	deprecated, ok := pollUntil(ctx, cut, 30*time.Second, 50*time.Millisecond, func() bool { dep1, _, _ := state(); return dep1 })
	if !ok {
		stopLoops()
		return run, fmt.Errorf("isp1's prefix was never deprecated on the client")
	}
	run.V6Deprecated = deprecated
	sleepCtx(ctx, 2*time.Second) // let the loops see the switch of source
	if old.IsValid() {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, seen, err := lab.CheckTCPFrom(c, netlab.RoleLAN, old, netip.AddrPortFrom(netlab.Server6, netlab.TCPPort))
		cancel()
		ap, perr := netip.ParseAddrPort(seen)
		run.TranslatedFlows = err == nil && perr == nil && p2.Contains(ap.Addr())
	}
	chatCtx, cancelChat := context.WithTimeout(ctx, 3*time.Second)
	chat, err := lab.DialChatTo(chatCtx, netlab.RoleLAN, netlab.Server6)
	cancelChat()
	if err != nil {
		stopLoops()
		return run, fmt.Errorf("a long-lived connection during the outage: %w", err)
	}
	defer chat.Close()
	before, err := chat.Ask(2 * time.Second)
	if err != nil {
		stopLoops()
		return run, err
	}
	healed := time.Now()
	if err := lab.Heal(1); err != nil {
		stopLoops()
		return run, err
	}
	if _, ok := pollUntil(ctx, healed, 30*time.Second, 50*time.Millisecond, func() bool { dep1, _, dep2 := state(); return !dep1 && dep2 }); !ok {
		stopLoops()
		return run, fmt.Errorf("isp1's prefix was never preferred again after the heal")
	}
	sleepCtx(ctx, time.Second)
	stopLoops()
	as4, as6 := v4(), v6()
	run.V4Failover = firstAfter(as4, cut, func(a attempt) bool { return a.ok })
	run.V6Outage = firstAfter(as6, cut, func(a attempt) bool { return a.ok })
	run.V6SourceSwitch = firstAfter(as6, cut, func(a attempt) bool { return a.ok && p2.Contains(a.local) })
	run.V6Back = firstAfter(as6, healed, func(a attempt) bool { return a.ok && p1.Contains(a.local) })
	after, err := chat.Ask(2 * time.Second)
	run.V6LongLived = err == nil && after == before
	for _, v := range []float64{run.V4Failover, run.V6Outage, run.V6SourceSwitch, run.V6Back} {
		if v < 0 {
			return run, fmt.Errorf("no successful new connection seen: %+v", run)
		}
	}
	return run, nil
}
