package routing

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

// fakeKernel is an in-memory kernel with the semantics the Router relies on: EEXIST on a
// duplicate rule, replace by (family, table, metric), ESRCH/ENOENT on deleting what is not there.
type fakeKernel struct {
	rules      []netlink.Rule
	routes     []netlink.Route
	links      []netlink.Link
	addrs      map[int][]netlink.Addr
	flows      []*netlink.ConntrackFlow
	interrupts int // the next this many dumps fail with ErrDumpInterrupted
	changes    int // change messages received
}

func newFakeKernel(ifnames ...string) *fakeKernel {
	k := &fakeKernel{addrs: map[int][]netlink.Addr{}}
	for i, n := range ifnames {
		k.links = append(k.links, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{
			Name: n, Index: i + 2, Flags: net.FlagUp, RawFlags: syscall.IFF_UP | 0x10000 /* IFF_LOWER_UP */}})
	}
	return k
}

func (k *fakeKernel) interrupted() bool {
	if k.interrupts > 0 {
		k.interrupts--
		return true
	}
	return false
}

func (k *fakeKernel) RuleList(family int) ([]netlink.Rule, error) {
	if k.interrupted() {
		return nil, netlink.ErrDumpInterrupted
	}
	var out []netlink.Rule
	for _, r := range k.rules {
		if r.Family == family {
			out = append(out, r)
		}
	}
	return out, nil
}

// normalRule is the rule as a dump would return it.
func normalRule(r netlink.Rule) netlink.Rule {
	if r.Family == 0 {
		r.Family = netlink.FAMILY_V4
	}
	if r.Protocol == 0 {
		r.Protocol = 3 // RTPROT_BOOT, as netlink's RuleAdd sends by default
	}
	return r
}

func (k *fakeKernel) RuleAdd(r *netlink.Rule) error {
	k.changes++
	nr := normalRule(*r)
	for _, have := range k.rules {
		if ruleKey(have) == ruleKey(nr) {
			return fmt.Errorf("fake: %w", syscall.EEXIST)
		}
	}
	k.rules = append(k.rules, nr)
	return nil
}

