package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/version"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const (
	// retryApply is how soon a failed routing change is tried again.
	retryApply = time.Second
	// repairInterval is how often the nftables table is checked for damage in case the
	// nftables monitor missed it (it reports deletions at once).
	repairInterval = 30 * time.Second
)

// member is one uplink as the run loop knows it.
type member struct {
	cfg      uplink.Uplink
	machine  *uplink.Machine
	link     routing.LinkInfo
	linkErr  error
	drained  bool
	drainNow bool // drained with --now: its connections move too
	wasLive  bool // carried connections at the last reconcile
	prober   *prober
	lastSeen []netip.Addr // addresses to flush NAT entries for when it loses traffic
}

// daemon is the run loop's state. Only the loop goroutine touches it; everything else talks to
// it through channels.
type daemon struct {
	ctx     context.Context // ends when the daemon stops; probers and API requests watch it
	cfg     *uplink.Config
	log     *slog.Logger
	router  *routing.Router
	members []*member
	active  []string
	applied string // the last plan applied, as text; "" forces the next apply
	retry   *time.Timer
	started time.Time

	pins       *connmark.Table // nil when pin_connections is off
	pinApplied string          // the last connection-mark plan applied, as nft text
	pinDamage  chan struct{}   // the nftables monitor saw something of ours deleted
	ready      bool

	rounds   chan roundResult
	requests chan func(*daemon)
	hub      *hub
	status   atomic.Pointer[uplink.Status]
	notifier notifier
}

// runDaemon runs uplinkd until ctx ends.
func runDaemon(ctx context.Context, cfg *uplink.Config, log *slog.Logger) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	d := &daemon{
		cfg:      cfg,
		log:      log,
		router:   routing.NewRouter(h, routingSettings(cfg.Daemon), log),
		started:  time.Now(),
		rounds:   make(chan roundResult, 64),
		requests: make(chan func(*daemon)),
		hub:      newHub(),
		retry:    time.NewTimer(time.Hour),
		notifier: newNotifier(log),
	}
	d.retry.Stop()
	if cfg.Daemon.Pinning {
		d.pins = connmark.NewTable(netns.None(), log)
		d.pinDamage = make(chan struct{}, 1)
	}
	ln, err := control.Listen(cfg.Daemon.Socket, cfg.Daemon.SocketGroup)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.ctx = ctx // before any goroutine that reads it starts
	serverDone := make(chan error, 1)
	go func() { serverDone <- control.Serve(ctx, ln, backend{d}, log) }()

	monitorEvents := make(chan routing.Event, 256)
	monitorDone := make(chan error, 1)
	go func() {
		monitorDone <- routing.NewMonitor(netns.None(), routingSettings(cfg.Daemon), log).Run(ctx, monitorEvents)
	}()

	go d.hangups(ctx)
	if d.pins != nil {
		go func() {
			if err := d.pins.Watch(ctx, d.pinDamage); err != nil {
				log.Warn("nftables monitor unavailable; checking the connection-mark table every "+repairInterval.String(), "err", err)
			}
		}()
	}
	for _, u := range cfg.Uplinks {
		m := &member{cfg: u, machine: uplink.NewMachine(u.Name, u.Probe, time.Now())}
		d.learn(m)
		d.members = append(d.members, m)
	}
	d.prepareRouting()
	for _, m := range d.members {
		m.prober = startProber(ctx, m.cfg, m.pin(), d.rounds, log)
	}
	d.publishStatus()
	err = d.loop(ctx, monitorEvents, monitorDone)
	d.notifier.stopping()
	stopping := time.Now()
	for _, m := range d.members {
		m.prober.stop()
	}
	log.Debug("probers stopped", "took", time.Since(stopping))
	if d.cfg.Daemon.CleanupOnExit {
		if ch, cerr := d.router.Cleanup(); cerr != nil {
			log.Error("cleanup on exit", "err", cerr)
		} else {
			log.Info("removed owned routing on exit", "changes", ch.Messages)
		}
		if cerr := cleanupPinning(log); cerr != nil {
			log.Error("cleanup on exit", "err", cerr)
		}
	} else {
		log.Info("stopping; routing stays as it is (fail static)", "active", strings.Join(d.active, ","))
	}
	cancel()
	<-serverDone
	log.Debug("control server stopped", "took", time.Since(stopping))
	return err
}

