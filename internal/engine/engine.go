// Package engine is uplinkd's run loop: it owns every piece of state, turns probe rounds and
// kernel events into decisions (uplink.Machine, uplink.Decide) and makes the kernel match them
// through small interfaces (Dataplane, Kernel, StartProber, Notifier) that tests replace with
// fakes.
// One goroutine, the loop, touches the state; everything else talks to it over channels.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/internal/servercheck"
	"github.com/uplinkd/uplinkd/internal/statefile"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
)

const (
	// retryApply is how soon a failed change of the box is tried again.
	retryApply = time.Second
	// checkInterval is how often the box is compared with the desired state in case a
	// monitor (Options.PinDamage, KernelEvents) missed a deletion; the monitors report at once.
	checkInterval = 30 * time.Second
	// addrSettle is how long a burst of address or gateway changes may last before it is
	// applied in one go.
	addrSettle = 50 * time.Millisecond
	// tickEvery is the loop's periodic wake-up. It weighs each uplink's probe mode (one read
	// of the connection-mark counters) and publishes the RTT and loss figures if they aged:
	// window averages, for which a second is fresher than any reader needs (a scrape every
	// 15 s, a person); decisions are published at once. One timer, not one for each: every
	// runtime timer wakes the idle daemon's threads (see probe/alarm.go), and at 250 ms the
	// status refresh alone was most of its wake-ups.
	tickEvery = time.Second
	// requestTimeout bounds how long an API request waits for the loop to take it.
	requestTimeout = 10 * time.Second
)

// Options are what an Engine is made of. Config, Dataplane, Kernel and StartProber are
// required.
type Options struct {
	Config *uplink.Config
	// Load reads the configuration again for a reload (config.Load).
	Load        func(path string) (*uplink.Config, error)
	Dataplane   Dataplane
	Kernel      Kernel
	StartProber StartProber
	Notifier    Notifier       // nil: none
	Log         *slog.Logger   // nil: discard
	LogLevel    *slog.LevelVar // set from the configuration, also on reload; nil: not managed
	Version     string
	// KernelEvents and KernelDone come from routing.Monitor: link, address, gateway and
	// ownership changes, and the monitor's end. Nil: none.
	KernelEvents <-chan routing.Event
	KernelDone   <-chan error
	// PinDamage reports that something of the nftables table was deleted. Nil: none.
	PinDamage <-chan struct{}
	// Watchdog is the interval of Notifier.Watchdog calls from the loop; 0: none.
	Watchdog time.Duration
	// NewTracker makes the keepalived track-file writer for [ha] track_file; nil: the
	// configuration's [ha] section is refused at start and reload.
	NewTracker func(trackFile string) Tracker
	// OnRound, if set, sees every probe round the loop takes in (metrics); it runs in the
	// loop and must not block.
	OnRound func(uplink string, r uplink.Round)
	// OnReload, if set, sees every configuration the loop accepted on reload (hooks); it runs
	// in the loop and must not block.
	OnReload func(*uplink.Config)
	// LastRA, if set, returns the last router advertisement sent per LAN interface, for the
	// status; it must be quick and safe to call from the loop.
	LastRA func() []api.RASent
	// State, if set, keeps the drains across a restart.
	State *statefile.Store
	// CheckServers, if set, checks the servers behind the published names (servercheck.Start).
	CheckServers CheckServers
}

