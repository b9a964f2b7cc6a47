package routing

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernel is what the Router needs from netlink. *netlink.Handle implements it; unit tests use
// an in-memory fake.
type kernel interface {
	RuleList(family int) ([]netlink.Rule, error)
	RuleAdd(rule *netlink.Rule) error
	RuleDel(rule *netlink.Rule) error
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	LinkList() ([]netlink.Link, error)
	LinkByName(name string) (netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrReplace(link netlink.Link, addr *netlink.Addr) error
	ConntrackDeleteFilters(table netlink.ConntrackTableType, family netlink.InetFamily, filters ...netlink.CustomConntrackFilter) (uint, error)
}

var _ kernel = (*netlink.Handle)(nil)

const (
	unixRTNUnicast     = unix.RTN_UNICAST
	unixRTNUnreachable = unix.RTN_UNREACHABLE
)

// dumpAttempts bounds the retries of a dump the kernel interrupted (the table changed while
// it was being read).
const dumpAttempts = 5

// RetryDump calls dump until the kernel's dump was not interrupted by a concurrent change (then
// its result is incomplete: netlink.ErrDumpInterrupted), at most dumpAttempts times.
func RetryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpAttempts {
		var out []T
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, fmt.Errorf("interrupted %d times in a row: %w", dumpAttempts, err)
}

// retryDump is RetryDump with the error naming what was listed.
func retryDump[T any](what string, dump func() ([]T, error)) ([]T, error) {
	out, err := RetryDump(dump)
	if err != nil {
		return nil, fmt.Errorf("routing: list %s: %w", what, err)
	}
	return out, nil
}

// ownedRule reports whether a kernel rule is ours: in our band and carrying our protocol.
func (s Settings) ownedRule(r netlink.Rule) bool {
	return s.inBand(r.Priority) && r.Protocol == uint8(s.Protocol)
}

// ownedRoute reports whether a kernel route is ours: our protocol, outside the reserved tables.
func (s Settings) ownedRoute(r netlink.Route) bool {
	return r.Protocol == s.Protocol && !reservedTable(r.Table)
}

func reservedTable(t int) bool {
	return t == tableUnspec || t == tableDefault || t == tableMain || t == tableLocal
}

// ruleKey identifies a rule by everything we set, so kernel and plan rules compare.
func ruleKey(r netlink.Rule) string {
	src := ""
	if r.Src != nil {
		src = r.Src.String()
	}
	var mask uint32
	if r.Mask != nil {
		mask = *r.Mask
	}
	sup := r.SuppressPrefixlen
	if sup < 0 {
		sup = -1
	}
	return fmt.Sprintf("%s pref %d from %s fwmark %#x/%#x table %d suppress %d iif %q oif %q goto %d",
		familyName(r.Family), r.Priority, src, r.Mark, mask, r.Table, sup, r.IifName, r.OifName, r.Goto)
}

// toNetlinkRule builds the kernel rule for a plan rule.
func (s Settings) toNetlinkRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = r.Family
	nr.Priority = r.Priority
	nr.Table = r.Table
	nr.Protocol = uint8(s.Protocol)
	nr.SuppressPrefixlen = r.SuppressPrefixlen
	if r.Mask != 0 {
		nr.Mark = r.Mark
		mask := r.Mask
		nr.Mask = &mask
	}
	if r.Src.IsValid() {
		nr.Src = prefixToIPNet(r.Src)
	}
	return nr
}

// describeRule renders a kernel rule for error messages and logs, `ip rule` style.
func describeRule(r *netlink.Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s pref %d", familyName(r.Family), r.Priority)
	if r.Src != nil {
		fmt.Fprintf(&b, " from %s", r.Src)
	}
	if r.Mask != nil {
		fmt.Fprintf(&b, " fwmark %#x/%#x", r.Mark, *r.Mask)
	}
	fmt.Fprintf(&b, " table %s", tableName(r.Table))
	if r.SuppressPrefixlen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixlen)
	}
	return b.String()
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

func ipOf(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.AsSlice())
}

