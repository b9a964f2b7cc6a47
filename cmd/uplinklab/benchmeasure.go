package main

// How one failover run is measured: a fresh daemon, a flow, the cut, the heal.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

// bench runs scenarios.
type bench struct {
	bin      string
	runs     int
	prefix   string
	progress io.Writer
	sport    uint16 // next flow source port: each run's flow is a new conntrack entry
	svgDir   string // where each run's SVG timeline goes; "" none
	svgRun   int
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
	var rec *rttRecorder
	recStart := time.Now()
	if b.svgDir != "" {
		rec = recordRTT(ctx, d, 100*time.Millisecond)
		defer rec.finish()                  // on every path; a second finish is harmless
		sleepCtx(ctx, 700*time.Millisecond) // a second before the cut in the picture
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
	if rec != nil {
		sleepCtx(ctx, 500*time.Millisecond) // the failback's tail in the picture
		rtt, initial, active := rec.finish()
		b.svgRun++
		file := filepath.Join(b.svgDir, fmt.Sprintf("%s-%s-%s-%d.svg", s.Fault, s.NAT, s.Config, b.svgRun))
		data := timelineData{
			Title: fmt.Sprintf("%s: a %s failure of isp1 from the cut to the heal; isp2 is the backup", s, s.Fault),
			Start: recStart, End: time.Now(), Marks: []timeMark{{cut, "cut"}, {healed, "heal"}},
			Uplinks: []string{"isp1", "isp2"}, Initial: initial, Active: active, Events: timelineEvents(d.Events().All()),
			Outages: flow.Report().Outages, RTT: rtt,
		}
		if err := writeSVGFile(file, data); err != nil {
			return res, err
		}
		b.logf("%s: timeline written to %s", s, file)
	}
	return res, nil
}

func writeSVGFile(path string, d timelineData) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeTimelineSVG(f, d); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
	w, err := measureCPU(ctx, d.Proc().Pid(), time.Second, period) // settle: past the start-up work
	if err != nil {
		return idleReport{}, err
	}
	r := idleReport{
		Config: name, Interval: cfg.Interval.String(), Seconds: w.Seconds, CPUPercent: w.CPUPct,
		VmHWMKiB: w.End.VmHWM / 1024, Target: "< 1 % CPU, < 30 MiB RSS",
	}
	b.logf("idle %s: %.2f %% CPU, VmHWM %d KiB", name, r.CPUPercent, r.VmHWMKiB)
	return r, nil
}
