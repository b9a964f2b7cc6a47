package routing

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

// Root-only tests against the real kernel, each in namespaces it builds (see netns_test.go).

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: missing %q in:\n%s", what, w, got)
		}
	}
}

func TestKernelHoldsThePlanAndFailsOver(t *testing.T) {
	testkit.NeedRoot(t)
	g := newGateway(t)
	r := NewRouter(g.h, Settings{}, nil)

	ch, err := r.Apply(NewPlan(Settings{}, labUplinks(), []string{"isp1"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first apply: %d messages", ch.Messages)
	wantContains(t, "ip -4 rule", ipn(t, g.gw, "-4", "rule"),
		"1010:\tfrom all fwmark 0x100/0xff00 lookup 201 proto 85",
		"1010:\tfrom all fwmark 0x200/0xff00 lookup 202 proto 85",
		"1020:\tfrom all lookup main suppress_prefixlength 0 proto 85",
		"1030:\tfrom 192.0.2.10 lookup 201 proto 85",
		"1030:\tfrom 198.51.100.10 lookup 202 proto 85",
		"1040:\tfrom all lookup 1000 proto 85")
	wantContains(t, "ip -6 rule", ipn(t, g.gw, "-6", "rule"),
		"1010:\tfrom all fwmark 0x200/0xff00 lookup 202 proto 85",
		"1030:\tfrom 2001:db8:2::10 lookup 202 proto 85",
		"1040:\tfrom all lookup 1000 proto 85")
	wantContains(t, "table 202", ipn(t, g.gw, "route", "show", "table", "202"),
		"default via 198.51.100.1 dev wan2 proto 85",
		"unreachable default proto 85 metric 4294967295")
	wantContains(t, "ipv6 table 202", ipn(t, g.gw, "-6", "route", "show", "table", "202"),
		"default via 2001:db8:2::1 dev wan2 proto 85 metric 1024")

	// The real kernel gives back what we sent: a second Apply is silent.
	if ch, err := r.Apply(NewPlan(Settings{}, labUplinks(), []string{"isp1"})); err != nil || ch.Messages != 0 {
		t.Fatalf("second apply: %d messages %v, err %v", ch.Messages, ch.Done, err)
	}

	// Marked and source-bound traffic leaves through its own uplink; the rest through the active one.
	routes := []struct {
		name, dst string
		extra     []string
		want      string
	}{
		{"unmarked ipv4 uses the active uplink", "203.0.113.1", nil, "via 192.0.2.1 dev wan1"},
		{"unmarked ipv6 uses the active uplink", "2001:db8:ff::1", nil, "via 2001:db8:1::1 dev wan1"},
		{"mark 0x200 uses isp2", "203.0.113.1", []string{"mark", "0x200"}, "via 198.51.100.1 dev wan2"},
		{"mark 0x2ff still uses isp2 through the mask", "203.0.113.1", []string{"mark", "0x2ff"}, "via 198.51.100.1 dev wan2"},
		{"ipv6 mark 0x200 uses isp2", "2001:db8:ff::1", []string{"mark", "0x200"}, "via 2001:db8:2::1 dev wan2"},
		{"isp2's address uses isp2", "203.0.113.1", []string{"from", "198.51.100.10"}, "via 198.51.100.1 dev wan2"},
		{"marked traffic follows its mark even to a connected address", "198.51.100.1", []string{"mark", "0x100"}, "via 192.0.2.1 dev wan1"},
		{"connected routes of main win for unmarked traffic", "198.51.100.1", nil, "dev wan2"},
	}
	for _, tt := range routes {
		if got := routeGet(t, g.gw, tt.dst, tt.extra...); !strings.Contains(got, tt.want) {
			t.Errorf("%s: ip route get %s %v = %q, want %q", tt.name, tt.dst, tt.extra, got, tt.want)
		}
	}

	// A failover is one replace per family.
	ch, err = r.Apply(NewPlan(Settings{}, labUplinks(), []string{"isp2"}))
	if err != nil {
		t.Fatal(err)
	}
	if ch.Messages != 2 {
		t.Errorf("failover sent %d messages, want 2 (one per family): %v", ch.Messages, ch.Done)
	}
	wantContains(t, "after failover", routeGet(t, g.gw, "203.0.113.1"), "via 198.51.100.1 dev wan2")
	wantContains(t, "after failover (ipv6)", routeGet(t, g.gw, "2001:db8:ff::1"), "via 2001:db8:2::1 dev wan2")

	// Weighted multipath, then back to one: one message per family each time, and silence after.
	for _, active := range [][]string{{"isp1", "isp2"}, {"isp1"}} {
		ch, err = r.Apply(NewPlan(Settings{}, labUplinks(), active))
		if err != nil {
			t.Fatal(err)
		}
		if ch.Messages != 2 {
			t.Errorf("active %v: %d messages, want 2: %v", active, ch.Messages, ch.Done)
		}
		if ch, err := r.Apply(NewPlan(Settings{}, labUplinks(), active)); err != nil || ch.Messages != 0 {
			t.Errorf("active %v again: %d messages %v, err %v", active, ch.Messages, ch.Done, err)
		}
	}
	ipn(t, g.gw, "route", "show", "table", "1000")
	wantContains(t, "back to isp1", routeGet(t, g.gw, "203.0.113.1"), "via 192.0.2.1 dev wan1")
	wantContains(t, "back to isp1 (ipv6)", routeGet(t, g.gw, "2001:db8:ff::1"), "via 2001:db8:1::1 dev wan1")
	if out := ipn(t, g.gw, "-6", "route", "show", "table", "1000"); strings.Count(out, "default") != 1 || strings.Contains(out, "nexthop") {
		t.Errorf("ipv6 active table after going back to one uplink:\n%s", out)
	}
}

func TestForeignEntriesAreUntouched(t *testing.T) {
	testkit.NeedRoot(t)
	g := newGateway(t)
	g.foreignEntries(t)
	before := g.snapshot(t)

	r := NewRouter(g.h, Settings{}, nil)
	for _, active := range [][]string{{"isp1"}, {"isp1", "isp2"}, {"isp2"}} {
		if _, err := r.Apply(NewPlan(Settings{}, labUplinks(), active)); err != nil {
			t.Fatal(err)
		}
		if got := withoutOurs(g.snapshot(t)); got != withoutOurs(before) {
			t.Fatalf("after apply %v, foreign entries changed:\n%s\nwere:\n%s", active, got, before)
		}
	}
	// A restarted daemon adopts: no duplicates, no messages.
	if ch, err := NewRouter(g.h, Settings{}, nil).Apply(NewPlan(Settings{}, labUplinks(), []string{"isp2"})); err != nil || ch.Messages != 0 {
		t.Errorf("restarted router: %d messages %v, err %v", ch.Messages, ch.Done, err)
	}
	if _, err := NewRouter(g.h, Settings{}, nil).Cleanup(); err != nil {
		t.Fatal(err)
	}
	if after := g.snapshot(t); after != before {
		t.Errorf("after cleanup:\n%s\nbefore apply:\n%s", after, before)
	}
}

// nextEvent waits for an event of kind k on ifname (any interface when empty), skipping others.
func nextEvent(t *testing.T, events <-chan Event, k EventKind, ifname string) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == k && (ifname == "" || e.Interface == ifname) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event for %q within 10s", k, ifname)
		}
	}
}

