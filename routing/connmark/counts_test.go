package connmark

import (
	"net"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func TestLiveCountsOpenConnectionsOnly(t *testing.T) {
	tcp := func(state uint8) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{Forward: netlink.IPTuple{Protocol: unix.IPPROTO_TCP}, ProtoInfo: &netlink.ProtoInfoTCP{State: state}}
	}
	for _, tc := range []struct {
		name string
		flow *netlink.ConntrackFlow
		want bool
	}{
		{"a TCP connection being opened counts", tcp(nl.TCP_CONNTRACK_SYN_SENT), true},
		{"a TCP connection half open counts", tcp(nl.TCP_CONNTRACK_SYN_RECV), true},
		{"an established TCP connection counts", tcp(nl.TCP_CONNTRACK_ESTABLISHED), true},
		{"a simultaneous open counts", tcp(nl.TCP_CONNTRACK_SYN_SENT2), true},
		{"a TCP connection after the first FIN does not count", tcp(nl.TCP_CONNTRACK_FIN_WAIT), false},
		{"a half-closed TCP connection does not count", tcp(nl.TCP_CONNTRACK_CLOSE_WAIT), false},
		{"a TCP connection waiting for the last ack does not count", tcp(nl.TCP_CONNTRACK_LAST_ACK), false},
		{"a TCP connection in TIME_WAIT does not count", tcp(nl.TCP_CONNTRACK_TIME_WAIT), false},
		{"a reset TCP connection does not count", tcp(nl.TCP_CONNTRACK_CLOSE), false},
		{"a TCP entry without state counts rather than hides", &netlink.ConntrackFlow{Forward: netlink.IPTuple{Protocol: unix.IPPROTO_TCP}}, true},
		{"a UDP flow counts while it exists", &netlink.ConntrackFlow{Forward: netlink.IPTuple{Protocol: unix.IPPROTO_UDP}}, true},
		{"an ICMP flow counts while it exists", &netlink.ConntrackFlow{Forward: netlink.IPTuple{Protocol: unix.IPPROTO_ICMP}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := live(tc.flow); got != tc.want {
				t.Errorf("live = %v, want %v", got, tc.want)
			}
		})
	}
}

// Short connections stop counting when they close; a connection held open
// keeps counting; IPv6 entries are in the same dump.
func TestCountsForgetClosedConnections(t *testing.T) {
	testkit.NeedRoot(t)
	l := newLab(t)
	l.masquerade(t)
	p := twoUplinks(1, 0) // every new connection through isp1
	tb := NewTable(l.routerNS, nil)
	mustApply(t, tb, p)

	held := l.dial(t)
	if who, err := held.ask(); err != nil || who != "peer1" {
		t.Fatalf("held connection: got %q, %v; want peer1", who, err)
	}
	for i := range 50 {
		f := l.dial(t)
		if _, err := f.ask(); err != nil {
			t.Fatalf("short connection %d: %v", i, err)
		}
		f.c.Close()
	}
	// One UDP flow over IPv6 with isp2's mark, made through netlink: counted
	// with the IPv4 ones in the one dump.
	h, err := netlink.NewHandleAt(l.routerNS, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	v6 := &netlink.ConntrackFlow{FamilyType: unix.AF_INET6, TimeOut: 300, Mark: 0x200}
	v6.Forward = netlink.IPTuple{SrcIP: net.ParseIP("2001:db8::2"), DstIP: net.ParseIP("2001:db8:1::53"), Protocol: unix.IPPROTO_UDP, SrcPort: 40000, DstPort: 53}
	v6.Reverse = netlink.IPTuple{SrcIP: v6.Forward.DstIP, DstIP: v6.Forward.SrcIP, Protocol: unix.IPPROTO_UDP, SrcPort: 53, DstPort: 40000}
	if err := h.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET6, v6); err != nil {
		t.Fatalf("create IPv6 conntrack entry: %v", err)
	}

	// The closes finish on the wire within milliseconds; poll, bounded.
	var c map[uint32]int
	testkit.WaitUntil(t, 5*time.Second, "the closed connections to leave the count", func() bool {
		if c, err = tb.Counts(); err != nil {
			t.Fatalf("Counts: %v", err)
		}
		return c[0x100] == 1
	})
	if c[0x100] != 1 || c[0x200] != 1 {
		t.Errorf("Counts = %v, want 1 on 0x100 (the held connection; 50 closed ones not) and 1 on 0x200 (IPv6 UDP)", c)
	}
	all, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 50 {
		t.Errorf("conntrack holds %d IPv4 entries; the closed connections should still be there (TIME_WAIT) for this test to mean anything", len(all))
	}
	if who, err := held.ask(); err != nil || who != "peer1" {
		t.Errorf("held connection after: got %q, %v; want peer1", who, err)
	}
}

// The replies that arrive on an uplink for connections through it are counted per uplink: the
// engine's passive evidence that an uplink works while its probes go unanswered.
func TestReceivedCountsRepliesPerUplink(t *testing.T) {
	testkit.NeedRoot(t)
	l := newLab(t)
	l.masquerade(t)
	tb := NewTable(l.routerNS, nil)
	mustApply(t, tb, twoUplinks(1, 0)) // every new connection through isp1
	before, err := tb.Received()
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 || before[0x100] != 0 || before[0x200] != 0 {
		t.Fatalf("a new table counts %v, want 0 for both uplinks", before)
	}
	c := l.dial(t)
	for range 5 {
		if who, err := c.ask(); err != nil || who != "peer1" {
			t.Fatalf("got %q, %v; want peer1", who, err)
		}
	}
	after, err := tb.Received()
	if err != nil {
		t.Fatal(err)
	}
	if after[0x100] < 5 || after[0x200] != 0 {
		t.Errorf("after 5 answers through isp1: %v, want ≥ 5 for isp1 and 0 for isp2", after)
	}
}
