package routing

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/uplinkd/uplinkd/uplink"
	"github.com/vishvananda/netlink"
)

// Defaults for Settings fields left at zero.
const (
	DefaultRulePriority = uplink.DefaultRulePriority
	DefaultActiveTable  = uplink.DefaultTableBase
	// DefaultProtocol marks our routes and rules ("proto 0x55"); unused by the routing
	// daemons listed in /etc/iproute2/rt_protos.
	DefaultProtocol netlink.RouteProtocol = 0x55
	// DefaultMarkMask is the fwmark mask used when an Uplink has a mark but no mask.
	DefaultMarkMask = uplink.MarkMask
)

// Offsets of the rule slots within the priority band; see the package documentation.
const (
	slotMark     = 10
	slotSuppress = 20
	slotFrom     = 30
	slotActive   = 40
	bandWidth    = 100
)

// Tables the kernel reserves; nothing in them is ever ours.
const (
	tableUnspec  = 0
	tableDefault = 253
	tableMain    = 254
	tableLocal   = 255
)

// guardMetric is the metric of the unreachable default in every uplink table: the worst
// possible, so a real default route always wins.
const guardMetric = 0xffffffff

// Settings are the daemon-wide routing numbers (from [daemon] in the config).
type Settings struct {
	RulePriority int                   // start of our rule priority band, default 1000
	ActiveTable  int                   // table holding the active default route(s), default 1000 (uplink.DefaultTableBase)
	Protocol     netlink.RouteProtocol // our route and rule protocol number, default 0x55
}

// SettingsOf are the routing numbers of the [daemon] section d.
func SettingsOf(d uplink.Daemon) Settings {
	return Settings{RulePriority: d.RulePriority, ActiveTable: d.TableBase}
}

// WithDefaults fills zero fields.
func (s Settings) WithDefaults() Settings {
	if s.RulePriority <= 0 {
		s.RulePriority = DefaultRulePriority
	}
	if s.ActiveTable <= 0 {
		s.ActiveTable = DefaultActiveTable
	}
	if s.Protocol == 0 {
		s.Protocol = DefaultProtocol
	}
	return s
}

// Validate reports settings the kernel cannot hold or that would collide with its own entries.
func (s Settings) Validate() error {
	s = s.WithDefaults()
	switch {
	case s.RulePriority+bandWidth > 32766:
		return fmt.Errorf("routing: rule priority band %d..%d reaches the main table's rule at 32766", s.RulePriority, s.RulePriority+bandWidth-1)
	case s.ActiveTable >= tableDefault && s.ActiveTable <= tableLocal:
		return fmt.Errorf("routing: active table %d is one of the kernel's own (253 default, 254 main, 255 local)", s.ActiveTable)
	case s.Protocol <= 4 || s.Protocol > 255:
		return fmt.Errorf("routing: route protocol %d: want 5..255 (0..4 are the kernel's, the field is one byte)", int(s.Protocol))
	}
	return nil
}

// inBand reports whether a rule priority is in our band.
func (s Settings) inBand(prio int) bool {
	return prio >= s.RulePriority && prio < s.RulePriority+bandWidth
}

// Uplink is one provider as routing needs it. Table and Mark are given by the daemon.
type Uplink struct {
	Name      string
	Interface string
	Table     int
	Mark      uint32 // 0: no fwmark rule
	MarkMask  uint32 // 0: DefaultMarkMask
	Gateway4  netip.Addr
	Gateway6  netip.Addr
	// PointToPoint uplinks (PPP) without an IPv4 gateway get `default dev <if>` for IPv4.
	PointToPoint bool
	Addrs        []netip.Addr // the interface's global addresses, for `from <addr> lookup T` rules
	Weight       int          // 1..256, for multipath; out of range is clamped
	// Prefixes are LAN prefixes (IPv6) whose traffic leaves through this uplink: its
	// provider delegated them (`from <prefix> lookup T`, after the main table's own routes).
	Prefixes []netip.Prefix
}

// gateway returns the uplink's gateway for a family.
func (u Uplink) gateway(family int) netip.Addr {
	if family == netlink.FAMILY_V6 {
		return u.Gateway6
	}
	return u.Gateway4
}

// Rule is one policy rule we want.
type Rule struct {
	Family            int // netlink.FAMILY_V4 or FAMILY_V6
	Priority          int
	Mark, Mask        uint32       // Mask 0: no fwmark match
	Src               netip.Prefix // invalid: from all
	Table             int
	SuppressPrefixlen int // -1: none
}

// Nexthop is one way out of a route.
type Nexthop struct {
	Gateway   netip.Addr // invalid: directly on the interface
	Interface string
	Weight    int // 1..256; only meaningful in a multipath route
}

