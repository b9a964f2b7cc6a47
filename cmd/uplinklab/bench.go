package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

// Method of the benchmark, also written into the JSON so the figures carry their definition.
//
// One lab per NAT mode is reused: every run starts a fresh uplinkd (so no flap damping carries
// over between runs) with a fresh flow on its own source port, breaks isp1, heals it and waits
// for the failback before the next run.
const benchMethod = "one lab per NAT mode; each run: a fresh uplinkd, a fresh UDP flow (10 ms datagrams, one source port), " +
	"break isp1 at a random phase of the probe round, heal it, wait for failback. restore_flow: cut → first answered datagram after the outage " +
	"(not for loss30: there flow_loss_pct is the flow's loss from 1 s after the move to 10 s after the cut, since pinning keeps a working flow on the degraded uplink); restore_new: cut → first new TCP connection from the LAN " +
	"that succeeds through isp2 (attempts every 25 ms, 200 ms timeout); failback: heal → daemon's active set is isp1; " +
	"failback_tcp: a chat TCP connection opened from the LAN once new connections work through isp2 is asked 3 times (100 ms apart, " +
	"2 s each) after the failback and counts as kept when every answer came through isp2; " +
	"switch: the daemon's own 'took' for the failover; moved: cut → active set changes; flaps: isp1 state changes in " +
	"the first 10 s of loss; cpu/vmhwm: uplinkd's utime+stime and VmHWM at the end of each run. " + drainMethod

// cmdBench measures failover and failback over faults, NAT modes and configs, and the daemon's
// idle cost, and prints a table and JSON.
func cmdBench(ctx context.Context, args []string) error {
	return runBench(ctx, args, os.Stdout, os.Stderr)
}

func runBench(ctx context.Context, args []string, stdout, progress io.Writer) error {
	fs, prefix := newFlags("bench")
	*prefix = "" // unique labs: never clash with `uplinklab up`
	runs := fs.Int("runs", 3, "runs per scenario")
	jsonPath := fs.String("json", "", "write the JSON report to this file instead of stdout after the table")
	only := fs.String("only", "", "comma-separated scenarios FAULT/NAT/CONFIG; an empty or * part matches all (e.g. silent/masquerade/tuned, carrier//, //default)")
	idle := fs.Duration("idle", 30*time.Second, "how long to measure the idle daemon per config (0 skips it)")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	drain := fs.Bool("drain", true, "also measure a graceful drain of isp1 with a connection on it, in every lab built")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 || *runs > 100 {
		return fmt.Errorf("-runs %d: want 1 to 100", *runs)
	}
	scenarios, err := selectScenarios(*only)
	if err != nil {
		return err
	}
	if err := needRoot(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "uplinklab-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	path, err := netlab.UplinkdBinary(ctx, *bin, tmp)
	if err != nil {
		return err
	}
	b := &bench{bin: path, runs: *runs, prefix: *prefix, progress: progress, sport: 41000}
	rep := benchReport{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), Kernel: kernelRelease(), Runs: *runs, Method: benchMethod, References: references}
	for _, nat := range []string{netlab.NATMasquerade, netlab.NATSNAT} {
		var mine []scenario
		for _, s := range scenarios {
			if s.NAT == nat {
				mine = append(mine, s)
			}
		}
		idleFor := *idle
		if nat != netlab.NATMasquerade {
			idleFor = 0
		}
		if len(mine) == 0 && idleFor <= 0 {
			continue
		}
		if err := b.withLab(ctx, nat, mine, idleFor, *drain, &rep); err != nil {
			return err
		}
	}
	printTable(stdout, rep)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	if *jsonPath != "" {
		return os.WriteFile(*jsonPath, js, 0o644)
	}
	fmt.Fprintln(stdout)
	_, err = stdout.Write(js)
	return err
}

// scenario is one fault × NAT × config.
type scenario struct {
	Fault  netlab.Fault
	NAT    string
	Config string // "default" or "tuned"
}

func (s scenario) String() string { return s.Fault.String() + "/" + s.NAT + "/" + s.Config }

func (s scenario) daemonConfig() netlab.DaemonConfig {
	if s.Config == "tuned" {
		return tunedConfig
	}
	return defaultConfig
}

