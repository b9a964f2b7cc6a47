package engine

import "github.com/uplinkd/uplinkd/uplink"

// weighEvidence is passive evidence: when a round lacks quorum, packets that arrived on the
// uplink for its connections (their replies, counted in the connection-mark table) since the
// probes first lacked quorum prove the uplink works — its probes were lost in a full queue or
// the targets are down, not the uplink. The unanswered targets of such a round are marked
// alive: the uplink is not judged down, yet the round counts as lost for loss and RTT and not as
// good for recovery. A backup that carries nothing gets no such evidence, and a dead uplink
// receives no replies. The table is read only for rounds without quorum: nothing in steady state.
func (e *Engine) weighEvidence(m *member, r *uplink.Round) {
	if !e.cfg.Daemon.Pinning {
		return
	}
	alive := 0
	for _, x := range r.Results {
		if x.OK || x.Alive {
			alive++
		}
	}
	if alive >= m.cfg.Probe.Quorum {
		m.evidence.doubt = false
		return
	}
	got, err := e.opt.Pins.Received()
	if err != nil {
		e.log.Debug("passive evidence unavailable", "err", err)
		return
	}
	n := got[m.cfg.Mark()]
	ev := &m.evidence
	switch {
	case !ev.doubt || n < ev.base: // the doubt begins, or the table was rebuilt (counters reset)
		ev.doubt, ev.base = true, n
	case n > ev.base: // replies arrived after the doubt began (in-flight ones are in the base)
		e.log.Debug("unanswered probes, but replies arrived for the uplink's connections", "uplink", m.cfg.Name, "packets", n-ev.base)
		for i := range r.Results {
			if !r.Results[i].OK {
				r.Results[i].Alive = true
			}
		}
		ev.base = n
	}
}