func startMonitor(t *testing.T, g gateway) <-chan Event {
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event, 64)
	done := make(chan error, 1)
	m := NewMonitor(g.ns, Settings{}, nil)
	go func() { done <- m.Run(ctx, events) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("monitor ended with %v, want context.Canceled", err)
		}
	})
	select {
	case <-m.Subscribed():
	case err := <-done:
		t.Fatalf("the monitor did not subscribe: %v", err)
	}
	return events
}

func TestMonitorDrivesRepairAndRelearning(t *testing.T) {
	testkit.NeedRoot(t)
	g := newGateway(t)
	r := NewRouter(g.h, Settings{}, nil)
	ups := labUplinks()
	if _, err := r.Apply(NewPlan(Settings{}, ups, []string{"isp1"})); err != nil {
		t.Fatal(err)
	}
	events := startMonitor(t, g)

	t.Run("a deleted owned rule is reported and re-applying restores it", func(t *testing.T) {
		start := time.Now()
		ipn(t, g.gw, "rule", "del", "pref", "1040", "lookup", "1000")
		e := nextEvent(t, events, OwnedDeleted, "")
		t.Logf("reported after %v: %s", time.Since(start), e)
		// The daemon's loop: monitor event → Apply.
		ch, err := r.Apply(NewPlan(Settings{}, ups, []string{"isp1"}))
		if err != nil || ch.Messages != 1 {
			t.Fatalf("repair: %d messages %v, err %v", ch.Messages, ch.Done, err)
		}
		wantContains(t, "ip rule", ipn(t, g.gw, "rule"), "1040:\tfrom all lookup 1000 proto 85")
	})

	t.Run("a deleted owned route is reported and re-applying restores it", func(t *testing.T) {
		ipn(t, g.gw, "-6", "route", "del", "default", "table", "1000")
		nextEvent(t, events, OwnedDeleted, "")
		if ch, err := r.Apply(NewPlan(Settings{}, ups, []string{"isp1"})); err != nil || ch.Messages != 1 {
			t.Fatalf("repair: %d messages %v, err %v", ch.Messages, ch.Done, err)
		}
		wantContains(t, "after repair", routeGet(t, g.gw, "2001:db8:ff::1"), "dev wan1")
	})

	t.Run("a renumbered gateway in main is seen and the uplink's table follows it", func(t *testing.T) {
		ipn(t, g.gw, "route", "replace", "default", "via", "192.0.2.254", "dev", "wan1", "proto", "dhcp")
		nextEvent(t, events, GatewayChanged, "wan1")
		info, err := r.Link("wan1")
		if err != nil {
			t.Fatal(err)
		}
		if info.Gateway4 != netip.MustParseAddr("192.0.2.254") || info.Gateway6 != netip.MustParseAddr("2001:db8:1::1") {
			t.Fatalf("learned gateways %s, %s", info.Gateway4, info.Gateway6)
		}
		ups[0].Gateway4 = info.Gateway4
		ch, err := r.Apply(NewPlan(Settings{}, ups, []string{"isp1"}))
		if err != nil || ch.Messages != 2 { // the uplink's table and the active table
			t.Fatalf("follow: %d messages %v, err %v", ch.Messages, ch.Done, err)
		}
		wantContains(t, "table 201", ipn(t, g.gw, "route", "show", "table", "201"), "default via 192.0.2.254 dev wan1")
		wantContains(t, "active", routeGet(t, g.gw, "203.0.113.1"), "via 192.0.2.254 dev wan1")
	})

	t.Run("an address change is reported", func(t *testing.T) {
		ipn(t, g.gw, "addr", "add", "192.0.2.11/24", "dev", "wan1")
		nextEvent(t, events, AddrChanged, "wan1")
		info, err := r.Link("wan1")
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Addrs) != 3 {
			t.Errorf("addresses %v, want 192.0.2.10, 192.0.2.11 and 2001:db8:1::10", info.Addrs)
		}
	})

	t.Run("losing and regaining the carrier is reported", func(t *testing.T) {
		ipn(t, g.isp2, "link", "set", "up2", "down")
		nextEvent(t, events, CarrierLost, "wan2")
		if info, err := r.Link("wan2"); err != nil || info.Carrier || !info.Up {
			t.Errorf("Link(wan2) = %+v, %v; want up without carrier", info, err)
		}
		ipn(t, g.isp2, "link", "set", "up2", "up")
		nextEvent(t, events, CarrierRegained, "wan2")
	})

	t.Run("setting the link down is reported", func(t *testing.T) {
		ipn(t, g.gw, "link", "set", "wan2", "down")
		nextEvent(t, events, LinkDown, "wan2")
	})
}

