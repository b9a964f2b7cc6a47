package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

// demoBudget bounds the demo after the binary is built; cleanup comes on top and is quick.
const demoBudget = 55 * time.Second

// cmdDemo builds a lab, runs uplinkd in it and narrates a silent failure, a failback, a carrier
// loss and its heal while a long-lived UDP flow from the LAN shows what a user would feel.
func cmdDemo(ctx context.Context, args []string) error {
	return runDemo(ctx, args, os.Stdout)
}

func runDemo(ctx context.Context, args []string, w io.Writer) (err error) {
	fs, prefix := newFlags("demo")
	*prefix = "" // a unique lab unless asked otherwise: never clash with `uplinklab up`
	fast := fs.Bool("fast", false, "probe every 100ms (timeout 200ms, down_after 3, up_after 5) instead of the shipped 500ms defaults")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	hold := fs.Duration("hold", 3*time.Second, "how long to stay on isp2 before healing isp1")
	svg := fs.String("svg", "", "also draw the demo as an SVG timeline into this `file` (states, active uplinks, the LAN flow's blackouts, probe RTTs)")
	v6 := fs.Bool("ipv6", false, "IPv6 with a prefix per ISP instead: RAs move the client between prefixes, NPTv6 carries old sources")
	in := fs.Bool("inbound", false, "customers reaching in instead: a customer resolves www through Unbound and connects; the answer follows the live ISP")
	sites := fs.Bool("sites", false, "two sites instead: paris loses power, customers move to lyon, the power comes back")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*v6 || *in || *sites) && *svg != "" {
		return errors.New("-svg draws the IPv4 demo only")
	}
	if n := btoi(*v6) + btoi(*in) + btoi(*sites); n > 1 {
		return errors.New("-ipv6, -inbound and -sites are separate demos: run them one after the other")
	}
	if err := needRoot(); err != nil {
		return err
	}
	tl := &timeline{w: w, start: time.Now()}
	cfg, cfgName := defaultConfig, "shipped defaults"
	if *fast {
		cfg, cfgName = tunedConfig, "-fast"
	}
	path, done, err := uplinkdBinary(ctx, *bin, tl.say)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, demoBudget)
	defer cancel()
	if *v6 {
		return demoIPv6(ctx, tl, path, cfg, cfgName, *prefix, *hold)
	}
	if *in {
		return demoInbound(ctx, tl, path, cfg, cfgName, *prefix, *hold)
	}
	if *sites {
		return demoSites(ctx, tl, path, cfg, cfgName, *prefix, *hold)
	}

	tl.say("building the lab: lan → gw (uplinkd) → isp1 | isp2 → internet (203.0.113.0/24)")
	lab, err := netlab.New(netlab.Options{Prefix: *prefix, Servers: true})
	if err != nil {
		return err
	}
	defer func() { // always, also after Ctrl-C or a failed step
		if cerr := lab.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove lab %s: %w", lab.Prefix(), cerr))
			return
		}
		tl.say("lab %s removed", lab.Prefix())
	}()
	tl.say("starting uplinkd in %s (%s: probe every %s, timeout %s, down after %d, up after %d rounds)",
		lab.NS(netlab.RoleGW), cfgName, cfg.Interval, cfg.Timeout, cfg.DownAfter, cfg.UpAfter)
	d, err := startDaemon(ctx, lab, path, cfg, 15*time.Second, func(ev api.Event) { tl.say("uplinkd: %s", describeEvent(ev)) })
	if err != nil {
		return fmt.Errorf("start uplinkd: %w", err)
	}
	defer d.Stop()
	st, err := d.WaitStatus(ctx, time.Second, "a status", func(api.Status) bool { return true })
	if err != nil {
		return err
	}
	for _, u := range st.Uplinks {
		tl.say("uplinkd: %s is %s (%s)", u.Name, u.State, u.Reason)
	}
	tl.say("uplinkd: active %s", strings.Join(st.Active, ","))

	// The picture always collects (marks and outages cost nothing); only -svg records RTTs and
	// draws it.
	pic := &demoPicture{path: *svg, start: time.Now()}
	if pic.path != "" {
		pic.rec = recordRTT(ctx, d, 100*time.Millisecond)
		defer pic.rec.finish() // on every path; a second finish is harmless
	}

	var box flowBox
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Go(func() { watchFlow(watchCtx, &box, tl) })
	defer func() { stopWatch(); watching.Wait(); box.set(nil) }()

	failLimit, backLimit := 10*time.Second, 20*time.Second
	steps := []demoStep{
		{name: "silent failure", fault: netlab.SilentFailure,
			breakMsg: "breaking isp1 silently (its upstream dies; the link stays up)",
			healMsg:  "healing isp1 (its upstream comes back)"},
		{name: "carrier loss", fault: netlab.CarrierLoss,
			breakMsg: "pulling isp1's cable (carrier loss on wan1)",
			healMsg:  "plugging isp1's cable back in"},
	}
	var results []demoResult
	defer func() { printDemoSummary(tl, results, err) }()
	for i, s := range steps {
		r := demoResult{step: s.name}
		tl.say("── step %d: %s ──", i+1, s.name)
		// A fresh flow per step: the last one may be pinned to isp2 by now.
		flow, err := lab.StartFlow(netlab.FlowOptions{SrcPort: uint16(40000 + i), ReplyTimeout: 300 * time.Millisecond})
		if err != nil {
			return err
		}
		box.set(flow)
		tl.say("LAN starts a long-lived UDP flow to %s:%d (a datagram every 10 ms from port %d)", netlab.Server4, netlab.EchoPort, 40000+i)
		if err := waitFlowOK(ctx, flow, 3*time.Second); err != nil {
			return err
		}
		sleepCtx(ctx, time.Second) // let the timeline show the steady state
		tl.say("%s", s.breakMsg)
		cut := time.Now()
		pic.mark(cut, "cut")
		if err := lab.Break(1, s.fault); err != nil {
			return err
		}
		ev, err := d.WaitEvent(ctx, failLimit, cut, "the failover to isp2", netlab.ActiveIs("isp2"))
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		r.failover, r.took = ev.Time.Sub(cut), ev.Took
		tl.say("failover: isp2 carries the traffic %s after the cut (the route switch itself took %s)", secs(r.failover), ev.Took.Round(10*time.Microsecond))
		out, lost, err := flowRestored(ctx, flow, cut, ev.Time.Add(500*time.Millisecond), failLimit)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		r.outage = out
		tl.say("the flow is back: it was out for %s (%s lost)", secs(out), datagrams(lost))
		tl.say("holding %s on isp2", *hold)
		sleepCtx(ctx, *hold)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		tl.say("%s", s.healMsg)
		healed := time.Now()
		pic.mark(healed, "heal")
		if err := lab.Heal(1); err != nil {
			return err
		}
		tl.say("waiting for failback: isp1 must answer %d rounds in a row (%s)", cfg.UpAfter, time.Duration(cfg.UpAfter)*cfg.Interval)
		ev, err = d.WaitEvent(ctx, backLimit, healed, "the failback to isp1", netlab.ActiveIs("isp1"))
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		r.failback = ev.Time.Sub(healed)
		tl.say("failback: isp1 carries the traffic again, %s after the heal", secs(r.failback))
		back, lostBack, err := flowRestored(ctx, flow, healed, ev.Time.Add(500*time.Millisecond), failLimit)
		if err != nil {
			return fmt.Errorf("%s failback: %w", s.name, err)
		}
		r.backOutage = back
		r.stayed = ispOf(flow.Report().Via) == "isp2"
		switch {
		case r.stayed:
			tl.say("the running flow stays on isp2: uplinkd keeps a working connection on the uplink it started on")
		case lostBack > 0:
			tl.say("the flow moved back to isp1 with a %s gap (%s lost)", secs(back), datagrams(lostBack))
		default:
			tl.say("the flow moved back to isp1 without losing a datagram")
		}
		c, cancelTCP := context.WithTimeout(ctx, 2*time.Second)
		via, err := lab.CheckTCP(c, netlab.RoleLAN, netip.AddrPortFrom(netlab.Server4, netlab.TCPPort))
		cancelTCP()
		if err != nil {
			return fmt.Errorf("%s: after the failback: %w", s.name, err)
		}
		tl.say("a new TCP connection from the LAN leaves via %s (%s)", via, ispOf(via))
		results = append(results, r)
		pic.outages = append(pic.outages, flow.Report().Outages...)
	}
	if pic.path != "" {
		if err := pic.write(d); err != nil {
			return err
		}
		tl.say("timeline drawn into %s", pic.path)
	}
	return nil
}

