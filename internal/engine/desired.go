package engine

import (
	"slices"

	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/routing/connmark"
)

// desired is what the box should look like after the last decision, built from one list of
// uplinks: the one value the dataplane applies and the status shows. provisional is the
// state before the first verdict: tables and mark rules only, nothing active.
func (e *Engine) desired(provisional bool) dataplane.State {
	d := e.decision
	s := dataplane.State{
		Provisional:   provisional,
		Pinning:       e.cfg.Daemon.Pinning,
		Affinity:      e.cfg.Daemon.Affinity,
		LANInterfaces: e.cfg.Daemon.LANInterfaces,
		DNS:           e.cfg.DNS,
	}
	for _, m := range e.members {
		u := dataplane.Uplink{
			Name:         m.cfg.Name,
			Interface:    m.cfg.Interface,
			Table:        m.cfg.Table(e.cfg.Daemon),
			Mark:         m.cfg.Mark(),
			Weight:       m.cfg.Weight,
			Addrs:        m.link.Addrs,
			PointToPoint: m.link.PointToPoint,
		}
		if m.linkErr == nil { // no such interface (ppp0 between sessions): its table holds the guard
			u.Gateway4, u.Gateway6 = m.gateway4(), m.gateway6()
		}
		u.Public4, u.Public6 = m.public()
		if !provisional {
			u.Active = slices.Contains(d.Active, u.Name)
			u.Active6 = slices.Contains(d.Active6, u.Name)
			u.Live = slices.Contains(d.Live, u.Name)
			c := m.candidate()
			u.Usable = c.State.Usable() && !c.Drained
			u.Usable6 = u.Usable
			if c.State6 != nil {
				u.Usable6 = c.State6.Usable() && !c.Drained
			}
			// Only an uplink judged usable here can own NAT state: a backup whose view is stale
			// must never flush connection state synced from its peer.
			if !u.Live && m.carried {
				u.StaleNAT = slices.Clone(m.lastSeen)
			}
		}
		s.Uplinks = append(s.Uplinks, u)
	}
	s.Services = e.services()
	return s
}

// services are the per-service rules with the uplink the decision chose for each.
func (e *Engine) services() []connmark.Service {
	d := e.decision
	var out []connmark.Service
	for i, s := range e.cfg.Services {
		cs := connmark.Service{Name: s.Name, Src: s.Src, Dst: s.Dst, Proto: s.Proto, InIface: s.InInterface}
		for _, r := range s.Ports {
			cs.DPorts = append(cs.DPorts, connmark.PortRange{From: r.From, To: r.To})
		}
		if i < len(d.Services) { // before the first decision nothing is chosen yet
			if ch := d.Services[i]; ch.Uplink != "" {
				cs.Mark = e.member(ch.Uplink).cfg.Mark()
			} else {
				cs.Block = ch.Block
			}
		}
		out = append(out, cs)
	}
	return out
}