// target is what the README promises for the scenario.
func (s scenario) target() string {
	switch {
	case s.Fault == netlab.CarrierLoss:
		return "flow ≤ 0.3 s"
	case s.Fault == netlab.SilentFailure && s.Config == "tuned":
		return "flow ≤ 0.5 s"
	case s.Fault == netlab.SilentFailure:
		return "flow ≤ 3 s (aim 2 s)"
	}
	return "degrade, no flaps"
}

// allScenarios lists every scenario in the order they run.
func allScenarios() []scenario {
	var out []scenario
	for _, nat := range []string{netlab.NATMasquerade, netlab.NATSNAT} {
		for _, cfg := range []string{"default", "tuned"} {
			for _, f := range []netlab.Fault{netlab.SilentFailure, netlab.CarrierLoss, netlab.Loss30} {
				out = append(out, scenario{Fault: f, NAT: nat, Config: cfg})
			}
		}
	}
	return out
}

// selectScenarios keeps the scenarios matching any of the comma-separated FAULT/NAT/CONFIG
// patterns (empty: all).
func selectScenarios(only string) ([]scenario, error) {
	all := allScenarios()
	if strings.TrimSpace(only) == "" {
		return all, nil
	}
	keep := make([]bool, len(all))
	for pat := range strings.SplitSeq(only, ",") {
		parts := strings.Split(strings.TrimSpace(pat), "/")
		if len(parts) > 3 {
			return nil, fmt.Errorf("-only %q: want FAULT/NAT/CONFIG", pat)
		}
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		matched := false
		for i, s := range all {
			if matchPart(parts[0], s.Fault.String()) && matchPart(parts[1], s.NAT) && matchPart(parts[2], s.Config) {
				keep[i], matched = true, true
			}
		}
		if !matched {
			return nil, fmt.Errorf("-only %q matches no scenario (faults silent, carrier, loss30; NAT masquerade, snat; configs default, tuned)", pat)
		}
	}
	var out []scenario
	for i, s := range all {
		if keep[i] {
			out = append(out, s)
		}
	}
	return out, nil
}

func matchPart(pat, v string) bool { return pat == "" || pat == "*" || pat == v }

// bench runs scenarios.
type bench struct {
	bin      string
	runs     int
	prefix   string
	progress io.Writer
	sport    uint16 // next flow source port: each run's flow is a new conntrack entry
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

// withLab builds a lab for nat, runs the scenarios in it (and the idle measurement when
// idleFor > 0, the drain when drain is set), adds the figures to rep and removes the lab.
func (b *bench) withLab(ctx context.Context, nat string, scenarios []scenario, idleFor time.Duration, drain bool, rep *benchReport) (err error) {
	b.logf("building a lab with NAT %s", nat)
	lab, err := netlab.New(netlab.Options{Prefix: b.prefix, NAT: nat, Servers: true})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := lab.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove lab %s: %w", lab.Prefix(), cerr))
		}
	}()
	if err := lab.StartChat(); err != nil {
		return err
	}
	if idleFor > 0 {
		for _, name := range []string{"default", "tuned"} {
			r, err := b.idle(ctx, lab, name, idleFor)
			if err != nil {
				return fmt.Errorf("idle %s: %w", name, err)
			}
			rep.Idle = append(rep.Idle, r)
		}
	}
	if drain {
		r, err := b.drain(ctx, lab, nat)
		rep.Drain = append(rep.Drain, r)
		if err != nil {
			return err
		}
	}
	for _, s := range scenarios {
		var results []runResult
		var errs []string
		for i := range b.runs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.sport++
			r, err := b.run(ctx, lab, s, b.sport)
			if err != nil {
				b.logf("%s run %d/%d FAILED: %v", s, i+1, b.runs, err)
				errs = append(errs, err.Error())
				if herr := lab.Heal(1); herr != nil { // leave the lab clean for the next run
					return herr
				}
				continue
			}
			b.logf("%s run %d/%d: %s", s, i+1, b.runs, r)
			results = append(results, r)
		}
		rep.Scenarios = append(rep.Scenarios, summarize(s, results, errs))
	}
	return nil
}