func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// routeSlot identifies the kernel route a replace overwrites: family, table, metric (all our
// routes are default routes).
type routeSlot struct {
	family, table, metric int
}

func (s routeSlot) String() string {
	return fmt.Sprintf("%s table %s metric %d", familyName(s.family), tableName(s.table), uint32(s.metric))
}

func slotOf(r netlink.Route) routeSlot {
	m := r.Priority
	if r.Family == netlink.FAMILY_V6 && m == 0 {
		m = 1024
	}
	return routeSlot{r.Family, r.Table, m}
}

// isDefault reports whether a route's destination is the default (0/0 or ::/0).
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

type hopKey struct {
	gw     string
	index  int
	weight int
}

// routeContent is what we compare to decide whether a route must be replaced.
func routeContent(r netlink.Route) string {
	var hops []hopKey
	if len(r.MultiPath) > 0 {
		for _, h := range r.MultiPath {
			hops = append(hops, hopKey{addrOf(h.Gw).String(), h.LinkIndex, h.Hops + 1})
		}
	} else if r.Type == 0 || r.Type == unixRTNUnicast {
		hops = append(hops, hopKey{addrOf(r.Gw).String(), r.LinkIndex, 1})
	}
	typ := r.Type
	if typ == 0 {
		typ = unixRTNUnicast
	}
	return fmt.Sprintf("%s type %d default=%t hops %v", slotOf(r), typ, isDefault(r), hops)
}

// toNetlinkRoute builds the kernel route for a plan route; index maps interface names to link
// indexes. Nexthops on missing interfaces are left out and reported.
func (s Settings) toNetlinkRoute(r Route, index map[string]int) (*netlink.Route, []string) {
	var missing []string
	nr := &netlink.Route{
		Family:   r.Family,
		Table:    r.Table,
		Priority: r.Metric,
		Protocol: s.Protocol,
		Dst:      defaultDst(r.Family),
	}
	if r.Unreachable {
		nr.Type = unixRTNUnreachable
		return nr, nil
	}
	nr.Type = unixRTNUnicast
	var hops []Nexthop
	for _, h := range r.Nexthops {
		if _, ok := index[h.Interface]; !ok {
			missing = append(missing, h.Interface)
			continue
		}
		hops = append(hops, h)
	}
	switch len(hops) {
	case 0:
		return nil, missing
	case 1:
		nr.Gw = ipOf(hops[0].Gateway)
		nr.LinkIndex = index[hops[0].Interface]
		if nr.Gw == nil {
			nr.Scope = netlink.SCOPE_LINK
		}
	default:
		for _, h := range hops {
			nr.MultiPath = append(nr.MultiPath, &netlink.NexthopInfo{
				LinkIndex: index[h.Interface], Gw: ipOf(h.Gateway), Hops: h.Weight - 1})
		}
	}
	return nr, missing
}

func defaultDst(f int) *net.IPNet {
	if f == netlink.FAMILY_V6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// describeRoute renders a kernel route for errors and logs, `ip route` style.
func describeRoute(r *netlink.Route, names map[int]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s table %s ", familyName(r.Family), tableName(r.Table))
	if r.Type == unixRTNUnreachable {
		b.WriteString("unreachable ")
	}
	b.WriteString("default")
	hop := func(gw net.IP, idx int) {
		if gw != nil {
			fmt.Fprintf(&b, " via %s", gw)
		}
		if n, ok := names[idx]; ok {
			fmt.Fprintf(&b, " dev %s", n)
		} else if idx != 0 {
			fmt.Fprintf(&b, " dev #%d", idx)
		}
	}
	if len(r.MultiPath) == 0 {
		hop(r.Gw, r.LinkIndex)
	}
	if r.Priority != 0 {
		fmt.Fprintf(&b, " metric %d", uint32(r.Priority))
	}
	for _, h := range r.MultiPath {
		b.WriteString(" nexthop")
		hop(h.Gw, h.LinkIndex)
		fmt.Fprintf(&b, " weight %d", h.Hops+1)
	}
	return b.String()
}

// sortedKeys returns a map's keys in order, for deterministic message order.
func sortedKeys[K interface{ ~string }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
