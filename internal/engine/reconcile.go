package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
)

// applied remembers what was last applied to the kernel, so that an unchanged decision sends
// nothing. forget makes the next reconcile apply everything again (retry, repair, resync).
type applied struct {
	routes string // the routing plan, as text
	pins   string // the connection-mark plan, as nft text; "" also when pinning is off
}

func (a *applied) forget() { *a = applied{} }

// reconcile decides every uplink's state, runs the policy and makes the kernel match. It
// returns how many routing messages it sent.
func (e *Engine) reconcile(cause string) int {
	now := time.Now()
	for _, m := range e.members {
		e.decide(m, now)
	}
	return e.apply(cause, now)
}

// decide asks m's machine for its verdict at now and announces a change.
func (e *Engine) decide(m *member, now time.Time) bool {
	changed := false
	for i, mc := range m.machines() {
		t, ch := mc.Decide(now)
		if !ch {
			continue
		}
		changed = true
		ev := api.StateEvent(t)
		if i == 1 {
			ev.Family = "ipv6"
		} else if m.machine6 != nil {
			ev.Family = "ipv4"
		}
		e.log.Info("uplink state", "uplink", t.Uplink, "family", ev.Family, "from", t.From, "to", t.To, "reason", t.Reason)
		e.hub.publish(ev)
	}
	if s := m.machine.State(); s == uplink.Up || s == uplink.Degraded {
		m.carried = true
	}
	return changed
}

// apply runs the policy on the uplinks' states and makes the kernel, keepalived and the
// published status match. It returns how many routing messages it sent.
func (e *Engine) apply(cause string, start time.Time) int {
	cands := make([]uplink.Candidate, len(e.members))
	for i, m := range e.members {
		cands[i] = m.candidate()
	}
	prev := e.decision
	d := uplink.Decide(cands, e.cfg.Services, e.cfg.Daemon.Pinning)
	e.decision = d
	sent := e.applyRoutes(d, cause, start)
	e.applyPins(false)
	if !slices.Equal(d.Active6, prev.Active6) && (!slices.Equal(d.Active6, d.Active) || !slices.Equal(prev.Active6, prev.Active)) {
		from, to := strings.Join(prev.Active6, ","), strings.Join(d.Active6, ",")
		e.log.Info("active uplinks", "family", "ipv6", "from", from, "to", to, "cause", cause)
		e.hub.publish(api.Event{Time: time.Now(), Kind: api.KindActive, Family: "ipv6", From: from, To: to, Reason: "IPv6 judged apart", Active: d.Active6})
	}
	if !slices.Equal(d.Active, prev.Active) {
		took := time.Since(start)
		from, to := strings.Join(prev.Active, ","), strings.Join(d.Active, ",")
		e.log.Info("active uplinks", "from", from, "to", to, "why", d.Why, "cause", cause, "took", took)
		e.hub.publish(api.Event{Time: time.Now(), Kind: api.KindActive, From: from, To: to, Reason: d.Why, Active: d.Active, Took: took})
	}
	for _, name := range uplink.Departed(prev.Live, d.Live) {
		if m := e.member(name); m != nil {
			e.flushNAT(m)
		}
	}
	e.steerVRRP()
	e.publishStatus()
	if e.ready {
		e.notify.Status(e.summary())
	}
	return sent
}

// applyRoutes makes the kernel's rules and routes match the decision, unless they already do.
func (e *Engine) applyRoutes(d uplink.Decision, cause string, start time.Time) int {
	plan := routing.NewPlanPerFamily(e.opt.Routes.Settings(), e.routingUplinks(), d.Active, d.Active6)
	text := plan.String()
	if text == e.applied.routes {
		return 0
	}
	e.repairs.note(e.log, "plan", strings.Join(plan.Problems, "; "), "routing plan: inputs ignored")
	changes, err := e.opt.Routes.Apply(plan)
	if err != nil {
		e.applied.routes = ""
		e.retry.Reset(retryApply)
		if e.repairs.note(e.log, "apply", err.Error(), "routing apply failed; retrying every "+retryApply.String()) {
			e.hub.publish(api.Event{Time: time.Now(), Kind: api.KindError, Reason: err.Error()})
		}
		return changes.Messages
	}
	e.repairs.note(e.log, "apply", "", "")
	e.applied.routes = text
	if changes.Messages > 0 {
		e.log.Info("routing applied", "cause", cause, "messages", changes.Messages, "took", time.Since(start))
		for _, c := range changes.Done {
			e.log.Debug("routing change", "change", c)
		}
	}
	return changes.Messages
}

func (e *Engine) routingUplinks() []routing.Uplink {
	out := make([]routing.Uplink, 0, len(e.members))
	for _, m := range e.members {
		gw4, gw6 := m.gateway4(), m.gateway6()
		if m.linkErr != nil { // no such interface (ppp0 between sessions): its table holds the guard
			gw4, gw6 = netip.Addr{}, netip.Addr{}
		}
		out = append(out, routing.Uplink{
			Name:      m.cfg.Name,
			Interface: m.cfg.Interface,
			Table:     m.cfg.Table(e.cfg.Daemon),
			Mark:      m.cfg.Mark(),
			MarkMask:  uplink.MarkMask,
			Gateway4:  gw4,
			Gateway6:  gw6,
			Addrs:     m.link.Addrs,
			Weight:    m.cfg.Weight,
		})
	}
	return out
}