// runResult is what one run measured. A negative duration was not measured.
type runResult struct {
	RestoreFlow, RestoreNew, Failback, Switch, Moved time.Duration
	Flaps                                            int
	FlowLoss                                         float64 // loss30: % of the flow's datagrams lost after the move
	FailbackTCP                                      string  // "kept" or "broken": the chat opened on isp2, after the failback
	Usage                                            netlab.Usage
}

func (r runResult) String() string {
	return fmt.Sprintf("restore_flow %s, restore_new %s, moved %s, failback %s (tcp %s), switch %s, flaps %d, flow loss after the move %.1f %%, cpu %s, vmhwm %d KiB",
		r.RestoreFlow, r.RestoreNew, r.Moved, r.Failback, r.FailbackTCP, r.Switch, r.Flaps, r.FlowLoss, r.Usage.CPU, r.Usage.VmHWM/1024)
}

// run is one measurement: a fresh daemon, a fresh flow, break isp1, heal it.
func (b *bench) run(ctx context.Context, lab *netlab.Lab, s scenario, sport uint16) (res runResult, err error) {
	res = runResult{RestoreFlow: -1, RestoreNew: -1, Failback: -1, Switch: -1, Moved: -1}
	d, err := startDaemon(ctx, lab, b.bin, s.daemonConfig(), 20*time.Second, nil)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, d.Stop()) }()
	flow, err := lab.StartFlow(netlab.FlowOptions{SrcPort: sport, ReplyTimeout: 500 * time.Millisecond})
	if err != nil {
		return res, err
	}
	defer flow.Stop()
	if err := waitFlowOK(ctx, flow, 3*time.Second); err != nil {
		return res, fmt.Errorf("the flow does not get replies before the fault: %w", err)
	}
	// A steady state, then a random phase of the probe round: detection depends on it.
	sleepCtx(ctx, 300*time.Millisecond+rand.N(s.daemonConfig().Interval))

	newConn, stopNew := watchNewTCP(ctx, lab, "isp2", 30*time.Second)
	defer stopNew()

	cut := time.Now()
	if err := lab.Break(1, s.Fault); err != nil {
		return res, err
	}
	var moved api.Event
	if s.Fault == netlab.Loss30 {
		moved, err = d.WaitEvent(ctx, 15*time.Second, cut, "isp2 to carry the traffic", netlab.ActiveIs("isp2"))
		if err != nil {
			return res, err
		}
		// The flow's loss once isp2 carries new traffic: a pinned flow stays on the degraded isp1.
		sleepCtx(ctx, time.Until(moved.Time.Add(time.Second)))
		before := flow.Report()
		sleepCtx(ctx, max(2*time.Second, time.Until(cut.Add(10*time.Second))))
		after := flow.Report()
		if n := after.Sent - before.Sent; n > 0 {
			res.FlowLoss = 100 * float64(n-(after.Received-before.Received)) / float64(n)
		}
		res.Flaps = d.Events().Count(cut, cut.Add(10*time.Second), isp1State)
	} else {
		moved, err = d.WaitEvent(ctx, 15*time.Second, cut, "the failover to isp2", netlab.ActiveIs("isp2"))
		if err != nil {
			return res, err
		}
		if res.RestoreFlow, _, err = flowRestored(ctx, flow, cut, moved.Time.Add(700*time.Millisecond), 10*time.Second); err != nil {
			return res, err
		}
		res.Flaps = d.Events().Count(cut, time.Now(), isp1State)
	}
	res.Moved, res.Switch = moved.Time.Sub(cut), moved.Took
	at := newConn()
	if at.IsZero() {
		return res, errors.New("no new TCP connection through isp2 within 30 s of the cut")
	}
	res.RestoreNew = at.Sub(cut)

	// A connection opened on the backup must outlive the failback.
	chat, err := openChat(ctx, lab, "isp2")
	if err != nil {
		return res, fmt.Errorf("after the failover: %w", err)
	}
	defer chat.Close()

	healed := time.Now()
	if err := lab.Heal(1); err != nil {
		return res, err
	}
	back, err := d.WaitEvent(ctx, 45*time.Second, healed, "the failback to isp1", netlab.ActiveIs("isp1"))
	if err != nil {
		return res, err
	}
	res.Failback = back.Time.Sub(healed)
	res.FailbackTCP = "kept"
	if err := chatStays(ctx, chat, "isp2"); err != nil {
		res.FailbackTCP = "broken"
		b.logf("%s: the connection opened on isp2 did not survive the failback: %v", s, err)
	}
	if res.Usage, err = d.Usage(); err != nil {
		return res, err
	}
	return res, nil
}