func (d *daemon) loop(ctx context.Context, monitorEvents <-chan routing.Event, monitorDone <-chan error) error {
	// The first verdict waits for the first probe round of every uplink, so that startup
	// does not route through an uplink that is obviously dead.
	first := time.NewTimer(d.firstVerdictDelay())
	defer first.Stop()
	watchdog := d.notifier.watchdogTicker()
	defer watchdog.Stop()
	// Nothing reports a change to nftables: look every few seconds whether our table is intact.
	repair := time.NewTicker(repairInterval)
	defer repair.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-monitorDone:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("netlink monitor: %w", err)
		case r := <-d.rounds:
			if m := d.member(r.uplink); m != nil && m.prober == r.from {
				m.machine.ObserveRound(r.round)
				if d.ready {
					d.reconcile("probe round")
				}
			}
		case ev := <-monitorEvents:
			d.onKernelEvent(ev)
		case <-first.C:
			d.reconcile("startup")
			d.ready = true
			d.notifier.ready(d.summary())
		case <-d.retry.C:
			d.applied, d.pinApplied = "", ""
			d.reconcile("retry")
		case req := <-d.requests:
			req(d)
		case <-watchdog.C:
			d.notifier.watchdog()
		case <-repair.C:
			if d.ready {
				d.applyPinning(true)
			}
		case <-d.pinDamage: // nil without pinning: never ready
			if d.ready {
				d.applyPinning(true)
			}
		}
	}
}

func (d *daemon) firstVerdictDelay() time.Duration {
	var longest time.Duration
	for _, u := range d.cfg.Uplinks {
		longest = max(longest, u.Probe.Timeout)
	}
	return longest + 100*time.Millisecond
}

func (d *daemon) member(name string) *member {
	for _, m := range d.members {
		if m.cfg.Name == name {
			return m
		}
	}
	return nil
}

// prepareRouting installs the uplink tables and fwmark rules before the first probe, so that
// probes leave through their own uplink from the start. The active route is left as it is
// (an empty active set keeps it): after a restart it is the one the last run chose.
func (d *daemon) prepareRouting() {
	plan := routing.NewPlan(d.router.Settings(), d.routingUplinks(), nil)
	if ch, err := d.router.Apply(plan); err != nil {
		d.log.Error("preparing uplink tables failed; probes may fail until the first reconcile", "err", err)
	} else if ch.Messages > 0 {
		d.log.Info("uplink tables and rules installed", "messages", ch.Messages)
	}
}

// learn reads the uplink's interface from the kernel and tells the machine whether the link can
// carry traffic.
func (d *daemon) learn(m *member) {
	info, err := d.router.Link(m.cfg.Interface)
	m.link, m.linkErr = info, err
	ok, why := m.linkUsable()
	m.machine.ObserveLink(ok, why)
	if m.prober != nil {
		m.prober.setPin(m.pin())
	}
	if len(info.Addrs) > 0 {
		m.lastSeen = info.Addrs
	}
}

func (m *member) linkUsable() (bool, string) {
	ifname := m.cfg.Interface
	switch {
	case m.linkErr != nil:
		return false, fmt.Sprintf("interface %s: %v", ifname, m.linkErr)
	case !m.link.Up:
		return false, fmt.Sprintf("interface %s is down", ifname)
	case !m.link.Carrier:
		return false, fmt.Sprintf("carrier lost on %s", ifname)
	case len(m.link.Addrs) == 0:
		return false, fmt.Sprintf("no global address on %s", ifname)
	case !m.gateway4().IsValid() && !m.gateway6().IsValid():
		return false, fmt.Sprintf("no gateway known for %s: set gateway in the config or let DHCP install a default route", ifname)
	}
	return true, ""
}