// pinPlan is the connection-mark table for the last decision.
func (e *Engine) pinPlan() connmark.Plan {
	d := e.decision
	p := connmark.Plan{LANInterfaces: e.cfg.Daemon.LANInterfaces, Affinity: e.cfg.Daemon.Affinity,
		PerFamily: !slices.Equal(d.Active, d.Active6)}
	for _, m := range e.members {
		p.Uplinks = append(p.Uplinks, connmark.Uplink{
			Name:      m.cfg.Name,
			Interface: m.cfg.Interface,
			Mark:      m.cfg.Mark(),
			Weight:    m.cfg.Weight,
			Live:      slices.Contains(d.Live, m.cfg.Name),
			Eligible:  slices.Contains(d.Active, m.cfg.Name),
			Eligible6: slices.Contains(d.Active6, m.cfg.Name),
			Addrs:     m.link.Addrs,
		})
	}
	for i, s := range e.cfg.Services {
		cs := connmark.Service{Name: s.Name, Src: s.Src, Dst: s.Dst, Proto: s.Proto, InIface: s.InInterface}
		for _, r := range s.Ports {
			cs.DPorts = append(cs.DPorts, connmark.PortRange{From: r.From, To: r.To})
		}
		if i >= len(d.Services) { // before the first decision: nothing is chosen yet
			p.Services = append(p.Services, cs)
			continue
		}
		if ch := d.Services[i]; ch.Uplink != "" {
			cs.Mark = e.member(ch.Uplink).cfg.Mark()
		} else {
			cs.Block = ch.Block
		}
		p.Services = append(p.Services, cs)
	}
	return p
}

// applyPins makes the nftables table match; force checks it even if the plan is unchanged
// (someone may have deleted it). With pinning off it does nothing.
func (e *Engine) applyPins(force bool) {
	if !e.cfg.Daemon.Pinning {
		return
	}
	plan := e.pinPlan()
	text := connmark.Render(plan)
	if text == e.applied.pins && !force {
		return
	}
	if err := e.opt.Pins.Apply(plan); err != nil {
		e.applied.pins = ""
		e.retry.Reset(retryApply)
		e.repairs.note(e.log, "pins", err.Error(), "connection pinning: apply failed; retrying every "+retryApply.String())
		return
	}
	e.repairs.note(e.log, "pins", "", "")
	if text != e.applied.pins {
		e.log.Debug("connection pinning applied")
	}
	e.applied.pins = text
}

// checkPins repairs the nftables table if it was damaged.
func (e *Engine) checkPins() {
	if e.ready {
		e.applyPins(true)
	}
}

// flushNAT deletes the conntrack entries NATed to the addresses of an uplink that stopped
// carrying connections: with static SNAT (and with masquerade when the interface stays up)
// the kernel would keep sending those flows out with the old address, where the new ISP drops
// them.
func (e *Engine) flushNAT(m *member) {
	if !m.carried {
		e.log.Info("conntrack cleanup skipped: the uplink was never judged usable here, its NAT state is not ours to judge", "uplink", m.cfg.Name)
		return
	}
	for _, a := range m.lastSeen {
		n, err := e.opt.Routes.FlushSNAT(a)
		if err != nil {
			e.log.Warn("conntrack cleanup failed", "uplink", m.cfg.Name, "addr", a, "err", err)
			continue
		}
		if n > 0 {
			e.log.Info("conntrack cleanup", "uplink", m.cfg.Name, "addr", a, "deleted", n)
		}
	}
}

// onKernelEvent handles what the netlink monitor saw. Carrier loss and a downed interface move
// traffic at once: this is the fast path that does not wait for probes.
func (e *Engine) onKernelEvent(ev routing.Event) {
	e.log.Debug("kernel event", "event", ev.String())
	switch ev.Kind {
	case routing.OwnedDeleted:
		// Our own changes are reported too: the repair finds out (nothing to restore).
		e.repairs.request(time.Now())
		return
	case routing.ResyncNeeded:
		e.log.Warn("netlink events were lost; re-learning every uplink", "detail", ev.Detail)
		for _, m := range e.members {
			e.learn(m)
		}
		e.applied.forget()
	case routing.AddrChanged, routing.GatewayChanged:
		// Learn at once (the probes' source, a renumbering), but unless the uplink became
		// usable or unusable, apply the new addresses once the burst has settled: they come in
		// bursts (a renumbering removes one and adds another; a keepalived takeover adds a
		// virtual address per segment), and at a takeover that leaves the CPU to keepalived's
		// notify script and conntrackd's commit, which the LAN is waiting on.
		urgent := false
		for _, m := range e.members {
			if m.cfg.Interface == ev.Interface {
				was, _ := m.linkUsable()
				e.learn(m)
				now, _ := m.linkUsable()
				urgent = urgent || was != now
			}
		}
		if !urgent {
			if e.settleDue == nil {
				e.settleDue = time.After(addrSettle)
			}
			return
		}
	default:
		for _, m := range e.members {
			if m.cfg.Interface == ev.Interface {
				e.learn(m)
			}
		}
	}
	if e.ready {
		e.reconcile(ev.Kind.String())
	}
}

// repair re-applies everything after owned entries were deleted, and tells a fight from our
// own deletions echoed back.
func (e *Engine) repair() {
	if !e.ready { // the first reconcile applies everything anyway
		e.repairs.done(e.log, time.Now(), false)
		return
	}
	e.applied.forget()
	sent := e.reconcile("repair")
	e.repairs.done(e.log, time.Now(), sent > 0)
}

// summary is the one-line state for systemd's STATUS: "2/2 up, active: isp1".
func (e *Engine) summary() string {
	up := 0
	for _, m := range e.members {
		if s := m.machine.State(); s == uplink.Up || s == uplink.Degraded {
			up++
		}
	}
	return fmt.Sprintf("%d/%d up, active: %s", up, len(e.members), strings.Join(e.decision.Active, ","))
}
