package connmark

import (
	"errors"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func twoUplinks(w1, w2 int) Plan {
	return Plan{
		LANInterfaces: []string{"lan0"},
		Uplinks: []Uplink{
			{Name: "isp1", Interface: "wan1", Mark: 0x100, Weight: w1, Live: true, Eligible: true},
			{Name: "isp2", Interface: "wan2", Mark: 0x200, Weight: w2, Live: true, Eligible: true},
		},
	}
}

// withoutOurs is the ruleset as `nft -s list ruleset` prints it (no
// counter values), minus our table.
func withoutOurs(t *testing.T, ns string) string {
	t.Helper()
	rs := nftList(t, ns, "-s", "list", "ruleset")
	return regexp.MustCompile(`(?ms)^table inet uplinkd \{\n.*?^\}\n`).ReplaceAllString(rs, "")
}

func mustApply(t *testing.T, tb *Table, p Plan) {
	t.Helper()
	if err := tb.Replace(p); err != nil {
		t.Fatalf("Replace: %v", err)
	}
}

// ctMarkOf returns the conntrack mark of the router's TCP connection from
// the client's local port.
func (l *lab) ctMarkOf(t *testing.T, port int) (uint32, bool) {
	t.Helper()
	h, err := netlink.NewHandleAt(l.routerNS, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatalf("conntrack dump: %v", err)
	}
	for _, f := range flows {
		if f.Forward.Protocol == unix.IPPROTO_TCP && int(f.Forward.SrcPort) == port {
			return f.Mark, true
		}
	}
	return 0, false
}

// tcpOutRsts is the number of TCP resets namespace ns has sent.
func tcpOutRsts(t *testing.T, ns string) int {
	t.Helper()
	var keys []string
	for _, line := range strings.Split(run(t, "ip", "netns", "exec", ns, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if keys == nil {
			keys = f
			continue
		}
		for i, k := range keys {
			if k == "OutRsts" && i < len(f) {
				n, _ := strconv.Atoi(f[i])
				return n
			}
		}
	}
	t.Fatalf("no Tcp OutRsts in /proc/net/snmp of %s", ns)
	return 0
}

func TestTableInLab(t *testing.T) {
	testkit.NeedRoot(t)
	l := newLab(t)
	l.masquerade(t)
	others := withoutOurs(t, l.router)
	tb := NewTable(l.routerNS, nil)

	t.Run("weights 3:1 split 1,000 new connections 75/25 and a long-lived flow never moves", func(t *testing.T) {
		mustApply(t, tb, twoUplinks(3, 1))
		long := l.dial(t)
		first, err := long.ask()
		if err != nil {
			t.Fatalf("long-lived flow: %v", err)
		}
		before, err := tb.Counts()
		if err != nil {
			t.Fatalf("Counts: %v", err)
		}
		p1, p2 := l.sendUDP(t, 20000, 1000)
		t.Logf("1,000 new connections at 3:1: peer1 %d, peer2 %d", p1, p2)
		if p1+p2 != 1000 {
			t.Fatalf("peers received %d+%d datagrams, want 1000", p1, p2)
		}
		if p1 < 700 || p1 > 800 {
			t.Errorf("peer1 got %d of 1000 new connections, want 750 ± 50", p1)
		}
		after, err := tb.Counts()
		if err != nil {
			t.Fatalf("Counts: %v", err)
		}
		if d1, d2 := after[0x100]-before[0x100], after[0x200]-before[0x200]; d1 != int(p1) || d2 != int(p2) {
			t.Errorf("Counts grew by %d on 0x100 and %d on 0x200, want %d and %d (what the peers saw)", d1, d2, p1, p2)
		}
		mustApply(t, tb, twoUplinks(1, 3)) // re-weighting moves nothing either
		for i := range 5 {
			got, err := long.ask()
			if err != nil || got != first {
				t.Fatalf("long-lived flow, ask %d: answered by %q (%v), want %q throughout", i, got, err, first)
			}
		}
	})

	t.Run("a drained uplink keeps its connection while new ones go elsewhere, and loses it when no longer live", func(t *testing.T) {
		p := twoUplinks(1, 1)
		p.Uplinks[1].Eligible = false
		mustApply(t, tb, p)
		pinned := l.dial(t)
		if got, err := pinned.ask(); err != nil || got != "peer1" {
			t.Fatalf("with only isp1 eligible: answered by %q (%v), want peer1", got, err)
		}
		p = twoUplinks(1, 1)
		p.Uplinks[0].Eligible = false // drained gracefully: live, not eligible
		mustApply(t, tb, p)
		if got, err := pinned.ask(); err != nil || got != "peer1" {
			t.Fatalf("after draining isp1: pinned flow answered by %q (%v), want peer1", got, err)
		}
		if p1, p2 := l.sendUDP(t, 22000, 40); p1 != 0 || p2 != 40 {
			t.Errorf("after draining isp1: new connections went %d to peer1 and %d to peer2, want 0 and 40", p1, p2)
		}
		port := pinned.c.LocalAddr().(*net.TCPAddr).Port
		if m, ok := l.ctMarkOf(t, port); !ok || m&MarkMask != 0x100 {
			t.Fatalf("pinned flow's conntrack mark is %#x (found %v), want 0x100", m, ok)
		}
		p.Uplinks[0].Live = false // drain --now, or Down
		mustApply(t, tb, p)
		// Its next packet is re-picked for isp2. With masquerade the kernel
		// drops the packet and the entry whose output interface changed; the
		// retransmission starts a new entry, leaves through isp2, and peer2,
		// which knows nothing of the connection, resets it.
		rsts := tcpOutRsts(t, l.peer2)
		if got, err := pinned.ask(); err == nil {
			t.Errorf("after isp1 stopped being live: the pinned flow still answered, by %s", got)
		} else if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("after isp1 stopped being live: the pinned flow failed with %v, want a reset from peer2", err)
		}
		if n := tcpOutRsts(t, l.peer2); n <= rsts {
			t.Errorf("peer2 sent no reset (%d before, %d after): the flow did not move to isp2", rsts, n)
		}
	})

	t.Run("a service rule sends matching traffic to its uplink and a blocked one is refused", func(t *testing.T) {
		p := twoUplinks(3, 1)
		dst := []netip.Prefix{netip.MustParsePrefix("203.0.113.100/32")}
		p.Services = []Service{
			{Name: "udp9000", Dst: dst, Proto: "udp", DPorts: []PortRange{{9000, 9000}}, Mark: 0x200},
			{Name: "metered", Dst: dst, Proto: "tcp", DPorts: []PortRange{{9001, 9001}}, Block: true},
		}
		mustApply(t, tb, p)
		if p1, p2 := l.sendUDP(t, 23000, 50); p1 != 0 || p2 != 50 {
			t.Errorf("service udp9000 → isp2: new connections went %d to peer1 and %d to peer2, want 0 and 50", p1, p2)
		}
		var err error
		inNS(t, l.client, func() {
			var c net.Conn
			c, err = net.DialTimeout("tcp4", "203.0.113.100:9001", 2*time.Second)
			if err == nil {
				c.Close()
			}
		})
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("blocked service: dial gave %v, want connection refused", err)
		}
	})

	t.Run("check finds a deleted table and a flushed chain, and replace repairs them", func(t *testing.T) {
		p := twoUplinks(3, 1)
		mustApply(t, tb, p)
		if damage, err := tb.Check(p); err != nil || damage != "" {
			t.Fatalf("Check of the table just built = %q, %v; want intact", damage, err)
		}
		run(t, "ip", "netns", "exec", l.router, "nft", "delete", "table", "inet", "uplinkd")
		if damage, err := tb.Check(p); err != nil || damage != "table missing" {
			t.Fatalf("Check after delete = %q, %v; want table missing", damage, err)
		}
		mustApply(t, tb, p)
		if ok, err := tb.Exists(); err != nil || !ok {
			t.Fatalf("Exists after Replace = %v, %v; want true", ok, err)
		}
		run(t, "ip", "netns", "exec", l.router, "nft", "flush", "chain", "inet", "uplinkd", "pick")
		if damage, err := tb.Check(p); err != nil || !strings.Contains(damage, "chain pick has 0 rules") {
			t.Fatalf("Check after flushing chain pick = %q, %v", damage, err)
		}
		mustApply(t, tb, p)
		if got := nftList(t, l.router, "list", "chain", "inet", "uplinkd", "pick"); !strings.Contains(got, "numgen random mod 4") {
			t.Errorf("Replace did not repair the flushed chain pick:\n%s", got)
		}
		if got := withoutOurs(t, l.router); got != others {
			t.Errorf("other tables changed after Replace:\n%s\nwant\n%s", got, others)
		}
	})

	t.Run("cleanup removes only our table", func(t *testing.T) {
		if err := tb.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if ok, err := tb.Exists(); err != nil || ok {
			t.Fatalf("Exists after Cleanup = %v, %v; want false", ok, err)
		}
		if err := tb.Cleanup(); err != nil {
			t.Errorf("second Cleanup: %v", err)
		}
		if got := withoutOurs(t, l.router); got != others {
			t.Errorf("other tables changed after Cleanup:\n%s\nwant\n%s", got, others)
		}
	})
}