// demoPicture collects what `demo -svg` draws.
type demoPicture struct {
	path    string // "": collect, draw nothing
	start   time.Time
	rec     *rttRecorder // nil unless drawn
	marks   []timeMark
	outages []netlab.Outage
}

func (p *demoPicture) mark(at time.Time, label string) {
	p.marks = append(p.marks, timeMark{at, label})
}

func (p *demoPicture) write(d *netlab.Daemon) error {
	rtt, initial, active := p.rec.finish()
	return writeSVGFile(p.path, timelineData{
		Title: "uplinklab demo: a silent failure of isp1, then a carrier loss; isp2 is the backup",
		Start: p.start, End: time.Now(), Marks: p.marks, Uplinks: []string{"isp1", "isp2"},
		Initial: initial, Active: active, Events: timelineEvents(d.Events().All()), Outages: p.outages, RTT: rtt,
	})
}

// demoStep is one fault the demo shows.
type demoStep struct {
	name              string
	fault             netlab.Fault
	breakMsg, healMsg string
}

// demoResult is what one step measured.
type demoResult struct {
	step                   string
	failover, outage, took time.Duration
	failback, backOutage   time.Duration
	stayed                 bool // the flow stayed on isp2 after the failback (pinned)
}

func printDemoSummary(tl *timeline, results []demoResult, err error) {
	tl.say("── summary ──")
	for _, r := range results {
		after := "the flow stayed on isp2"
		if !r.stayed {
			after = "the flow's gap " + secs(r.backOutage)
		}
		tl.say("%-15s failover %s, flow out %s (switch %s); failback %s, %s",
			r.step+":", secs(r.failover), secs(r.outage), r.took.Round(10*time.Microsecond), secs(r.failback), after)
	}
	switch {
	case errors.Is(err, context.Canceled):
		tl.say("interrupted: cleaning up")
	case errors.Is(err, context.DeadlineExceeded):
		tl.say("FAILED: the demo's %s budget ran out: %v", demoBudget, err)
	case err != nil:
		tl.say("FAILED: %v", err)
	}
}

