package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
)

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
		if h, ok := mc.TakeHoldChange(); ok {
			ev := api.HoldEvent(h)
			e.log.Info("uplink hold-down", "uplink", h.Uplink, "held", h.Held, "penalty", ev.Penalty, "for", h.For.Round(time.Second), "reason", ev.Reason)
			e.hub.publish(ev)
		}
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
	return changed
}

// apply runs the policy on the uplinks' states and makes the box, keepalived and the
// published status match. It returns how many routing messages it sent.
func (e *Engine) apply(cause string, start time.Time) int {
	cands := e.candidates()
	prev := e.decision
	e.steering.Observe(cands, e.cfg.Services, start)
	d := uplink.Decide(cands, e.cfg.Services, e.cfg.Daemon.Pinning)
	e.steering.Apply(&d, e.cfg.Services)
	e.decision = d
	for _, m := range e.members {
		if m.machine.State().Usable() && slices.Contains(d.Live, m.cfg.Name) {
			m.carried = true
		}
	}
	for _, name := range uplink.Departed(prev.Live, d.Live) {
		if m := e.member(name); m != nil && !m.carried {
			e.log.Info("conntrack cleanup skipped: the uplink was never judged usable here, its NAT state is not ours to judge", "uplink", name)
		}
	}
	sent := e.set(e.desired(false), cause, start)
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
	e.steerVRRP()
	e.weighProbeModes(time.Now(), false) // a metered backup that now carries is probed fully at once
	e.publishStatus()
	if e.ready {
		e.notify.Status(e.summary())
	}
	return sent
}

// set hands the desired state to the dataplane and keeps it as the one the status shows. A
// failure is retried every retryApply, the dataplane checking everything again.
func (e *Engine) set(s dataplane.State, cause string, start time.Time) int {
	e.state = s
	e.storePins()
	// Rendered once per state, not per status: statuses are published far more often than states change.
	e.routes.active, e.routes.route4, e.routes.route6 = activeRoute(s), s.Route4(), s.Route6()
	res, err := e.opt.Dataplane.Set(s)
	e.repairs.note(e.log, "plan", strings.Join(res.Problems, "; "), "routing plan: inputs ignored")
	if err != nil {
		e.retry.Reset(retryApply)
		if e.repairs.note(e.log, "apply", err.Error(), "applying the desired state failed; retrying every "+retryApply.String()) {
			e.hub.publish(api.Event{Time: time.Now(), Kind: api.KindError, Reason: err.Error()})
		}
		return res.Messages
	}
	e.repairs.note(e.log, "apply", "", "")
	if res.Messages > 0 {
		e.log.Info("routing applied", "cause", cause, "messages", res.Messages, "took", time.Since(start))
	}
	return res.Messages
}

// check makes the dataplane compare everything with the kernel and repair what was damaged
// (the nftables table deleted behind our back). Before the first verdict there is nothing to
// compare with.
func (e *Engine) check(cause string) int {
	if !e.ready {
		return 0
	}
	e.opt.Dataplane.Forget()
	return e.set(e.state, cause, time.Now())
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
		e.learnLAN()
		e.opt.Dataplane.Forget()
	case routing.AddrChanged, routing.GatewayChanged:
		// Learn at once (the probes' source, a renumbering), but unless the uplink became
		// usable or unusable, apply the new addresses once the burst has settled: they come in
		// bursts (a renumbering removes one and adds another; a keepalived takeover adds a
		// virtual address per segment), and at a takeover that leaves the CPU to keepalived's
		// notify script and conntrackd's commit, which the LAN is waiting on.
		urgent := false
		if e.isLAN(ev.Interface) && e.learnLAN() {
			e.log.Info("LAN prefixes changed", "interface", ev.Interface, "detail", ev.Detail)
		}
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
	e.opt.Dataplane.Forget()
	sent := e.reconcile("repair")
	e.repairs.done(e.log, time.Now(), sent > 0)
}

// summary is the one-line state for systemd's STATUS: "2/2 up, active: isp1".
func (e *Engine) summary() string {
	up := 0
	for _, m := range e.members {
		if m.machine.State().Usable() {
			up++
		}
	}
	return fmt.Sprintf("%d/%d up, active: %s", up, len(e.members), strings.Join(e.decision.Active, ","))
}

// candidates are the uplinks as the policy sees them.
func (e *Engine) candidates() []uplink.Candidate {
	cands := make([]uplink.Candidate, len(e.members))
	for i, m := range e.members {
		cands[i] = m.candidate()
	}
	return cands
}

// setSteering times the quality steering of services by the [defaults] probing: an uplink is
// left after down_after rounds of violation, returned to after up_after rounds of recovery,
// at most once per direction per hold_down.
func (e *Engine) setSteering() {
	p := e.cfg.Defaults
	e.steering.Leave = time.Duration(p.DownAfter) * p.Interval
	e.steering.Return = time.Duration(p.UpAfter) * p.Interval
	e.steering.HoldDown = p.HoldDown
}

// steered says whether a service has quality targets: only then does every round weigh them.
func (e *Engine) steered() bool {
	return slices.ContainsFunc(e.cfg.Services, func(s uplink.Service) bool { return s.Targets.Set() })
}
