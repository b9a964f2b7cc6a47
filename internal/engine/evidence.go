package engine

import (
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// evidenceWindow is the least time replies are given to arrive after the probes began to lack
// quorum: a round that comes sooner (rounds can arrive in a burst on a busy gateway) waits for
// it. Confirmation rounds are at least 20 ms apart, so a dead uplink is judged no later.
const evidenceWindow = 30 * time.Millisecond

// weighEvidence is passive evidence: when a round lacks quorum, packets that arrived on the
// uplink for its connections (their replies, counted in the connection-mark table) since the
// probes first lacked quorum prove the uplink works — its probes were lost in a full queue or
// the targets are down, not the uplink. The unanswered targets of such a round are marked
// alive: the uplink is not judged down, yet the round counts as lost for loss and RTT and not as
// good for recovery. A backup that carries nothing gets no such evidence, and a dead uplink
// receives no replies. The table is read only for rounds without quorum: nothing in steady state.
// It returns how long the round must wait for the window to close (0: judge it now).
func (e *Engine) weighEvidence(m *member, r *uplink.Round) time.Duration {
	if !e.cfg.Daemon.Pinning {
		return 0
	}
	alive := 0
	for _, x := range r.Results {
		if x.OK || x.Alive {
			alive++
		}
	}
	if alive >= min(m.cfg.Probe.Quorum, len(r.Results)) {
		m.evidence.doubt = false
		return 0
	}
	got, err := e.opt.Kernel.Received()
	if err != nil {
		e.log.Debug("passive evidence unavailable", "err", err)
		return 0
	}
	n, now := got[m.cfg.Mark()], time.Now()
	ev := &m.evidence
	switch {
	case !ev.doubt || n < ev.base: // the doubt begins, or the table was rebuilt (counters reset)
		ev.doubt, ev.base, ev.at = true, n, now
	case n == ev.base && now.Sub(ev.at) < evidenceWindow:
		return ev.at.Add(evidenceWindow).Sub(now)
	case n > ev.base: // replies arrived after the doubt began (in-flight ones are in the base)
		e.log.Debug("unanswered probes, but replies arrived for the uplink's connections", "uplink", m.cfg.Name, "packets", n-ev.base)
		for i := range r.Results {
			if !r.Results[i].OK {
				r.Results[i].Alive = true
			}
		}
		ev.at = now
		ev.base = n
	}
	return 0
}

// held rounds wait for the evidence window (see weighEvidence), in order: a round that comes
// while others wait, waits behind them.
func (e *Engine) holdRound(m *member, r uplink.Round, wait time.Duration) {
	m.held = append(m.held, r)
	if e.evidenceDue == nil {
		e.evidenceDue = time.After(wait)
	}
}

// releaseHeld judges the rounds that waited for the evidence window.
func (e *Engine) releaseHeld() {
	e.evidenceDue = nil
	for _, m := range e.members {
		held := m.held
		m.held = nil
		for i, r := range held {
			if wait := e.weighEvidence(m, &held[i]); wait > 0 {
				for _, rest := range held[i:] {
					e.holdRound(m, rest, wait)
				}
				break
			}
			e.take(m, r)
		}
	}
}