// flowBox holds the demo's current flow; setting a new one stops the old one.
type flowBox struct {
	mu sync.Mutex
	f  *netlab.Flow
}

func (b *flowBox) set(f *netlab.Flow) {
	b.mu.Lock()
	old := b.f
	b.f = f
	b.mu.Unlock()
	if old != nil {
		old.Stop()
	}
}

func (b *flowBox) get() *netlab.Flow {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.f
}

// watchFlow prints the current flow's state every 250 ms when it changed, until ctx ends.
func watchFlow(ctx context.Context, box *flowBox, tl *timeline) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last, lastFlow := "", (*netlab.Flow)(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f := box.get()
		if f == nil {
			continue
		}
		if f != lastFlow {
			last, lastFlow = "", f
		}
		r := f.Report()
		state := "waiting for the first reply"
		switch {
		case len(r.Outages) > 0 && r.Outages[len(r.Outages)-1].Ongoing:
			state = "LOST"
		case r.Via != "":
			host, _, _ := strings.Cut(r.Via, ":")
			state = fmt.Sprintf("ok via %s (%s)", host, ispOf(r.Via))
		}
		if state != last {
			tl.say("LAN → %s: %s", netlab.Server4, state)
			last = state
		}
	}
}

// waitFlowOK waits until the flow gets a reply to a datagram sent from now on.
func waitFlowOK(ctx context.Context, f *netlab.Flow, limit time.Duration) error {
	c, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return f.WaitReply(c, time.Now())
}

// describeEvent renders a daemon event for the timeline.
func describeEvent(ev api.Event) string {
	switch ev.Kind {
	case api.KindState:
		return fmt.Sprintf("%s %s → %s (%s)", ev.Uplink, ev.From, ev.To, ev.Reason)
	case api.KindActive:
		return fmt.Sprintf("traffic moves %s → %s (%s; switch took %s)", orNone(ev.From), orNone(ev.To), ev.Reason, ev.Took.Round(10*time.Microsecond))
	case api.KindServer:
		return fmt.Sprintf("%s's server %s is %s (%s)", ev.Name, ev.Server, ev.To, ev.Reason)
	}
	s := string(ev.Kind)
	if ev.Uplink != "" {
		s += " " + ev.Uplink
	}
	return s + ": " + ev.Reason
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func datagrams(n int) string {
	if n == 1 {
		return "1 datagram"
	}
	return fmt.Sprintf("%d datagrams", n)
}

// secs renders a duration as seconds with millisecond precision.
func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

// timeline prints lines stamped with the seconds since the demo started; safe for concurrent use.
type timeline struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (t *timeline) say(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%6.2fs  %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// demoLab is a demo's lab, removed (and said so) when the demo ends however it ends.
type demoLab struct {
	*netlab.Lab
	tl *timeline
}

func newDemoLab(tl *timeline, opts netlab.Options) (*demoLab, error) {
	lab, err := netlab.New(opts)
	if err != nil {
		return nil, err
	}
	return &demoLab{Lab: lab, tl: tl}, nil
}

// close removes the lab, joining a failure into *err.
func (l *demoLab) close(err *error) {
	if cerr := l.Close(); cerr != nil {
		*err = errors.Join(*err, fmt.Errorf("remove lab %s: %w", l.Prefix(), cerr))
		return
	}
	l.tl.say("lab %s removed", l.Prefix())
}