// Route is one default route we want.
type Route struct {
	Family      int
	Table       int
	Metric      int
	Unreachable bool      // the guard route: no nexthops
	Nexthops    []Nexthop // one: a plain route; several: multipath
}

// Plan is the whole desired state of our rules and routes.
type Plan struct {
	Settings Settings
	Rules    []Rule
	Routes   []Route
	// KeepActive lists the families whose active route is left as the kernel holds it,
	// because no active uplink has a gateway in that family.
	KeepActive []int
	// Problems are inputs NewPlan had to ignore, for the log.
	Problems []string
}

var families = []int{netlink.FAMILY_V4, netlink.FAMILY_V6}

func familyName(f int) string {
	if f == netlink.FAMILY_V6 {
		return "ipv6"
	}
	return "ipv4"
}

func familyOf(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func clampWeight(w int) int {
	return min(max(w, 1), 256)
}

// NewPlan computes the rules and routes for the uplinks and the active set (names, weighted
// by each uplink's Weight). It is pure. Uplinks without a table, and active names that are not
// uplinks, are ignored and noted in Plan.Problems.
func NewPlan(s Settings, uplinks []Uplink, active []string) Plan {
	return NewPlanPerFamily(s, uplinks, active, active)
}

// NewPlanPerFamily is NewPlan with an active set per address family: where an uplink's IPv6
// is judged apart from its IPv4, dead IPv6 moves only IPv6 traffic.
func NewPlanPerFamily(s Settings, uplinks []Uplink, active4, active6 []string) Plan {
	s = s.WithDefaults()
	p := Plan{Settings: s}

	ups := make([]Uplink, 0, len(uplinks))
	byName := make(map[string]Uplink, len(uplinks))
	for _, u := range uplinks {
		switch {
		case u.Table <= 0 || u.Table == s.ActiveTable || u.Table >= tableDefault && u.Table <= tableLocal:
			p.Problems = append(p.Problems, fmt.Sprintf("uplink %q: table %d is not usable", u.Name, u.Table))
			continue
		case u.Interface == "":
			p.Problems = append(p.Problems, fmt.Sprintf("uplink %q: no interface", u.Name))
			continue
		}
		if u.Mark != 0 && u.MarkMask == 0 {
			u.MarkMask = DefaultMarkMask
		}
		u.Weight = clampWeight(u.Weight)
		ups = append(ups, u)
		byName[u.Name] = u
	}
	// Sorted by table so the plan does not depend on input order.
	sort.SliceStable(ups, func(i, j int) bool { return ups[i].Table < ups[j].Table })

	activeOf := func(names []string, note bool) []Uplink {
		var act []Uplink
		seen := map[string]bool{}
		for _, n := range names {
			u, ok := byName[n]
			if !ok {
				if note {
					p.Problems = append(p.Problems, fmt.Sprintf("active uplink %q is not configured", n))
				}
				continue
			}
			if !seen[n] {
				seen[n] = true
				act = append(act, u)
			}
		}
		return act
	}
	act4 := activeOf(active4, true)
	act6 := activeOf(active6, !slices.Equal(active4, active6))

	for _, f := range families {
		act := act4
		if f == netlink.FAMILY_V6 {
			act = act6
		}
		for _, u := range ups {
			if u.Mark != 0 {
				p.Rules = append(p.Rules, Rule{Family: f, Priority: s.RulePriority + slotMark,
					Mark: u.Mark, Mask: u.MarkMask, Table: u.Table, SuppressPrefixlen: -1})
			}
		}
		p.Rules = append(p.Rules, Rule{Family: f, Priority: s.RulePriority + slotSuppress,
			Table: tableMain, SuppressPrefixlen: 0})
		for _, u := range ups {
			for _, a := range u.Addrs {
				if !a.IsValid() || familyOf(a) != f {
					continue
				}
				a = a.Unmap()
				p.Rules = append(p.Rules, Rule{Family: f, Priority: s.RulePriority + slotFrom,
					Src: netip.PrefixFrom(a, a.BitLen()), Table: u.Table, SuppressPrefixlen: -1})
			}
			for _, pr := range u.Prefixes {
				if pr.IsValid() && familyOf(pr.Addr()) == f {
					p.Rules = append(p.Rules, Rule{Family: f, Priority: s.RulePriority + slotFrom,
						Src: pr.Masked(), Table: u.Table, SuppressPrefixlen: -1})
				}
			}
		}
		p.Rules = append(p.Rules, Rule{Family: f, Priority: s.RulePriority + slotActive,
			Table: s.ActiveTable, SuppressPrefixlen: -1})

		for _, u := range ups {
			if hop, ok := uplinkHop(u, f); ok {
				p.Routes = append(p.Routes, Route{Family: f, Table: u.Table, Metric: defaultMetric(f), Nexthops: []Nexthop{hop}})
			}
			p.Routes = append(p.Routes, Route{Family: f, Table: u.Table, Metric: guardMetric, Unreachable: true})
		}

		var hops []Nexthop
		for _, u := range act {
			if hop, ok := uplinkHop(u, f); ok {
				hops = append(hops, hop)
			}
		}
		if len(hops) == 0 {
			p.KeepActive = append(p.KeepActive, f)
			continue
		}
		p.Routes = append(p.Routes, Route{Family: f, Table: s.ActiveTable, Metric: defaultMetric(f), Nexthops: hops})
	}
	return p
}

// uplinkHop is the way out through u in family f, if it has one.
func uplinkHop(u Uplink, f int) (Nexthop, bool) {
	gw := u.gateway(f)
	if gw.IsValid() && familyOf(gw) == f {
		return Nexthop{Gateway: gw.Unmap(), Interface: u.Interface, Weight: u.Weight}, true
	}
	if f == netlink.FAMILY_V4 && u.PointToPoint {
		return Nexthop{Interface: u.Interface, Weight: u.Weight}, true
	}
	return Nexthop{}, false
}

// defaultMetric is the metric the kernel gives a route added without one, so that what we
// send and what a dump returns compare equal.
func defaultMetric(f int) int {
	if f == netlink.FAMILY_V6 {
		return 1024
	}
	return 0
}

// keeps reports whether the plan leaves family f's active route alone.
func (p Plan) keeps(f int) bool {
	for _, k := range p.KeepActive {
		if k == f {
			return true
		}
	}
	return false
}

// String renders the plan as `ip rule` / `ip route` text, one entry a line.
func (p Plan) String() string {
	var b strings.Builder
	for _, r := range p.Rules {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	for _, r := range p.Routes {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	for _, f := range p.KeepActive {
		fmt.Fprintf(&b, "# %s table %d: no active uplink with a gateway: keep the kernel's route\n", familyName(f), p.Settings.ActiveTable)
	}
	for _, s := range p.Problems {
		fmt.Fprintf(&b, "# ignored: %s\n", s)
	}
	return b.String()
}

// String renders a rule the way `ip -4 rule` / `ip -6 rule` prints it.
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d: from ", familyName(r.Family), r.Priority)
	if r.Src.IsValid() {
		if r.Src.Bits() == r.Src.Addr().BitLen() {
			b.WriteString(r.Src.Addr().String())
		} else {
			b.WriteString(r.Src.String())
		}
	} else {
		b.WriteString("all")
	}
	if r.Mask != 0 {
		fmt.Fprintf(&b, " fwmark %#x/%#x", r.Mark, r.Mask)
	}
	fmt.Fprintf(&b, " lookup %s", tableName(r.Table))
	if r.SuppressPrefixlen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixlen)
	}
	return b.String()
}