func (m *member) gateway4() netip.Addr {
	if m.cfg.Gateway.IsValid() {
		return m.cfg.Gateway
	}
	return m.link.Gateway4
}

func (m *member) gateway6() netip.Addr {
	if m.cfg.Gateway6.IsValid() {
		return m.cfg.Gateway6
	}
	return m.link.Gateway6
}

// pin makes probes leave through this uplink: its mark and its addresses.
func (m *member) pin() probe.Pin {
	p := probe.Pin{Mark: m.cfg.Mark()}
	for _, a := range m.link.Addrs {
		if a.Is4() && !p.Source4.IsValid() {
			p.Source4 = a
		}
		if a.Is6() && !p.Source6.IsValid() {
			p.Source6 = a
		}
	}
	return p
}

// onKernelEvent handles what the netlink monitor saw. Carrier loss and a downed interface
// move traffic at once: this is the fast path that does not wait for probes.
func (d *daemon) onKernelEvent(ev routing.Event) {
	d.log.Debug("kernel event", "event", ev.String())
	switch ev.Kind {
	case routing.OwnedDeleted:
		d.log.Warn("an owned rule or route was removed behind our back; restoring", "detail", ev.Detail)
		d.applied = ""
	case routing.ResyncNeeded:
		d.log.Warn("netlink events were lost; re-learning every uplink", "detail", ev.Detail)
		for _, m := range d.members {
			d.learn(m)
		}
		d.applied = ""
	default:
		for _, m := range d.members {
			if m.cfg.Interface == ev.Interface {
				d.learn(m)
			}
		}
	}
	if d.ready {
		d.reconcile(ev.Kind.String())
	}
}

// reconcile decides every uplink's state, selects the active set and makes the kernel match.
func (d *daemon) reconcile(cause string) {
	start := time.Now()
	for _, m := range d.members {
		if ev, changed := m.machine.Decide(start); changed {
			d.log.Info("uplink state", "uplink", ev.Uplink, "from", ev.From, "to", ev.To, "reason", ev.Reason)
			d.hub.publish(ev)
		}
	}
	cands := make([]uplink.Candidate, len(d.members))
	for i, m := range d.members {
		cands[i] = uplink.Candidate{Name: m.cfg.Name, Priority: m.cfg.Priority, Weight: m.cfg.Weight, State: m.machine.State(), Drained: m.drained}
	}
	sel, why := uplink.Select(cands)
	active := uplink.Names(sel)
	plan := routing.NewPlan(d.router.Settings(), d.routingUplinks(), active)
	if text := plan.String(); text != d.applied {
		changes, err := d.router.Apply(plan)
		took := time.Since(start)
		if err != nil {
			d.log.Error("routing apply failed; retrying", "err", err, "retry_in", retryApply)
			d.applied = ""
			d.retry.Reset(retryApply)
			d.hub.publish(uplink.Event{Time: time.Now(), Kind: "error", Reason: "routing: " + err.Error()})
		} else {
			d.applied = text
			if changes.Messages > 0 {
				d.log.Info("routing applied", "cause", cause, "messages", changes.Messages, "took", took)
				for _, c := range changes.Done {
					d.log.Debug("routing change", "change", c)
				}
			}
		}
		for _, p := range plan.Problems {
			d.log.Warn("routing plan", "problem", p)
		}
	}
	old := d.active
	d.active = active
	d.applyPinning(false)
	if !slices.Equal(active, old) {
		took := time.Since(start)
		d.log.Info("active uplinks", "from", strings.Join(old, ","), "to", strings.Join(active, ","), "why", why, "cause", cause, "took", took)
		d.hub.publish(uplink.Event{Time: time.Now(), Kind: "active", From: strings.Join(old, ","), To: strings.Join(active, ","), Reason: why, Active: active, Took: took})
	}
	d.flushDeparted()
	d.publishStatus()
	if d.ready {
		d.notifier.status(d.summary())
	}
}