func isp1State(ev api.Event) bool { return ev.Kind == api.KindState && ev.Uplink == "isp1" }

// watchNewTCP runs firstNewTCP in the background for at most limit. first waits for its answer
// (zero when none came within limit); stop ends the attempts and waits for them.
func watchNewTCP(ctx context.Context, lab *netlab.Lab, want string, limit time.Duration) (first func() time.Time, stop func()) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	found := make(chan time.Time, 1)
	var wg sync.WaitGroup
	wg.Go(func() { found <- firstNewTCP(ctx, lab, want) })
	var at time.Time
	var once sync.Once
	first = func() time.Time {
		once.Do(func() { at = <-found })
		return at
	}
	return first, func() { cancel(); wg.Wait() }
}

// firstNewTCP opens a new TCP connection from the LAN every 25 ms (200 ms timeout each, at most
// 8 at once) until one succeeds through the wanted uplink, and returns when it did (zero when
// ctx ended first).
func firstNewTCP(ctx context.Context, lab *netlab.Lab, want string) time.Time {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	found := make(chan time.Time, 1)
	slots := make(chan struct{}, 8)
	dst := netip.AddrPortFrom(netlab.Server4, netlab.TCPPort)
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}
		case at := <-found:
			return at
		case slots <- struct{}{}:
		}
		wg.Go(func() {
			defer func() { <-slots }()
			c, done := context.WithTimeout(ctx, 200*time.Millisecond)
			defer done()
			if via, err := lab.CheckTCP(c, netlab.RoleLAN, dst); err == nil && ispOf(via) == want {
				select {
				case found <- time.Now():
				default:
				}
			}
		})
		select {
		case <-ctx.Done():
			return time.Time{}
		case at := <-found:
			return at
		case <-t.C:
		}
	}
}

// outageAfter returns the first outage of r that ends at or after cut.
func outageAfter(r netlab.FlowReport, cut time.Time) (netlab.Outage, bool) {
	for _, o := range r.Outages {
		if !o.End.Before(cut) {
			return o, true
		}
	}
	return netlab.Outage{}, false
}