// The kernel holds exactly what Render prints: the table built through
// netlink lists the same as the one nft(8) loads from Render's text.
func TestRenderMatchesKernel(t *testing.T) {
	testkit.NeedRoot(t)
	for _, tc := range richPlans() {
		t.Run(tc.name, func(t *testing.T) {
			viaGo, viaNft := newNS(t, "g"), newNS(t, "n")
			if err := NewTable(nsHandle(t, viaGo), nil).Replace(tc.plan); err != nil {
				t.Fatalf("Replace: %v", err)
			}
			nft(t, viaNft, Render(tc.plan))
			got := nftList(t, viaGo, "list", "table", "inet", "uplinkd")
			// The one thing netlink cannot say: that the set holds what a
			// route lookup returns (nft keeps this as set user data).
			want := strings.ReplaceAll(nftList(t, viaNft, "list", "table", "inet", "uplinkd"),
				"typeof fib daddr oifname", "type ifname")
			if got != want {
				t.Errorf("table built by Apply:\n%s\ntable nft loaded from Render:\n%s", got, want)
			}
		})
	}
}

func richPlans() []struct {
	name string
	plan Plan
} {
	pfx := netip.MustParsePrefix
	base := twoUplinks(3, 1)
	base.Uplinks = append(base.Uplinks, Uplink{Name: "lte", Interface: "wwan0", Mark: 0x300, Weight: 2, Live: true,
		Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.130"), netip.MustParseAddr("198.51.100.131"), netip.MustParseAddr("2001:db8:13::2")}})
	services := base
	services.Services = []Service{
		{Name: "voip", Src: []netip.Prefix{pfx("192.0.2.0/25"), pfx("192.0.2.128/26"), pfx("2001:db8:1::/64")}, Proto: "udp",
			DPorts: []PortRange{{5060, 5061}, {10000, 20000}}, Mark: 0x200},
		{Name: "web", Dst: []netip.Prefix{pfx("198.51.100.0/24")}, Proto: "tcp", DPorts: []PortRange{{443, 443}}, InIface: "lan0", Mark: 0x100},
		{Name: "ports-any", DPorts: []PortRange{{53, 53}, {853, 853}}, Mark: 0x300},
		{Name: "ping", Proto: "icmp", Mark: 0x100},
		{Name: "ping6", Dst: []netip.Prefix{pfx("2001:db8::/32"), pfx("2001:db8:ffff::/48")}, Proto: "icmp", Mark: 0x100},
		{Name: "metered", Dst: []netip.Prefix{pfx("203.0.113.0/24"), pfx("203.0.113.64/26")}, Block: true},
		{Name: "fallback", Dst: []netip.Prefix{pfx("203.0.113.7/32")}},
	}
	affinity := base
	affinity.Affinity = true
	affinity.LANInterfaces = nil
	perFamily := affinity
	perFamily.Uplinks = slices.Clone(base.Uplinks)
	perFamily.PerFamily = true
	perFamily.Uplinks[1].Eligible6 = true
	randomPerFamily := perFamily
	randomPerFamily.Affinity = false
	prefixes := randomPerFamily
	prefixes.Uplinks = slices.Clone(base.Uplinks)
	prefixes.Uplinks[0].Prefixes, prefixes.Uplinks[0].Dead6 = []netip.Prefix{pfx("2001:db8:a1::/64"), pfx("2001:db8:a1:1::/64")}, true
	prefixes.Uplinks[1].Prefixes, prefixes.Uplinks[1].Usable6, prefixes.Uplinks[1].Eligible6 = []netip.Prefix{pfx("2001:db8:a2::/64")}, true, true
	prefixes.Translations = []Translation{
		{Interface: "wan2", From: pfx("2001:db8:a1::/64"), To: pfx("2001:db8:a2::/64")},
		{Interface: "wan2", From: pfx("2001:db8:a1:1::/64"), To: pfx("2001:db8:a2::/64")},
	}
	return []struct {
		name string
		plan Plan
	}{
		{"three uplinks, one drained", base},
		{"services of every kind", services},
		{"source affinity", affinity},
		{"no uplinks at all", Plan{}},
		{"IPv6 picked apart, by source", perFamily},
		{"IPv6 picked apart, at random", randomPerFamily},
		{"LAN prefixes, NPTv6 and IPv6 dead on one uplink", prefixes},
	}
}

func BenchmarkApply(b *testing.B) {
	testkit.NeedRoot(b)
	tb := NewTable(nsHandle(b, newNS(b, "b")), nil)
	p := richPlans()[1].plan
	b.Run("replace", func(b *testing.B) {
		for i := range b.N {
			p.Uplinks[0].Weight = 1 + i%2 // a change every time
			if err := tb.Replace(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		for range b.N {
			if _, err := tb.Check(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCounts measures Counts over a conntrack table of 10,000 entries
// (created through netlink in a namespace of its own), a third of them per
// uplink and a third unmarked.
func BenchmarkCounts(b *testing.B) {
	testkit.NeedRoot(b)
	ns := nsHandle(b, newNS(b, "b"))
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	const n = 10000
	for i := range n {
		f := &netlink.ConntrackFlow{FamilyType: unix.AF_INET, TimeOut: 300, Mark: uint32(i%3) << 8}
		f.Forward = netlink.IPTuple{SrcIP: net.IPv4(192, 0, 2, byte(1+i/60000)), DstIP: net.IPv4(203, 0, 113, 100),
			Protocol: unix.IPPROTO_UDP, SrcPort: uint16(1024 + i%60000), DstPort: 53}
		f.Reverse = netlink.IPTuple{SrcIP: f.Forward.DstIP, DstIP: f.Forward.SrcIP, Protocol: unix.IPPROTO_UDP,
			SrcPort: 53, DstPort: f.Forward.SrcPort}
		if err := h.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
			b.Fatalf("create conntrack entry %d: %v", i, err)
		}
	}
	tb := NewTable(ns, nil)
	b.ResetTimer()
	for range b.N {
		c, err := tb.Counts()
		if err != nil {
			b.Fatal(err)
		}
		if c[0x100] != n/3 {
			b.Fatalf("Counts = %v", c)
		}
	}
}
