package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
)

// member is one uplink as the loop knows it.
type member struct {
	cfg      uplink.Uplink
	machine  *uplink.Machine // IPv4, or both families when its targets are of one
	machine6 *uplink.Machine // IPv6 judged apart (targets of both families); nil otherwise
	link     routing.LinkInfo
	linkErr  error
	drained  bool
	drainNow bool // drained with --now: its connections move too
	// lastSeen are the addresses to flush NAT entries for when it loses its connections: the
	// last ones the interface had, even after they vanished.
	lastSeen []netip.Addr
	// carried says it carried connections here while judged usable (up or degraded): only
	// then can its NAT state be its own, and go when it stops carrying them. A backup whose
	// view is stale or wrong (say its probes never worked) must never flush connection state
	// synced from its peer.
	carried bool

	// evidence is the passive evidence since its probes began to lack quorum: the count of
	// replies received for its connections when that was first seen (or last proved life).
	evidence struct {
		doubt bool
		base  uint64
		at    time.Time
	}
	held []uplink.Round // rounds waiting for the evidence window, in order

	prober Prober
	mode   probe.Mode // what it was last told (full when it starts)
	// rx is the last count of packets received for its connections; receiving: it grew over
	// the last tick (tickEvery).
	rx        uint64
	rxSeen    bool
	receiving bool
	cost      probeCost
	gen       int                // counts probers started; rounds of an older one are ignored
	cancel    context.CancelFunc // ends the current prober's round delivery
}

// roundMsg carries one finished probe round into the loop.
type roundMsg struct {
	from  *member
	gen   int
	round uplink.Round
}

func (m *member) current(gen int) bool { return m.prober != nil && m.gen == gen }

// newMember makes the member for u and learns its link; from carries the drain state of the
// uplink it replaces (a reload that changed its interface or id), if any.
func (e *Engine) newMember(u uplink.Uplink, from *member) *member {
	m := &member{cfg: u}
	m.setMachines(u.Probe, time.Now())
	if from != nil {
		m.drained, m.drainNow = from.drained, from.drainNow
	}
	e.learn(m)
	return m
}

// startProbing (re)starts the member's prober; rounds of the previous one are dropped.
func (e *Engine) startProbing(m *member) {
	m.stopProbing()
	ctx, cancel := context.WithCancel(e.ctx)
	m.gen++
	m.mode = probe.ModeFull // a new prober starts probing every target
	m.cancel = cancel
	gen := m.gen
	p, err := e.opt.StartProber(ctx, m.cfg, m.pin(), func(r uplink.Round) {
		select {
		case e.rounds <- roundMsg{from: m, gen: gen, round: r}:
		case <-ctx.Done():
		}
	})
	if err != nil { // the configuration accepts only methods that exist: a bug, said loudly
		e.log.Error("probing cannot start; the uplink stays unjudged", "uplink", m.cfg.Name, "err", err)
		cancel()
		return
	}
	m.prober = p
}

func (m *member) stopProbing() {
	if m.prober == nil {
		return
	}
	m.cancel()
	m.prober.Stop()
	m.prober = nil
}

// learn reads the uplink's interface from the kernel and tells the machine whether the link
// can carry traffic.
func (e *Engine) learn(m *member) {
	wasOK, _ := m.linkUsable()
	before := m.link
	info, err := e.opt.Kernel.Link(m.cfg.Interface)
	m.link, m.linkErr = info, err
	ok, why := m.linkUsable()
	renumber := wasOK && ok && renumbered(before, info)
	if renumber {
		// DHCP or PPPoE gave new addresses or a new gateway: probes from the old address
		// say nothing about the new one, and this is no failure of the uplink.
		e.log.Info("uplink renumbered", "uplink", m.cfg.Name, "addrs", info.Addrs, "gateway4", info.Gateway4, "gateway6", info.Gateway6)
	}
	for _, mc := range m.machines() {
		mc.ObserveLink(ok, why)
		if renumber {
			mc.ObserveRenumbered(time.Now())
		}
	}
	if m.prober != nil {
		m.prober.SetPin(m.pin())
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
	case !m.gateway4().IsValid() && !m.gateway6().IsValid() && !m.link.PointToPoint:
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

// public is where customers reach the business through this uplink: the configured address
// of each family, else the interface's first global one.
func (m *member) public() (v4, v6 netip.Addr) {
	v4, v6 = m.cfg.Public4, m.cfg.Public6
	for _, a := range m.link.Addrs {
		if a.Is4() && !v4.IsValid() {
			v4 = a
		}
		if a.Is6() && !a.Is4In6() && !v6.IsValid() {
			v6 = a
		}
	}
	return v4, v6
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

// usable says, per family, whether the uplink could carry new connections: judged up or
// degraded, and not drained.
func (m *member) usable() (v4, v6 bool) {
	v4 = m.machine.State().Usable() && !m.drained
	v6 = v4
	if m.machine6 != nil {
		v6 = m.machine6.State().Usable() && !m.drained
	}
	return v4, v6
}

func (m *member) candidate() uplink.Candidate {
	c := uplink.Candidate{Name: m.cfg.Name, Priority: m.cfg.Priority, Weight: m.cfg.Weight,
		State: m.machine.State(), Drained: m.drained, DrainNow: m.drainNow}
	if m.machine6 != nil {
		s := m.machine6.State()
		c.State6 = &s
	}
	c.Quality = m.machine.Line()
	return c
}

// setMachines makes (or, on a reload, re-tunes) the health machines for p: one, or one per
// family when p has targets of both. A machine that exists keeps what it has seen.
func (m *member) setMachines(p uplink.Probe, now time.Time) {
	v4, v6, split := p.SplitFamilies()
	if m.machine == nil {
		m.machine = uplink.NewMachine(m.cfg.Name, v4, now)
	} else {
		m.machine.SetProbe(v4)
	}
	switch {
	case !split:
		m.machine6 = nil
	case m.machine6 == nil:
		m.machine6 = uplink.NewMachine(m.cfg.Name, v6, now)
		m.machine6.ObserveLink(m.linkUsable())
	default:
		m.machine6.SetProbe(v6)
	}
}

// machines are the member's health machines: IPv4 (or both families) first.
func (m *member) machines() []*uplink.Machine {
	if m.machine6 == nil {
		return []*uplink.Machine{m.machine}
	}
	return []*uplink.Machine{m.machine, m.machine6}
}

// observe feeds a round to the machines, each the results of its own family's targets.
func (m *member) observe(r uplink.Round) {
	if m.machine6 == nil {
		m.machine.ObserveRound(r)
		return
	}
	r4, r6 := uplink.Round{Start: r.Start}, uplink.Round{Start: r.Start}
	for _, x := range r.Results {
		if x.Target.Is4() {
			r4.Results = append(r4.Results, x)
		} else {
			r6.Results = append(r6.Results, x)
		}
	}
	m.machine.ObserveRound(r4)
	m.machine6.ObserveRound(r6)
}

// renumbered says whether the addresses or the learned gateways of a link changed.
func renumbered(a, b routing.LinkInfo) bool {
	return !slices.Equal(a.Addrs, b.Addrs) || a.Gateway4 != b.Gateway4 || a.Gateway6 != b.Gateway6
}
