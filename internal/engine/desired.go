package engine

import (
	"slices"

	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
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
		NamesDown:     e.namesDown(),
		SitesUp:       e.sitesUp(),
		IPv6:          e.cfg.IPv6,
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
		u.Prefixes = e.prefixes(m.cfg)
		if !provisional {
			u.Active = slices.Contains(d.Active, u.Name)
			u.Active6 = slices.Contains(d.Active6, u.Name)
			u.Live = slices.Contains(d.Live, u.Name)
			u.Usable, u.Usable6 = m.usable()
			// Only an uplink judged usable here can own NAT state: a backup whose view is stale
			// must never flush connection state synced from its peer.
			u.Dead6 = u.Live && m.machine6 != nil && !m.machine6.State().Usable()
			switch {
			case !m.carried:
			case !u.Live:
				u.StaleNAT = slices.Clone(m.lastSeen)
			case u.Dead6: // IPv6 judged apart: only its NAT state goes
				for _, a := range m.lastSeen {
					if a.Is6() {
						u.StaleNAT = append(u.StaleNAT, a)
					}
				}
			}
		}
		s.Uplinks = append(s.Uplinks, u)
	}
	s.Services = e.services()
	s.EndFlows = e.endFlows()
	return s
}

// endFlows are the connections to end of services that move theirs (move_existing): those on
// the uplink each last left for missing its targets.
func (e *Engine) endFlows() []dataplane.EndFlows {
	var out []dataplane.EndFlows
	for _, s := range e.cfg.Services {
		from, seq := e.steering.Left(s.Name)
		m := e.member(from)
		if !s.MoveExisting || seq == 0 || m == nil {
			continue
		}
		out = append(out, dataplane.EndFlows{Service: s.Name, Match: flowMatch(s), Mark: m.cfg.Mark(), Seq: seq})
	}
	return out
}

// flowMatch is what picks a service's connections in conntrack.
func flowMatch(s uplink.Service) routing.FlowMatch {
	m := routing.FlowMatch{Src: s.Src, Dst: s.Dst}
	switch s.Proto {
	case "tcp":
		m.Protos = []uint8{6}
	case "udp":
		m.Protos = []uint8{17}
	case "icmp":
		m.Protos = []uint8{1, 58}
	default:
		if len(s.Ports) > 0 {
			m.Protos = []uint8{6, 17}
		}
	}
	for _, p := range s.Ports {
		m.DPorts = append(m.DPorts, [2]uint16{p.From, p.To})
	}
	return m
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
