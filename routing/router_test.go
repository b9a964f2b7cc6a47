package routing

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// foreign puts entries into k that are not ours and must survive everything.
func foreign(k *fakeKernel) {
	r1 := *netlink.NewRule()
	r1.Family, r1.Priority, r1.Table, r1.Protocol = netlink.FAMILY_V4, 500, 100, 3
	r2 := *netlink.NewRule() // in our band, but not our protocol: an administrator's rule
	r2.Family, r2.Priority, r2.Table, r2.Protocol = netlink.FAMILY_V4, 1015, 201, 3
	r3 := *netlink.NewRule()
	r3.Family, r3.Priority, r3.Table, r3.Protocol = netlink.FAMILY_V6, 1040, 300, 3
	k.rules = append(k.rules, r1, r2, r3)
	k.routes = append(k.routes,
		netlink.Route{Family: netlink.FAMILY_V4, Table: tableMain, Protocol: 16, Type: unixRTNUnicast,
			Gw: net.ParseIP("192.0.2.1").To4(), LinkIndex: 2},
		netlink.Route{Family: netlink.FAMILY_V4, Table: 201, Protocol: 4, Type: unixRTNUnicast, Priority: 50,
			Gw: net.ParseIP("192.0.2.2").To4(), LinkIndex: 2},
		// Our protocol number, but in main: never ours.
		netlink.Route{Family: netlink.FAMILY_V6, Table: tableMain, Protocol: 0x55, Type: unixRTNUnicast, Priority: 1024,
			Gw: net.ParseIP("2001:db8:1::1"), LinkIndex: 2},
	)
}

func countPlan(p Plan) int {
	n := len(p.Rules)
	for range p.Routes {
		n++
	}
	return n
}

func TestApplyOntoAnEmptyKernelSendsOneMessagePerEntry(t *testing.T) {
	k := newFakeKernel("wan1", "wan2")
	r := newRouter(k, Settings{}, nil)
	p := NewPlan(Settings{}, twoUplinks(), []string{"isp1"})
	ch, err := r.Apply(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := countPlan(p); ch.Messages != want || k.changes != want {
		t.Errorf("messages = %d (kernel saw %d), want %d:\n%s", ch.Messages, k.changes, want, strings.Join(ch.Done, "\n"))
	}
}

func TestApplyTwiceSendsNothing(t *testing.T) {
	for _, active := range [][]string{{"isp1"}, {"isp1", "isp2"}} {
		t.Run("active "+strings.Join(active, "+"), func(t *testing.T) {
			k := newFakeKernel("wan1", "wan2")
			foreign(k)
			r := newRouter(k, Settings{}, nil)
			p := NewPlan(Settings{}, twoUplinks(), active)
			if _, err := r.Apply(p); err != nil {
				t.Fatal(err)
			}
			ch, err := r.Apply(p)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Messages != 0 {
				t.Errorf("second Apply sent %d messages:\n%s", ch.Messages, strings.Join(ch.Done, "\n"))
			}
		})
	}
}

func TestApplyChangesOnlyWhatDiffers(t *testing.T) {
	moved := twoUplinks()
	moved[0].Addrs[0] = mustAddr("192.0.2.11")
	renumbered := twoUplinks()
	renumbered[1].Gateway4 = mustAddr("198.51.100.254")
	gone := twoUplinks()[:1]

	tests := []struct {
		name    string
		uplinks []Uplink
		active  []string
		want    []string // the changes, in order
	}{
		{"a failover replaces the active route once per family", twoUplinks(), []string{"isp2"}, []string{
			"replace route ipv4 table 1000 default via 198.51.100.1 dev wan2",
			"replace route ipv6 table 1000 default via 2001:db8:2::1 dev wan2 metric 1024",
		}},
		{"going multipath replaces the active route once per family", twoUplinks(), []string{"isp1", "isp2"}, []string{
			"replace route ipv4 table 1000 default nexthop via 192.0.2.1 dev wan1 weight 3 nexthop via 198.51.100.1 dev wan2 weight 1",
			"replace route ipv6 table 1000 default metric 1024 nexthop via 2001:db8:1::1 dev wan1 weight 3 nexthop via 2001:db8:2::1 dev wan2 weight 1",
		}},
		{"an empty active set keeps the active routes", twoUplinks(), nil, nil},
		{"a moved address swaps one rule", moved, []string{"isp1"}, []string{
			"add rule ipv4 pref 1030 from 192.0.2.11/32 table 201",
			"delete rule ipv4 pref 1030 from 192.0.2.10/32 table 201",
		}},
		{"a renumbered gateway replaces its uplink's route", renumbered, []string{"isp1"}, []string{
			"replace route ipv4 table 202 default via 198.51.100.254 dev wan2",
		}},
		{"a removed uplink takes its rules and routes along", gone, []string{"isp1"}, []string{
			"delete rule ipv4 pref 1010 fwmark 0x200/0xff00 table 202",
			"delete rule ipv4 pref 1030 from 198.51.100.10/32 table 202",
			"delete rule ipv6 pref 1010 fwmark 0x200/0xff00 table 202",
			"delete rule ipv6 pref 1030 from 2001:db8:2::10/128 table 202",
			"delete route ipv4 table 202 default via 198.51.100.1 dev wan2",
			"delete route ipv4 table 202 unreachable default metric 4294967295",
			"delete route ipv6 table 202 default via 2001:db8:2::1 dev wan2 metric 1024",
			"delete route ipv6 table 202 unreachable default metric 4294967295",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel("wan1", "wan2")
			foreign(k)
			r := newRouter(k, Settings{}, nil)
			if _, err := r.Apply(NewPlan(Settings{}, twoUplinks(), []string{"isp1"})); err != nil {
				t.Fatal(err)
			}
			before := k.dump()
			ch, err := r.Apply(NewPlan(Settings{}, tt.uplinks, tt.active))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(ch.Done, "\n"), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("changes:\n%s\nwant:\n%s", got, want)
			}
			if ch.Messages != len(tt.want) {
				t.Errorf("messages = %d, want %d", ch.Messages, len(tt.want))
			}
			if len(tt.want) == 0 && k.dump() != before {
				t.Errorf("kernel changed:\n%s\nwas:\n%s", k.dump(), before)
			}
		})
	}
}