// IsIPv6 says whether the route is an IPv6 one.
func (r Route) IsIPv6() bool { return r.Family == netlink.FAMILY_V6 }

// Text renders the route alone, the way `ip route` prints a default route: one line for a
// single way out, a nexthop line per way out of a multipath route.
func (r Route) Text() string {
	var b strings.Builder
	if r.Unreachable {
		return "unreachable default"
	}
	b.WriteString("default")
	if len(r.Nexthops) == 1 {
		writeHop(&b, r.Nexthops[0])
		return b.String()
	}
	for _, h := range r.Nexthops {
		b.WriteString("\n\tnexthop")
		writeHop(&b, h)
		fmt.Fprintf(&b, " weight %d", h.Weight)
	}
	return b.String()
}

// String renders a route the way `ip route show table T` prints it.
func (r Route) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s table %s: ", familyName(r.Family), tableName(r.Table))
	switch {
	case r.Unreachable:
		b.WriteString("unreachable default")
	case len(r.Nexthops) == 1:
		b.WriteString("default")
		writeHop(&b, r.Nexthops[0])
	default:
		b.WriteString("default")
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", uint32(r.Metric))
	}
	if len(r.Nexthops) > 1 {
		for _, h := range r.Nexthops {
			b.WriteString(" nexthop")
			writeHop(&b, h)
			fmt.Fprintf(&b, " weight %d", h.Weight)
		}
	}
	return b.String()
}

func writeHop(b *strings.Builder, h Nexthop) {
	if h.Gateway.IsValid() {
		fmt.Fprintf(b, " via %s", h.Gateway)
	}
	fmt.Fprintf(b, " dev %s", h.Interface)
}

func tableName(t int) string {
	if t == tableMain {
		return "main"
	}
	return fmt.Sprint(t)
}