func (k *fakeKernel) RuleDel(r *netlink.Rule) error {
	k.changes++
	nr := normalRule(*r)
	for i, have := range k.rules {
		if ruleKey(have) == ruleKey(nr) {
			k.rules = slices.Delete(k.rules, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("fake: %w", syscall.ENOENT)
}

func (k *fakeKernel) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	if k.interrupted() {
		return nil, netlink.ErrDumpInterrupted
	}
	var out []netlink.Route
	for _, r := range k.routes {
		switch {
		case family != netlink.FAMILY_ALL && r.Family != family:
		case mask&netlink.RT_FILTER_TABLE != 0 && filter.Table != 0 && r.Table != filter.Table:
		case mask&netlink.RT_FILTER_TABLE == 0 && r.Table != tableMain:
		case mask&netlink.RT_FILTER_PROTOCOL != 0 && r.Protocol != filter.Protocol:
		default:
			out = append(out, r)
		}
	}
	return out, nil
}

// normalRoute is the route as a dump would return it.
func normalRoute(r netlink.Route) netlink.Route {
	if r.Family == netlink.FAMILY_V6 && r.Priority == 0 {
		r.Priority = 1024
	}
	if r.Type == 0 {
		r.Type = unixRTNUnicast
	}
	if r.Table == 0 {
		r.Table = tableMain
	}
	return r
}

func (k *fakeKernel) RouteReplace(r *netlink.Route) error {
	k.changes++
	nr := normalRoute(*r)
	for i, have := range k.routes {
		if slotOf(have) == slotOf(nr) && isDefault(have) == isDefault(nr) {
			k.routes[i] = nr
			return nil
		}
	}
	k.routes = append(k.routes, nr)
	return nil
}

func (k *fakeKernel) RouteDel(r *netlink.Route) error {
	k.changes++
	nr := normalRoute(*r)
	for i, have := range k.routes {
		if routeContent(have) == routeContent(nr) {
			k.routes = slices.Delete(k.routes, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("fake: %w", syscall.ESRCH)
}

func (k *fakeKernel) LinkList() ([]netlink.Link, error) {
	if k.interrupted() {
		return nil, netlink.ErrDumpInterrupted
	}
	return slices.Clone(k.links), nil
}

func (k *fakeKernel) LinkByName(name string) (netlink.Link, error) {
	for _, l := range k.links {
		if l.Attrs().Name == name {
			return l, nil
		}
	}
	return nil, netlink.LinkNotFoundError{}
}

func (k *fakeKernel) AddrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	var out []netlink.Addr
	for _, a := range k.addrs[l.Attrs().Index] {
		if (a.IP.To4() != nil) == (family == netlink.FAMILY_V4) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (k *fakeKernel) AddrReplace(l netlink.Link, a *netlink.Addr) error {
	addrs := k.addrs[l.Attrs().Index]
	for i := range addrs {
		if addrs[i].IP.Equal(a.IP) {
			addrs[i] = *a
			return nil
		}
	}
	k.addrs[l.Attrs().Index] = append(addrs, *a)
	return nil
}

func (k *fakeKernel) ConntrackDeleteFilters(_ netlink.ConntrackTableType, _ netlink.InetFamily, filters ...netlink.CustomConntrackFilter) (uint, error) {
	var n uint
	k.flows = slices.DeleteFunc(k.flows, func(f *netlink.ConntrackFlow) bool {
		for _, fl := range filters {
			if fl.MatchConntrackFlow(f) {
				n++
				return true
			}
		}
		return false
	})
	return n, nil
}

// dump renders the fake's whole state, sorted, for comparisons.
func (k *fakeKernel) dump() string {
	var lines []string
	for _, r := range k.rules {
		lines = append(lines, fmt.Sprintf("rule %s proto %d", ruleKey(r), r.Protocol))
	}
	for _, r := range k.routes {
		lines = append(lines, fmt.Sprintf("route %s proto %d", routeContent(r), r.Protocol))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func TestRetryDump(t *testing.T) {
	tests := []struct {
		name       string
		interrupts int
		wantErr    bool
	}{
		{"a clean dump is read once", 0, false},
		{"a dump interrupted twice is read on the third try", 2, false},
		{"a dump interrupted on every try gives up with an error", dumpAttempts, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel("wan1")
			k.interrupts = tt.interrupts
			_, err := retryDump("links", k.LinkList)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %t", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
				t.Errorf("err = %v, want it to wrap ErrDumpInterrupted", err)
			}
		})
	}
}

func TestOwnership(t *testing.T) {
	s := Settings{}.WithDefaults()
	ours := func(prio int, proto uint8) netlink.Rule {
		r := *netlink.NewRule()
		r.Priority, r.Protocol, r.Table = prio, proto, 201
		return r
	}
	ruleTests := []struct {
		name string
		rule netlink.Rule
		want bool
	}{
		{"a rule in our band with our protocol is ours", ours(1010, 0x55), true},
		{"a rule in our band with another protocol is foreign", ours(1010, 3), false},
		{"a rule below our band is foreign", ours(999, 0x55), false},
		{"a rule above our band is foreign", ours(1100, 0x55), false},
	}
	for _, tt := range ruleTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.ownedRule(tt.rule); got != tt.want {
				t.Errorf("ownedRule = %t, want %t", got, tt.want)
			}
		})
	}
	routeTests := []struct {
		name  string
		route netlink.Route
		want  bool
	}{
		{"a route with our protocol in table 201 is ours", netlink.Route{Table: 201, Protocol: 0x55}, true},
		{"a route with our protocol in main is foreign", netlink.Route{Table: tableMain, Protocol: 0x55}, false},
		{"a DHCP route in table 201 is foreign", netlink.Route{Table: 201, Protocol: 16}, false},
	}
	for _, tt := range routeTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.ownedRoute(tt.route); got != tt.want {
				t.Errorf("ownedRoute = %t, want %t", got, tt.want)
			}
		})
	}
}