// Engine is the running daemon's state. Create it with New, run it with Run; Status, Drain,
// Reload and Subscribe may be called from any goroutine (they implement control.Backend).
type Engine struct {
	opt     Options
	log     *slog.Logger
	notify  Notifier
	ctx     context.Context // set by Run; ends when the engine stops
	cfg     *uplink.Config
	members []*member
	started time.Time
	// lan is what the [ipv6] LAN interfaces hold: the prefixes followed for the uplinks.
	lan map[string][]routing.AddrPrefix
	// lanRead is when lan was read: a followed delegation's lifetimes end that long after it.
	lanRead time.Time

	decision uplink.Decision // the last one applied
	steering uplink.Steering // services with quality targets: where each goes, with hysteresis
	state    dataplane.State // what the box should look like: the last one set
	// routes are state's default routes as the status shows them.
	routes  struct{ active, route4, route6 string }
	tracker Tracker // nil when the box is not in a pair
	standby bool    // the operator put this box in standby (uplinkctl standby)
	ready   bool
	retry   *time.Timer
	// statusAged: rounds came in since the last snapshot; the next tick publishes one.
	statusAged bool
	// evidenceDue fires when rounds held for passive evidence may be judged; nil: none held.
	evidenceDue <-chan time.Time
	// settleDue fires when a burst of address changes has settled and is to be applied; nil
	// when none is pending.
	settleDue <-chan time.Time
	repairs   repairs
	// doubtUntil: an active uplink's probes failed lately; metered backups are probed fully.
	doubtUntil time.Time

	servers serverChecks            // the published names' servers and their health
	checked chan servercheck.Result // their checks' outcomes
	// checkSettle fires when verdicts that change the answers have settled; nil: none pending.
	checkSettle <-chan time.Time
	pins        atomic.Pointer[[]probe.Pin] // the live uplinks' pins, for the checks of other sites

	rounds   chan roundMsg
	requests chan func()
	running  chan struct{} // closed when Run has set ctx
	hub      *hub
	status   atomic.Pointer[api.Status]
	pinning  atomic.Bool // the configuration's pin_connections, for Status
	counts   counter
}

// New checks the options and makes an engine; nothing touches the kernel until Run.
func New(opt Options) (*Engine, error) {
	if opt.Config == nil || opt.Dataplane == nil || opt.Kernel == nil || opt.StartProber == nil {
		return nil, errors.New("engine: Config, Dataplane, Kernel and StartProber are required")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Notifier == nil {
		opt.Notifier = nopNotifier{}
	}
	if opt.Load == nil {
		opt.Load = func(string) (*uplink.Config, error) { return nil, errors.New("reloading is not configured") }
	}
	e := &Engine{
		opt:      opt,
		log:      opt.Log,
		notify:   opt.Notifier,
		cfg:      opt.Config,
		rounds:   make(chan roundMsg, 64),
		checked:  make(chan servercheck.Result, 64),
		requests: make(chan func()),
		running:  make(chan struct{}),
		hub:      newHub(),
		retry:    time.NewTimer(time.Hour),
	}
	e.retry.Stop()
	e.setSteering()
	if err := e.setTracker(opt.Config.HA.TrackFile); err != nil {
		return nil, err
	}
	e.counts.kernel = opt.Kernel
	e.pinning.Store(opt.Config.Daemon.Pinning)
	e.setLogLevel()
	e.status.Store(&api.Status{Version: opt.Version, Config: opt.Config.Path})
	return e, nil
}

// Run runs the engine until ctx ends or the kernel monitor fails. It leaves routing as it is
// when it returns (fail static) unless the configuration asks for cleanup on exit.
func (e *Engine) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.ctx, e.started = ctx, time.Now()
	close(e.running)
	for _, u := range e.cfg.Uplinks {
		e.members = append(e.members, e.newMember(u, nil))
	}
	e.restoreDrains()
	e.startChecks()
	defer e.stopChecks()
	e.learnLAN()
	e.prepareRouting()
	for _, m := range e.members {
		e.startProbing(m)
	}
	e.publishStatus()
	err := e.loop(ctx)
	e.notify.Stopping()
	stopping := time.Now()
	for _, m := range e.members {
		m.stopProbing()
	}
	e.log.Debug("probers stopped", "took", time.Since(stopping))
	if e.cfg.Daemon.CleanupOnExit {
		e.cleanup()
	} else {
		e.log.Info("stopping; routing stays as it is (fail static)", "active", strings.Join(e.decision.Active, ","))
	}
	return err
}

