// Package dataplane is the one port through which uplinkd changes the box. Every decision of
// the engine becomes one State — what the box should look like now — and Set makes the box
// match it: policy rules and routes for both families, the connection-mark table, the NAT
// state of uplinks that lost their connections. The Dataplane owns the routing settings, the
// diff and the only cache of what was applied; the status and everything else that shows or
// serves the box's state read the same State, so nothing is decided twice.
package dataplane

import (
	"maps"
	"net/netip"
	"slices"
	"time"

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
	// NamesDown are the checked names whose servers fail (fewer than their quorum pass): they
	// answer their fallback, or as unchecked when they have none.
	NamesDown map[string]bool
	// SitesUp are, per checked name and other site, its addresses that pass this site's checks
	// (through this site's live uplinks): only those are published for it.
	SitesUp map[string]map[string]map[netip.Addr]bool
	// EndFlows are connections to end: a service that moves its existing connections left an
	// uplink. Each is done once, when its Seq is new for its service.
	EndFlows []EndFlows
	// IPv6 is how the uplinks' LAN prefixes are advertised and translated ([ipv6]).
	IPv6 uplink.IPv6
}

// Prefix is one LAN /64 an uplink's provider delegated, where it lives and how long it lasts.
type Prefix struct {
	Prefix     netip.Prefix
	Interfaces []string // the LAN interfaces it is advertised on
	// Preferred and Valid are its lifetimes while the uplink carries new connections, capped
	// by [ipv6].
	Preferred, Valid time.Duration
	// PreferredUntil and ValidUntil are when a followed delegation's lifetimes end (zero: they
	// do not count down, as a static prefix's): what is advertised is never more than what
	// the lease has left at the moment it is sent (RFC 9096), Left.
	PreferredUntil, ValidUntil time.Time
}

// Left is what is left at now of a lifetime of at most limit that ends at until (zero: never),
// in whole seconds, rounded down (what a PIO carries), and never below 0.
func Left(limit time.Duration, until, now time.Time) time.Duration {
	if until.IsZero() {
		return limit
	}
	return max(0, min(limit, until.Sub(now).Truncate(time.Second)))
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
	// Dead6: Live, but its IPv6 (judged apart) died: its IPv6 connections are not kept.
	Dead6 bool
	// Usable and Usable6: judged up or degraded in that family and not drained (could carry
	// new connections if the policy chose it).
	Usable, Usable6 bool
	// Public4 and Public6 are where customers reach the business through it: the configured
	// public address, else its interface's own; invalid: none in that family.
	Public4, Public6 netip.Addr
	// StaleNAT are addresses whose NAT state cannot work any more (the uplink lost its
	// connections): the conntrack entries NATed to them go when they enter this set.
	StaleNAT []netip.Addr
	// Prefixes are its LAN prefixes (IPv6): while Usable6, traffic from them leaves through
	// it; otherwise it is translated to the prefix of the uplink it leaves by (NPTv6).
	Prefixes []Prefix
}

// PrefixesPreferred says whether hosts may use u's LAN prefixes for new connections: u carries
// new IPv6 connections (RFC 8475: otherwise they are advertised deprecated).
func (s State) PrefixesPreferred(u Uplink) bool { return u.Active6 && !s.Provisional }

// PrefixList is u's LAN prefixes without their details.
func (u Uplink) PrefixList() []netip.Prefix {
	out := make([]netip.Prefix, len(u.Prefixes))
	for i, p := range u.Prefixes {
		out[i] = p.Prefix
	}
	return out
}

// Translations are the NPTv6 mappings s puts in force: each prefix of an uplink that cannot
// carry IPv6 (dead, drained) is translated, when it leaves by a usable uplink, to that one's
// first prefix (an uplink with several maps them in turn onto the other's). None when [ipv6]
// nptv6 is off or the state is provisional.
func (s State) Translations() []connmark.Translation {
	if !s.IPv6.NPTv6 || s.Provisional {
		return nil
	}
	var out []connmark.Translation
	for _, from := range s.Uplinks {
		if from.Usable6 {
			continue
		}
		for _, to := range s.Uplinks {
			if !to.Usable6 || len(to.Prefixes) == 0 {
				continue
			}
			for i, p := range from.Prefixes {
				out = append(out, connmark.Translation{Interface: to.Interface, From: p.Prefix, To: to.Prefixes[i%len(to.Prefixes)].Prefix})
			}
		}
	}
	return out
}

// RoutingPlan is the rules and routes of s under the routing settings set.
func (s State) RoutingPlan(set routing.Settings) routing.Plan {
	ups := make([]routing.Uplink, len(s.Uplinks))
	var act4, act6 []string
	for i, u := range s.Uplinks {
		ups[i] = routing.Uplink{Name: u.Name, Interface: u.Interface, Table: u.Table, Mark: u.Mark,
			Gateway4: u.Gateway4, Gateway6: u.Gateway6, PointToPoint: u.PointToPoint,
			Addrs: u.Addrs, Weight: u.Weight}
		if u.Usable6 {
			ups[i].Prefixes = u.PrefixList()
		}
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
			Mark: u.Mark, Weight: u.Weight, Live: u.Live, Dead6: u.Dead6, Eligible: u.Active, Eligible6: u.Active6,
			Addrs: u.Addrs, Prefixes: u.PrefixList(), Usable6: u.Usable6})
		p.PerFamily = p.PerFamily || u.Active != u.Active6
	}
	p.Translations = s.Translations()
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

// stalePrefixes are the LAN prefixes whose untranslated connections must go: their uplink
// lost its IPv6 connections.
func (s State) stalePrefixes() map[netip.Prefix]string {
	out := map[netip.Prefix]string{}
	if s.Provisional {
		return out
	}
	for _, u := range s.Uplinks {
		if !u.Live || u.Dead6 {
			for _, p := range u.Prefixes {
				out[p.Prefix] = u.Name
			}
		}
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
		c.Uplinks[i].Prefixes = slices.Clone(c.Uplinks[i].Prefixes)
	}
	c.LANInterfaces = slices.Clone(s.LANInterfaces)
	c.Services = slices.Clone(s.Services)
	c.DNS.Names = slices.Clone(s.DNS.Names)
	c.NamesDown = maps.Clone(s.NamesDown)
	c.SitesUp = s.SitesUp // built anew for every state, never changed after
	c.EndFlows = slices.Clone(s.EndFlows)
	c.IPv6.Interfaces = slices.Clone(s.IPv6.Interfaces)
	c.IPv6.RDNSS = slices.Clone(s.IPv6.RDNSS)
	return c
}