// flushDeparted deletes the conntrack entries NATed to the addresses of uplinks that stopped
// carrying connections: with static SNAT (and with masquerade when the interface stays up) the
// kernel would keep sending those flows out with the old address, where the new ISP drops them.
// With pinning, an uplink keeps its connections until it is down (or drained --now), so
// failback does not break connections that work on the backup; without it, an uplink's
// connections move as soon as it leaves the active set.
func (d *daemon) flushDeparted() {
	for _, m := range d.members {
		carries := slices.Contains(d.active, m.cfg.Name)
		if d.pins != nil {
			carries = d.live(m)
		}
		departed := m.wasLive && !carries
		m.wasLive = carries
		if !departed {
			continue
		}
		name := m.cfg.Name
		for _, a := range m.lastSeen {
			n, err := d.router.FlushSNAT(a)
			if err != nil {
				d.log.Warn("conntrack cleanup failed", "uplink", name, "addr", a, "err", err)
				continue
			}
			if n > 0 {
				d.log.Info("conntrack cleanup", "uplink", name, "addr", a, "deleted", n)
			}
		}
	}
}

func (d *daemon) routingUplinks() []routing.Uplink {
	out := make([]routing.Uplink, 0, len(d.members))
	for _, m := range d.members {
		out = append(out, routing.Uplink{
			Name:      m.cfg.Name,
			Interface: m.cfg.Interface,
			Table:     m.cfg.Table(d.cfg.Daemon),
			Mark:      m.cfg.Mark(),
			MarkMask:  uplink.MarkMask,
			Gateway4:  m.gateway4(),
			Gateway6:  m.gateway6(),
			Addrs:     m.link.Addrs,
			Weight:    m.cfg.Weight,
		})
	}
	return out
}

// summary is the one-line state for systemd's STATUS: "2/2 up, active: isp1".
func (d *daemon) summary() string {
	up := 0
	for _, m := range d.members {
		if s := m.machine.State(); s == uplink.Up || s == uplink.Degraded {
			up++
		}
	}
	return fmt.Sprintf("%d/%d up, active: %s", up, len(d.members), strings.Join(d.active, ","))
}

func (d *daemon) publishStatus() {
	now := time.Now()
	st := &uplink.Status{
		Version: version.Version,
		Started: d.started,
		Uptime:  now.Sub(d.started),
		Config:  d.cfg.Path,
		Active:  slices.Clone(d.active),
	}
	var routes []string
	for _, m := range d.members {
		since, reason := m.machine.Since()
		loss, rtt := m.machine.Quality()
		us := uplink.UplinkStatus{
			Name:        m.cfg.Name,
			Interface:   m.cfg.Interface,
			State:       m.machine.State(),
			Since:       since,
			Reason:      reason,
			Drained:     m.drained,
			Active:      slices.Contains(d.active, m.cfg.Name),
			Priority:    m.cfg.Priority,
			Weight:      m.cfg.Weight,
			Mark:        m.cfg.Mark(),
			Table:       m.cfg.Table(d.cfg.Daemon),
			RTT:         rtt,
			Loss:        loss,
			HoldDown:    m.machine.HoldDown(),
			Targets:     m.machine.Targets(),
			Connections: -1,
		}
		if g := m.gateway4(); g.IsValid() {
			us.Gateway = g.String()
		}
		if g := m.gateway6(); g.IsValid() {
			us.Gateway6 = g.String()
		}
		for _, a := range m.link.Addrs {
			us.Addresses = append(us.Addresses, a.String())
		}
		if us.Active {
			routes = append(routes, fmt.Sprintf("%s via %s weight %d", m.cfg.Interface, firstNonEmpty(us.Gateway, us.Gateway6, "?"), m.cfg.Weight))
		}
		st.Uplinks = append(st.Uplinks, us)
	}
	st.ActiveRoute = "default: " + strings.Join(routes, ", ")
	if len(routes) == 0 {
		st.ActiveRoute = "default: none"
	}
	d.status.Store(st)
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