// flowRestored waits until the outage that followed cut has ended and returns cut → the first
// answered datagram, and how many were lost. No outage by settled (when every datagram sent
// until after the switch has been judged) means the flow lost nothing: 0.
func flowRestored(ctx context.Context, f *netlab.Flow, cut, settled time.Time, limit time.Duration) (time.Duration, int, error) {
	deadline := time.Now().Add(limit)
	for {
		o, found := outageAfter(f.Report(), cut)
		switch {
		case found && !o.Ongoing:
			return max(0, o.End.Sub(cut)), o.Lost, nil
		case !found && time.Now().After(settled):
			return 0, 0, nil
		}
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("the flow got no reply for %s after the cut", limit)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// idle runs uplinkd with the named config in lab for period and measures its CPU and peak RSS.
func (b *bench) idle(ctx context.Context, lab *netlab.Lab, name string, period time.Duration) (idleReport, error) {
	cfg := defaultConfig
	if name == "tuned" {
		cfg = tunedConfig
	}
	b.logf("idle %s: uplinkd with 2 uplinks × %d targets every %s for %s", name, len(netlab.Targets4), cfg.Interval, period)
	d, err := startDaemon(ctx, lab, b.bin, cfg, 20*time.Second, nil)
	if err != nil {
		return idleReport{}, err
	}
	defer d.Stop()
	sleepCtx(ctx, time.Second) // past the start-up work
	u0, err := d.Usage()
	if err != nil {
		return idleReport{}, err
	}
	t0 := time.Now()
	sleepCtx(ctx, period)
	if ctx.Err() != nil {
		return idleReport{}, ctx.Err()
	}
	u1, err := d.Usage()
	if err != nil {
		return idleReport{}, err
	}
	el := time.Since(t0)
	r := idleReport{
		Config: name, Interval: cfg.Interval.String(), Seconds: round(el.Seconds(), 1),
		CPUPercent: round(100*(u1.CPU-u0.CPU).Seconds()/el.Seconds(), 2),
		VmHWMKiB:   u1.VmHWM / 1024, Target: "< 1 % CPU, < 30 MiB RSS",
	}
	b.logf("idle %s: %.2f %% CPU, VmHWM %d KiB", name, r.CPUPercent, r.VmHWMKiB)
	return r, nil
}

// The JSON report.
type benchReport struct {
	Started    time.Time        `json:"started"`
	Kernel     string           `json:"kernel"`
	CPUs       int              `json:"cpus"`
	Runs       int              `json:"runs"`
	Method     string           `json:"method"`
	Scenarios  []scenarioReport `json:"scenarios"`
	Idle       []idleReport     `json:"idle"`
	Drain      []drainReport    `json:"drain,omitempty"`
	References []string         `json:"references"`
}

type scenarioReport struct {
	Fault       string   `json:"fault"`
	NAT         string   `json:"nat"`
	Config      string   `json:"config"`
	Interval    string   `json:"interval"`
	Timeout     string   `json:"timeout"`
	DownAfter   int      `json:"down_after"`
	UpAfter     int      `json:"up_after"`
	Runs        int      `json:"runs"` // successful runs the figures are taken over
	Errors      []string `json:"errors,omitempty"`
	RestoreFlow *stat    `json:"restore_flow,omitempty"`
	RestoreNew  *stat    `json:"restore_new,omitempty"`
	Failback    *stat    `json:"failback,omitempty"`
	FailbackTCP *kept    `json:"failback_tcp,omitempty"` // did the connection opened on isp2 outlive the failback
	Switch      *stat    `json:"switch,omitempty"`
	Moved       *stat    `json:"moved,omitempty"`
	Flaps       *stat    `json:"flaps,omitempty"`         // counts, not milliseconds
	FlowLoss    *stat    `json:"flow_loss_pct,omitempty"` // loss30: the long-lived flow's loss after the move, percent
	CPU         *stat    `json:"cpu,omitempty"`           // uplinkd's CPU time over the whole run
	VmHWMKiB    int64    `json:"vmhwm_kib,omitempty"`
	Target      string   `json:"target"`
}

// stat is a median and a maximum; durations in milliseconds.
type stat struct {
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

type idleReport struct {
	Config     string  `json:"config"`
	Interval   string  `json:"interval"`
	Seconds    float64 `json:"seconds"`
	CPUPercent float64 `json:"cpu_pct"` // of one core
	VmHWMKiB   int64   `json:"vmhwm_kib"`
	Target     string  `json:"target"`
}

var references = []string{
	"dpinger, 100 ms probes, 2 s window: 0.75–0.85 s in a lab like this",
	"dpinger with pfSense's default gateway-monitoring settings: 14.9 s",
	"OpenWrt mwan3 defaults: about a minute",
}

// summarize turns a scenario's runs into medians and maxima.
func summarize(s scenario, runs []runResult, errs []string) scenarioReport {
	cfg := s.daemonConfig()
	r := scenarioReport{
		Fault: s.Fault.String(), NAT: s.NAT, Config: s.Config, Interval: cfg.Interval.String(), Timeout: cfg.Timeout.String(),
		DownAfter: cfg.DownAfter, UpAfter: cfg.UpAfter, Runs: len(runs), Errors: errs, Target: s.target(),
	}
	if s.NAT == netlab.NATSNAT {
		r.Target += "; as fast as masquerade"
	}
	ms := func(get func(runResult) time.Duration) *stat { return msStat(runs, get) }
	r.RestoreFlow = ms(func(x runResult) time.Duration { return x.RestoreFlow })
	r.RestoreNew = ms(func(x runResult) time.Duration { return x.RestoreNew })
	r.Failback = ms(func(x runResult) time.Duration { return x.Failback })
	r.Switch = ms(func(x runResult) time.Duration { return x.Switch })
	r.Moved = ms(func(x runResult) time.Duration { return x.Moved })
	r.CPU = ms(func(x runResult) time.Duration { return x.Usage.CPU })
	r.FailbackTCP = keptOf(runs, func(x runResult) string { return x.FailbackTCP })
	var flaps, loss []float64
	for _, x := range runs {
		flaps = append(flaps, float64(x.Flaps))
		loss = append(loss, x.FlowLoss)
		r.VmHWMKiB = max(r.VmHWMKiB, x.Usage.VmHWM/1024)
	}
	if s.Fault == netlab.Loss30 {
		r.Flaps, r.FlowLoss = medianMax(flaps), medianMax(loss)
	}
	return r
}

// msStat is the median and maximum in milliseconds of a duration the runs measured (negative:
// not measured); nil when none did.
func msStat[R any](runs []R, get func(R) time.Duration) *stat {
	var v []float64
	for _, x := range runs {
		if d := get(x); d >= 0 {
			v = append(v, float64(d)/float64(time.Millisecond))
		}
	}
	return medianMax(v)
}

// medianMax returns nil for no values. The median of an even count is the mean of the middle two.
func medianMax(v []float64) *stat {
	if len(v) == 0 {
		return nil
	}
	v = slices.Clone(v)
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return &stat{Median: round(m, 3), Max: round(v[len(v)-1], 3)}
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if x < 0 {
		return -float64(int64(-x*p+0.5)) / p
	}
	return float64(int64(x*p+0.5)) / p
}

// printTable prints the report for a person: seconds as median/max.
func printTable(w io.Writer, rep benchReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "fault\tnat\tconfig\truns\trestore_flow\trestore_new\tfailback\tfailback_tcp\tswitch\tmoved\tflaps\tflow_loss\tcpu\tvmhwm\ttarget\n")
	for _, s := range rep.Scenarios {
		flaps, loss := "-", "-"
		if s.Flaps != nil {
			flaps = fmt.Sprintf("%g/%g", s.Flaps.Median, s.Flaps.Max)
		}
		if s.FlowLoss != nil {
			loss = fmt.Sprintf("%.0f/%.0f %%", s.FlowLoss.Median, s.FlowLoss.Max)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			s.Fault, s.NAT, s.Config, s.Runs, fmtSecs(s.RestoreFlow), fmtSecs(s.RestoreNew), fmtSecs(s.Failback), s.FailbackTCP,
			fmtMS(s.Switch), fmtSecs(s.Moved), flaps, loss, fmtSecs(s.CPU), fmtMiB(s.VmHWMKiB), s.Target)
	}
	tw.Flush()
	fmt.Fprintln(w, "durations: median/max seconds (switch: milliseconds); failback_tcp: runs in which a TCP connection opened on isp2 still answered through isp2 after the failback; flow_loss: loss30 only, the running flow's loss after the move; cpu: uplinkd's CPU time per run; vmhwm: peak RSS")
	for _, s := range rep.Scenarios {
		for _, e := range s.Errors {
			fmt.Fprintf(w, "FAILED %s/%s/%s: %s\n", s.Fault, s.NAT, s.Config, firstLine(e))
		}
	}
	printDrainTable(w, rep.Drain)
	if len(rep.Idle) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "idle\tinterval\tseconds\tcpu (one core)\tvmhwm\ttarget\n")
		for _, r := range rep.Idle {
			fmt.Fprintf(tw, "%s\t%s\t%g\t%.2f %%\t%s\t%s\n", r.Config, r.Interval, r.Seconds, r.CPUPercent, fmtMiB(r.VmHWMKiB), r.Target)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "for comparison:")
	for _, r := range rep.References {
		fmt.Fprintln(w, "  "+r)
	}
}

func fmtSecs(s *stat) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f/%.2f", s.Median/1000, s.Max/1000)
}

func fmtMS(s *stat) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f ms", s.Median, s.Max)
}

func fmtMiB(kib int64) string {
	if kib <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// kernelRelease is `uname -r`, for the report.
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
