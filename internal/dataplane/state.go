// Package dataplane is the one port through which uplinkd changes the box. Every decision of
// the engine becomes one State — what the box should look like now — and Set makes the box
// match it: policy rules and routes for both families, the connection-mark table, the NAT
// state of uplinks that lost their connections. The Dataplane owns the routing settings, the
// diff and the only cache of what was applied; the status and everything else that shows or
// serves the box's state read the same State, so nothing is decided twice.
package dataplane

import (
	"net/netip"
	"slices"

	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
)

// State is what the box should look like after one decision.
type State struct {
	// Provisional: no verdict yet (startup). The uplink tables and mark rules are installed so
	// that probes leave through their own uplink; what the last run left (the active routes,
	// the connection-mark table with its pins) stays as it is.
	Provisional bool
	Uplinks     []Uplink // in configuration order
	// Pinning keeps every connection on the uplink it started on (nftables table inet
	// uplinkd); off, the table is removed.
	Pinning       bool
	Affinity      bool     // balance new connections by a hash of the source address
	LANInterfaces []string // forwarded traffic that is balanced; empty: every non-uplink interface
	// Services are the per-service rules, their uplink already chosen (Mark) or refused (Block).
	Services []connmark.Service
	// DNS is what the built-in authoritative server publishes (off when its zone is empty).
	DNS uplink.DNS
	// EndFlows are connections to end: a service that moves its existing connections left an
	// uplink. Each is done once, when its Seq is new for its service.
	EndFlows []EndFlows
}

// EndFlows ends one service's connections pinned to the uplink of Mark.
type EndFlows struct {
	Service string
	Match   routing.FlowMatch
	Mark    uint32
	Seq     uint64
}

// Uplink is one uplink as the box should treat it.
type Uplink struct {
	Name      string
	Interface string
	Table     int    // its routing table
	Mark      uint32 // its connection and packet mark
	Weight    int
	// Gateway4 and Gateway6 are the next hops; invalid: none in that family (a missing
	// interface has none: its table holds only the unreachable guard).
	Gateway4, Gateway6 netip.Addr
	// PointToPoint (PPP): without an IPv4 gateway, IPv4 goes `dev <if>`.
	PointToPoint bool
	Addrs        []netip.Addr // its global addresses: traffic from them leaves through it

	Active  bool // carries new IPv4 connections
	Active6 bool // carries new IPv6 connections
	Live    bool // keeps the connections it has
	// Usable and Usable6: judged up or degraded in that family and not drained (could carry
	// new connections if the policy chose it).
	Usable, Usable6 bool
	// Public4 and Public6 are where customers reach the business through it: the configured
	// public address, else its interface's own; invalid: none in that family.
	Public4, Public6 netip.Addr
	// StaleNAT are addresses whose NAT state cannot work any more (the uplink lost its
	// connections): the conntrack entries NATed to them go when they enter this set.
	StaleNAT []netip.Addr
}

// RoutingPlan is the rules and routes of s under the routing settings set.
func (s State) RoutingPlan(set routing.Settings) routing.Plan {
	ups := make([]routing.Uplink, len(s.Uplinks))
	var act4, act6 []string
	for i, u := range s.Uplinks {
		ups[i] = routing.Uplink{Name: u.Name, Interface: u.Interface, Table: u.Table, Mark: u.Mark,
			Gateway4: u.Gateway4, Gateway6: u.Gateway6, PointToPoint: u.PointToPoint,
			Addrs: u.Addrs, Weight: u.Weight}
		if u.Active {
			act4 = append(act4, u.Name)
		}
		if u.Active6 {
			act6 = append(act6, u.Name)
		}
	}
	return routing.NewPlanPerFamily(set, ups, act4, act6)
}

// PinPlan is the connection-mark table of s.
func (s State) PinPlan() connmark.Plan {
	p := connmark.Plan{LANInterfaces: s.LANInterfaces, Affinity: s.Affinity, Services: s.Services}
	for _, u := range s.Uplinks {
		p.Uplinks = append(p.Uplinks, connmark.Uplink{Name: u.Name, Interface: u.Interface,
			Mark: u.Mark, Weight: u.Weight, Live: u.Live, Eligible: u.Active, Eligible6: u.Active6,
			Addrs: u.Addrs})
		p.PerFamily = p.PerFamily || u.Active != u.Active6
	}
	return p
}

// Route4 and Route6 are the active default route of each family as `ip route` prints it, taken
// from the same plan the kernel gets; "" when no active uplink has a way out in that family
// (the kernel's route is kept).
func (s State) Route4() string { return s.route(false) }
func (s State) Route6() string { return s.route(true) }

func (s State) route(v6 bool) string {
	set := routing.Settings{}.WithDefaults()
	for _, r := range s.RoutingPlan(set).Routes {
		if r.Table == set.ActiveTable && r.IsIPv6() == v6 {
			return r.Text()
		}
	}
	return ""
}

// Active names the uplinks that carry new IPv4 connections, and Active6 the IPv6 ones.
func (s State) Active() []string  { return s.names(func(u Uplink) bool { return u.Active }) }
func (s State) Active6() []string { return s.names(func(u Uplink) bool { return u.Active6 }) }

func (s State) names(keep func(Uplink) bool) []string {
	var out []string
	for _, u := range s.Uplinks {
		if keep(u) {
			out = append(out, u.Name)
		}
	}
	return out
}

// staleNAT is every address of s whose NAT state must go.
func (s State) staleNAT() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, u := range s.Uplinks {
		for _, a := range u.StaleNAT {
			out[a] = u.Name
		}
	}
	return out
}

// Published is what the published name n answers under the [dns] policy: per family, the
// addresses of its uplinks that the policy picks; when none qualifies, every one of its uplinks' addresses: an answer
// that may work beats none.
func (s State) Published(n uplink.DNSName) []netip.Addr {
	policy := s.DNS.Policy
	var cands []Uplink
	for _, u := range s.Uplinks {
		if len(n.Uplinks) == 0 || slices.Contains(n.Uplinks, u.Name) {
			cands = append(cands, u)
		}
	}
	if len(n.Uplinks) > 0 { // the name's own order
		slices.SortStableFunc(cands, func(a, b Uplink) int {
			return slices.Index(n.Uplinks, a.Name) - slices.Index(n.Uplinks, b.Name)
		})
	}
	var out []netip.Addr
	for _, v6 := range []bool{false, true} {
		var picked, all []netip.Addr
		for _, u := range cands {
			a, chosen := u.Public4, u.Active
			if policy == uplink.DNSPolicyAll {
				chosen = u.Usable
			}
			if v6 {
				a, chosen = u.Public6, u.Active6
				if policy == uplink.DNSPolicyAll {
					chosen = u.Usable6
				}
			}
			if !a.IsValid() {
				continue
			}
			all = append(all, a)
			if chosen {
				picked = append(picked, a)
			}
		}
		if len(picked) == 0 {
			picked = all
		}
		out = append(out, picked...)
	}
	return out
}

// Clone returns a copy of s that shares no slices with it.
func (s State) Clone() State {
	c := s
	c.Uplinks = slices.Clone(s.Uplinks)
	for i := range c.Uplinks {
		c.Uplinks[i].Addrs = slices.Clone(c.Uplinks[i].Addrs)
		c.Uplinks[i].StaleNAT = slices.Clone(c.Uplinks[i].StaleNAT)
	}
	c.LANInterfaces = slices.Clone(s.LANInterfaces)
	c.Services = slices.Clone(s.Services)
	c.DNS.Names = slices.Clone(s.DNS.Names)
	c.EndFlows = slices.Clone(s.EndFlows)
	return c
}