// TestFlushSNATRemovesOnlyThatUplinksEntries: a client behind the gateway talks UDP and TCP
// to a server behind each uplink; static SNAT to each uplink's address. Flushing isp2's address
// removes exactly isp2's entries.
func TestFlushSNATRemovesOnlyThatUplinksEntries(t *testing.T) {
	testkit.NeedRoot(t)
	g := newGateway(t)
	lan := newNS(t, "c")
	veth(t, g.gw, "lan0", lan, "eth0")
	ipn(t, g.gw, "addr", "add", "203.0.113.1/26", "dev", "lan0")
	ipn(t, g.gw, "addr", "add", "2001:db8:ff::1/64", "dev", "lan0", "nodad")
	ipn(t, lan, "addr", "add", "203.0.113.2/26", "dev", "eth0")
	ipn(t, lan, "addr", "add", "2001:db8:ff::2/64", "dev", "eth0", "nodad")
	ipn(t, lan, "route", "add", "default", "via", "203.0.113.1")
	ipn(t, lan, "-6", "route", "add", "default", "via", "2001:db8:ff::1")
	run(t, "ip", "netns", "exec", g.gw, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	// A server behind each uplink; the gateway reaches each through its own uplink.
	ipn(t, g.isp1, "addr", "add", "203.0.113.100/32", "dev", "lo")
	ipn(t, g.isp2, "addr", "add", "203.0.113.101/32", "dev", "lo")
	ipn(t, g.isp1, "addr", "add", "2001:db8:100::100/128", "dev", "lo")
	ipn(t, g.isp2, "addr", "add", "2001:db8:100::101/128", "dev", "lo")
	ipn(t, g.gw, "route", "add", "203.0.113.101/32", "via", "198.51.100.1")
	ipn(t, g.gw, "-6", "route", "add", "2001:db8:100::101/128", "via", "2001:db8:2::1")
	nft := `table inet lab {
	chain post { type nat hook postrouting priority srcnat;
		oifname "wan1" ip saddr 203.0.113.0/26 snat ip to 192.0.2.10
		oifname "wan2" ip saddr 203.0.113.0/26 snat ip to 198.51.100.10
		oifname "wan1" ip6 saddr 2001:db8:ff::/64 snat ip6 to 2001:db8:1::10
		oifname "wan2" ip6 saddr 2001:db8:ff::/64 snat ip6 to 2001:db8:2::10
	}
}`
	cmd := exec.Command("ip", "netns", "exec", g.gw, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nft)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	// A TCP server on port 80 behind each uplink; the client sends UDP to 53 and 123 (nobody
	// listens: the conntrack entry stays, unreplied) and makes a TCP exchange on 80.
	for _, isp := range []string{g.isp1, g.isp2} {
		var ln net.Listener
		if err := netlab.InNamespace(isp, func() (err error) {
			ln, err = net.Listen("tcp", "[::]:80")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("hi\n"))
				c.Close()
			}
		}()
	}
	err := netlab.InNamespace(lan, func() error {
		for _, dst := range []string{"203.0.113.100", "203.0.113.101", "2001:db8:100::100", "2001:db8:100::101"} {
			for _, port := range []string{"53", "123"} {
				c, err := net.DialTimeout("udp", net.JoinHostPort(dst, port), time.Second)
				if err != nil {
					return err
				}
				_, err = c.Write([]byte("hello\n"))
				c.Close()
				if err != nil {
					return err
				}
			}
			c, err := net.DialTimeout("tcp", net.JoinHostPort(dst, "80"), time.Second)
			if err != nil {
				return err
			}
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, err = io.ReadAll(c)
			c.Close()
			if err != nil {
				return fmt.Errorf("tcp %s: %w", dst, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	type counts struct{ isp1, isp2, other int }
	count := func(fam netlink.InetFamily, a1, a2 string) counts {
		flows, err := g.h.ConntrackTableList(netlink.ConntrackTable, fam)
		if err != nil {
			t.Fatal(err)
		}
		var c counts
		for _, f := range flows {
			switch f.Reverse.DstIP.String() {
			case a1:
				c.isp1++
			case a2:
				c.isp2++
			default:
				c.other++
			}
		}
		return c
	}
	r := NewRouter(g.h, Settings{}, nil)
	for _, tt := range []struct {
		fam    netlink.InetFamily
		a1, a2 string
	}{
		{netlink.FAMILY_V4, "192.0.2.10", "198.51.100.10"},
		{netlink.FAMILY_V6, "2001:db8:1::10", "2001:db8:2::10"},
	} {
		before := count(tt.fam, tt.a1, tt.a2)
		if before.isp1 != 3 || before.isp2 != 3 {
			t.Fatalf("%s: before: %+v, want 3 entries SNATed to each uplink\n%s", tt.a2, before,
				run(t, "ip", "netns", "exec", g.gw, "conntrack", "-L"))
		}
		n, err := r.FlushSNAT(netip.MustParseAddr(tt.a2))
		if err != nil {
			t.Fatal(err)
		}
		after := count(tt.fam, tt.a1, tt.a2)
		if n != 3 || after.isp2 != 0 || after.isp1 != before.isp1 || after.other != before.other {
			t.Errorf("%s: flushed %d; before %+v after %+v; want 3 flushed, only isp2's gone", tt.a2, n, before, after)
		}
	}
}

// An upgrade that moves table_base (200 → 1000) must adopt the old entries: the new tables are
// filled and the new active route is in place before any old rule or route goes, and then
// nothing of the old layout is left.
func TestANewTableBaseAdoptsTheOldLayoutWithoutAGap(t *testing.T) {
	testkit.NeedRoot(t)
	g := newGateway(t)
	old := Settings{ActiveTable: 200}
	if _, err := NewRouter(g.h, old, nil).Apply(NewPlan(old, labUplinks(), []string{"isp1"})); err != nil {
		t.Fatal(err)
	}
	moved := labUplinks()
	for i := range moved {
		moved[i].Table += 800 // 201 → 1001
	}
	ch, err := NewRouter(g.h, Settings{}, nil).Apply(NewPlan(Settings{}, moved, []string{"isp1"}))
	if err != nil {
		t.Fatal(err)
	}
	firstDelete, lastNewActive := -1, -1
	for i, d := range ch.Done {
		if strings.HasPrefix(d, "delete") && firstDelete < 0 {
			firstDelete = i
		}
		if strings.Contains(d, "table 1000 default") || strings.Contains(d, "lookup 1000") {
			lastNewActive = i
		}
	}
	if firstDelete < 0 || lastNewActive < 0 || lastNewActive > firstDelete {
		t.Errorf("the new active route and rule must be in place before the first deletion:\n%s", strings.Join(ch.Done, "\n"))
	}
	for _, fam := range []string{"-4", "-6"} {
		rules := ipn(t, g.gw, fam, "rule")
		if strings.Contains(rules, "lookup 20") {
			t.Errorf("ip %s rule still holds the old layout:\n%s", fam, rules)
		}
		for _, table := range []string{"200", "201", "202"} {
			if out, _ := exec.Command("ip", "-n", g.gw, fam, "route", "show", "table", table).CombinedOutput(); strings.Contains(string(out), "proto 85") {
				t.Errorf("ip %s table %s still holds owned routes:\n%s", fam, table, out)
			}
		}
	}
	wantContains(t, "ip -4 rule", ipn(t, g.gw, "-4", "rule"), "1040:\tfrom all lookup 1000 proto 85", "1010:\tfrom all fwmark 0x100/0xff00 lookup 1001 proto 85")
	wantContains(t, "active table", ipn(t, g.gw, "route", "show", "table", "1000"), "default via 192.0.2.1 dev wan1 proto 85")
}