func (e *Engine) loop(ctx context.Context) error {
	// The first verdict waits for the first probe round of every uplink, so that startup does
	// not route through an uplink that is obviously dead.
	first := time.NewTimer(e.firstVerdictDelay())
	defer first.Stop()
	watchdog := newTicker(e.opt.Watchdog)
	defer watchdog.Stop()
	check := time.NewTicker(checkInterval)
	defer check.Stop()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-e.opt.KernelDone:
			// A monitor that ended because we are stopping is no failure; its context may be
			// the parent of ours, cancelled a moment before ours is.
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("netlink monitor: %w", err)
		case r := <-e.rounds:
			if r.from.current(r.gen) {
				e.onRound(r.from, r.round)
			}
		case r := <-e.checked:
			e.onChecked(r)
		case <-e.checkSettle:
			e.checkSettle = nil
			e.reconcile("server check")
		case ev := <-e.opt.KernelEvents:
			e.onKernelEvent(ev)
		case <-e.repairs.due():
			e.repair()
		case <-first.C:
			e.reconcile("startup")
			e.ready = true
			e.steerVRRP()
			e.notify.Ready(e.summary())
		case <-e.retry.C:
			e.opt.Dataplane.Forget()
			e.reconcile("retry")
		case req := <-e.requests:
			req()
		case <-e.settleDue:
			e.settleDue = nil
			if e.ready {
				e.reconcile("address change")
			}
		case <-e.evidenceDue:
			e.releaseHeld()
		case <-watchdog.C:
			e.notify.Watchdog()
		case <-check.C:
			e.check("check")
		case now := <-tick.C:
			e.weighProbeModes(now, true)
			if e.statusAged {
				e.publishStatus()
			}
		case <-e.opt.PinDamage:
			e.check("connection-mark table damaged")
		}
	}
}

// onRound takes in one probe round and asks that uplink's machine (only it: a machine counts
// its own rounds) for a verdict. Most rounds change none: then only the published figures
// (RTT, loss) age, and they are refreshed at the next tick (tickEvery), not per round — with 64
// uplinks a whole reconcile per round would cost more than the probing.
func (e *Engine) onRound(m *member, r uplink.Round) {
	if len(m.held) > 0 {
		m.held = append(m.held, r) // behind the rounds that wait for the evidence window
		return
	}
	if wait := e.weighEvidence(m, &r); wait > 0 {
		e.holdRound(m, r, wait)
		return
	}
	e.take(m, r)
}

// take feeds a judged round to m's machines and acts on a verdict.
func (e *Engine) take(m *member, r uplink.Round) {
	m.observe(r)
	m.cost.add(m.cfg.Probe, r)
	if e.opt.OnRound != nil {
		e.opt.OnRound(m.cfg.Name, r)
	}
	if !e.ready {
		return
	}
	now := time.Now()
	e.noteDoubt(m, r, now)
	if e.decide(m, now) {
		e.apply("probe round", now)
		return
	} else if e.steered() && e.steering.Observe(e.candidates(), e.cfg.Services, now) {
		e.apply("service quality", now)
		return
	}
	e.statusAged = true
}

func (e *Engine) firstVerdictDelay() time.Duration {
	var longest time.Duration
	for _, u := range e.cfg.Uplinks {
		longest = max(longest, u.Probe.Timeout)
	}
	return longest + 100*time.Millisecond
}

// newTicker ticks every d, or never when d is 0.
func newTicker(d time.Duration) *time.Ticker {
	if d <= 0 {
		t := time.NewTicker(time.Hour)
		t.Stop()
		return t
	}
	return time.NewTicker(d)
}

func (e *Engine) setLogLevel() {
	if e.opt.LogLevel == nil {
		return
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(e.cfg.Daemon.LogLevel)); err == nil {
		e.opt.LogLevel.Set(lv)
	}
}

// prepareRouting installs the uplink tables and fwmark rules before the first probe, so that
// probes leave through their own uplink from the start, and the connection-mark table, which
// also keeps the probes' source address from the operator's NAT. What the last run left (the
// active routes, a connection-mark table with its pins) stays until the first verdict.
func (e *Engine) prepareRouting() {
	s := e.desired(true)
	e.state = s
	if res, err := e.opt.Dataplane.Set(s); err != nil {
		e.log.Error("preparing uplink tables failed; probes may fail until the first reconcile", "err", err)
	} else if res.Messages > 0 {
		e.log.Info("uplink tables and rules installed", "messages", res.Messages)
	}
}

// cleanup removes what uplinkd owns, on exit when cleanup_on_exit is set.
func (e *Engine) cleanup() {
	if ch, err := e.opt.Dataplane.Cleanup(); err != nil {
		e.log.Error("cleanup on exit", "err", err)
	} else {
		e.log.Info("removed owned routing on exit", "changes", ch.Messages)
	}
}

func (e *Engine) member(name string) *member {
	for _, m := range e.members {
		if m.cfg.Name == name {
			return m
		}
	}
	return nil
}