func TestARestartedRouterAdoptsWhatIsThere(t *testing.T) {
	k := newFakeKernel("wan1", "wan2")
	foreign(k)
	p := NewPlan(Settings{}, twoUplinks(), []string{"isp1", "isp2"})
	if _, err := newRouter(k, Settings{}, nil).Apply(p); err != nil {
		t.Fatal(err)
	}
	before := k.dump()
	ch, err := newRouter(k, Settings{}, nil).Apply(p)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Messages != 0 || k.dump() != before {
		t.Errorf("restarted router sent %d messages: %v", ch.Messages, ch.Done)
	}
}

func TestApplyRepairsWhatSomeoneDeleted(t *testing.T) {
	tests := []struct {
		name   string
		delete func(k *fakeKernel)
		want   string
	}{
		{"a deleted rule is added back", func(k *fakeKernel) {
			for i, r := range k.rules {
				if r.Priority == 1040 && r.Protocol == 0x55 {
					k.rules = append(k.rules[:i], k.rules[i+1:]...)
					return
				}
			}
		}, "add rule ipv4 pref 1040 table 1000"},
		{"a deleted active route is put back", func(k *fakeKernel) {
			for i, r := range k.routes {
				if r.Table == DefaultActiveTable && r.Family == netlink.FAMILY_V6 {
					k.routes = append(k.routes[:i], k.routes[i+1:]...)
					return
				}
			}
		}, "replace route ipv6 table 1000 default via 2001:db8:1::1 dev wan1 metric 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel("wan1", "wan2")
			r := newRouter(k, Settings{}, nil)
			p := NewPlan(Settings{}, twoUplinks(), []string{"isp1"})
			if _, err := r.Apply(p); err != nil {
				t.Fatal(err)
			}
			tt.delete(k)
			ch, err := r.Apply(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(ch.Done, "\n"); got != tt.want {
				t.Errorf("changes:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestCleanupRemovesOursAndNothingElse(t *testing.T) {
	k := newFakeKernel("wan1", "wan2")
	foreign(k)
	want := k.dump()
	r := newRouter(k, Settings{}, nil)
	if _, err := r.Apply(NewPlan(Settings{}, twoUplinks(), []string{"isp1", "isp2"})); err != nil {
		t.Fatal(err)
	}
	// A fresh router, as `uplinkd --cleanup` after a crash has no plan.
	ch, err := newRouter(k, Settings{}, nil).Cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if got := k.dump(); got != want {
		t.Errorf("after cleanup:\n%s\nwant:\n%s", got, want)
	}
	if ch.Messages == 0 {
		t.Error("cleanup sent no messages")
	}
	if ch, _ := r.Cleanup(); ch.Messages != 0 {
		t.Errorf("second cleanup sent %d messages", ch.Messages)
	}
}

func TestApplyCarriesOnPastAMissingInterface(t *testing.T) {
	k := newFakeKernel("wan1") // wan2 is gone
	r := newRouter(k, Settings{}, nil)
	_, err := r.Apply(NewPlan(Settings{}, twoUplinks(), []string{"isp1", "isp2"}))
	if err == nil || !strings.Contains(err.Error(), "interface [wan2] not found") {
		t.Fatalf("err = %v, want it to name the missing interface", err)
	}
	var active int
	for _, ro := range k.routes {
		if ro.Table == DefaultActiveTable {
			active++
			if len(ro.MultiPath) != 0 || ro.LinkIndex != 2 {
				t.Errorf("active route %s: want a single route via wan1", describeRoute(&ro, nil))
			}
		}
	}
	if active != 2 {
		t.Errorf("%d active routes, want one per family", active)
	}
}

func TestApplyKeepsTheActiveRouteWhenItsInterfacesAreGone(t *testing.T) {
	k := newFakeKernel("wan1", "wan2")
	r := newRouter(k, Settings{}, nil)
	if _, err := r.Apply(NewPlan(Settings{}, twoUplinks(), []string{"isp2"})); err != nil {
		t.Fatal(err)
	}
	k.links = k.links[:1] // wan2 vanishes
	_, _ = r.Apply(NewPlan(Settings{}, twoUplinks(), []string{"isp2"}))
	for _, f := range families {
		found := false
		for _, ro := range k.routes {
			found = found || ro.Table == DefaultActiveTable && ro.Family == f
		}
		if !found {
			t.Errorf("%s: the active route was deleted", familyName(f))
		}
	}
}

func TestFlushSNATDeletesOnlyThatUplinksEntries(t *testing.T) {
	flow := func(src, dst, rsrc, rdst string) *netlink.ConntrackFlow {
		f := &netlink.ConntrackFlow{}
		f.Forward.SrcIP, f.Forward.DstIP = net.ParseIP(src), net.ParseIP(dst)
		f.Reverse.SrcIP, f.Reverse.DstIP = net.ParseIP(rsrc), net.ParseIP(rdst)
		return f
	}
	k := newFakeKernel()
	k.flows = []*netlink.ConntrackFlow{
		flow("192.168.1.2", "203.0.113.1", "203.0.113.1", "198.51.100.10"),   // SNATed to isp2: goes
		flow("192.168.1.3", "203.0.113.1", "203.0.113.1", "198.51.100.10"),   // SNATed to isp2: goes
		flow("192.168.1.2", "203.0.113.1", "203.0.113.1", "192.0.2.10"),      // SNATed to isp1: stays
		flow("198.51.100.10", "203.0.113.1", "203.0.113.1", "198.51.100.10"), // the gateway's own: stays
		flow("203.0.113.9", "198.51.100.10", "198.51.100.10", "203.0.113.9"), // inbound: stays
	}
	n, err := newRouter(k, Settings{}, nil).FlushSNAT(netip.MustParseAddr("198.51.100.10"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || len(k.flows) != 3 {
		t.Errorf("deleted %d, %d left; want 2 deleted, 3 left", n, len(k.flows))
	}
	if _, err := newRouter(k, Settings{}, nil).FlushSNAT(netip.Addr{}); err == nil {
		t.Error("FlushSNAT accepted no address")
	}
}

func TestLinkLearnsTheForeignGateway(t *testing.T) {
	k := newFakeKernel("wan1", "wan2")
	k.addrs[2] = []netlink.Addr{
		{IPNet: &net.IPNet{IP: net.ParseIP("192.0.2.10").To4(), Mask: net.CIDRMask(24, 32)}},
		{IPNet: &net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)}, Scope: int(netlink.SCOPE_LINK)},
		{IPNet: &net.IPNet{IP: net.ParseIP("2001:db8:1::10"), Mask: net.CIDRMask(64, 128)}},
	}
	r := newRouter(k, Settings{}, nil)
	if _, err := r.Apply(NewPlan(Settings{}, twoUplinks(), []string{"isp1"})); err != nil {
		t.Fatal(err)
	}
	k.routes = append(k.routes,
		netlink.Route{Family: netlink.FAMILY_V4, Table: tableMain, Protocol: 16, Priority: 100, Gw: net.ParseIP("192.0.2.99").To4(), LinkIndex: 2},
		netlink.Route{Family: netlink.FAMILY_V4, Table: 77, Protocol: 16, Gw: net.ParseIP("192.0.2.77").To4(), LinkIndex: 2},
		netlink.Route{Family: netlink.FAMILY_V4, Table: tableMain, Protocol: 16, Priority: 200, Gw: net.ParseIP("192.0.2.98").To4(), LinkIndex: 2},
		netlink.Route{Family: netlink.FAMILY_V6, Table: tableMain, Protocol: 9, Priority: 1024, Gw: net.ParseIP("fe80::1"), LinkIndex: 2},
	)
	info, err := r.Link("wan1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Gateway4 != mustAddr("192.0.2.99") || info.Gateway6 != mustAddr("fe80::1") {
		t.Errorf("gateways %s, %s; want main's best (192.0.2.99, fe80::1), never ours", info.Gateway4, info.Gateway6)
	}
	if len(info.Addrs) != 2 || info.Addrs[0] != mustAddr("192.0.2.10") || info.Addrs[1] != mustAddr("2001:db8:1::10") {
		t.Errorf("addrs %v: want the two global ones", info.Addrs)
	}
	if !info.Up || !info.Carrier || info.Index != 2 {
		t.Errorf("info %+v: want index 2, up, carrier", info)
	}
	if _, err := r.Link("nope"); err == nil || !strings.Contains(err.Error(), "link nope") {
		t.Errorf("err = %v, want it to name the link", err)
	}
}

func TestSetPreferredChangesOnlyThatAddressesPreferredLifetime(t *testing.T) {
	k := newFakeKernel("lan0")
	k.addrs[2] = []netlink.Addr{
		{IPNet: &net.IPNet{IP: net.ParseIP("2001:db8:a1::1"), Mask: net.CIDRMask(64, 128)}, PreferedLft: 1800, ValidLft: 7200, Flags: 0x200},
		{IPNet: &net.IPNet{IP: net.ParseIP("2001:db8:a2::1"), Mask: net.CIDRMask(64, 128)}, PreferedLft: LifetimeForever, ValidLft: LifetimeForever},
	}
	r := newRouter(k, Settings{}, nil)
	if err := r.SetPreferred("lan0", mustAddr("2001:db8:a1::1"), 0, false); err != nil {
		t.Fatal(err)
	}
	prefixes, err := r.Prefixes6("lan0")
	if err != nil {
		t.Fatal(err)
	}
	a1, a2 := prefixes[0], prefixes[1]
	if a1.Preferred != 0 || a1.Valid != 7200*time.Second || k.addrs[2][0].Flags != 0x200 {
		t.Errorf("a1 %+v (flags %#x): want preferred 0, valid and flags kept", a1, k.addrs[2][0].Flags)
	}
	if !a2.PreferredForever || !a2.Forever {
		t.Errorf("a2 %+v: want it untouched, forever", a2)
	}
	if err := r.SetPreferred("lan0", mustAddr("2001:db8:a1::1"), 0, true); err != nil {
		t.Fatal(err)
	}
	if prefixes, _ = r.Prefixes6("lan0"); !prefixes[0].PreferredForever {
		t.Errorf("a1 %+v: want preferred forever again", prefixes[0])
	}
	if err := r.SetPreferred("lan0", mustAddr("2001:db8:a3::1"), 0, false); err == nil || !strings.Contains(err.Error(), "no address 2001:db8:a3::1") {
		t.Errorf("err = %v, want it to name the missing address", err)
	}
}
