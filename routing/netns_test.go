package routing

import (
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Helpers that build network namespaces for the root-only tests. Everything happens inside
// namespaces created here; nothing touches the root namespace (links are created directly in
// their namespace with `ip -n`).

// newNS is a namespace for this test (testkit.Netns).
func newNS(tb testing.TB, tag string) string { return testkit.Netns(tb, tag) }

// run runs a command and fails the test with its output when it fails.
func run(tb testing.TB, args ...string) string { return testkit.Run(tb, args...) }

// ipn runs `ip -n ns args...`.
func ipn(tb testing.TB, ns string, args ...string) string {
	tb.Helper()
	return run(tb, append([]string{"ip", "-n", ns}, args...)...)
}

// veth joins ns a (interface an) and ns b (interface bn) and brings both ends up.
func veth(tb testing.TB, a, an, b, bn string) {
	tb.Helper()
	ipn(tb, a, "link", "add", an, "type", "veth", "peer", "name", bn, "netns", b)
	ipn(tb, a, "link", "set", an, "up")
	ipn(tb, b, "link", "set", bn, "up")
}

// nsHandles opens a namespace and a netlink handle in it, closed when the test ends.
func nsHandles(tb testing.TB, ns string) (netns.NsHandle, *netlink.Handle) {
	tb.Helper()
	nh, err := netns.GetFromName(ns)
	if err != nil {
		tb.Fatalf("open netns %s: %v", ns, err)
	}
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		nh.Close()
		tb.Fatalf("netlink handle in %s: %v", ns, err)
	}
	tb.Cleanup(func() { h.Close(); nh.Close() })
	return nh, h
}

// gateway is a lab: ns gw with uplinks wan1 → isp1 (192.0.2.0/24, 2001:db8:1::/64) and
// wan2 → isp2 (198.51.100.0/24, 2001:db8:2::/64), and a DHCP-like default via isp1 in main.
type gateway struct {
	gw, isp1, isp2 string
	ns             netns.NsHandle
	h              *netlink.Handle
}

func newGateway(tb testing.TB) gateway {
	tb.Helper()
	g := gateway{gw: newNS(tb, "g"), isp1: newNS(tb, "a"), isp2: newNS(tb, "b")}
	veth(tb, g.gw, "wan1", g.isp1, "up1")
	veth(tb, g.gw, "wan2", g.isp2, "up2")
	ipn(tb, g.gw, "addr", "add", "192.0.2.10/24", "dev", "wan1")
	ipn(tb, g.gw, "addr", "add", "2001:db8:1::10/64", "dev", "wan1", "nodad")
	ipn(tb, g.gw, "addr", "add", "198.51.100.10/24", "dev", "wan2")
	ipn(tb, g.gw, "addr", "add", "2001:db8:2::10/64", "dev", "wan2", "nodad")
	ipn(tb, g.isp1, "addr", "add", "192.0.2.1/24", "dev", "up1")
	ipn(tb, g.isp1, "addr", "add", "2001:db8:1::1/64", "dev", "up1", "nodad")
	ipn(tb, g.isp2, "addr", "add", "198.51.100.1/24", "dev", "up2")
	ipn(tb, g.isp2, "addr", "add", "2001:db8:2::1/64", "dev", "up2", "nodad")
	ipn(tb, g.gw, "route", "add", "default", "via", "192.0.2.1", "dev", "wan1", "proto", "dhcp")
	ipn(tb, g.gw, "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "wan1", "proto", "ra")
	g.ns, g.h = nsHandles(tb, g.gw)
	return g
}

// foreignEntries adds rules and routes that are not ours, some inside our band and tables.
func (g gateway) foreignEntries(tb testing.TB) {
	tb.Helper()
	ipn(tb, g.gw, "rule", "add", "pref", "500", "from", "203.0.113.200", "lookup", "100")
	ipn(tb, g.gw, "rule", "add", "pref", "1015", "to", "203.0.113.201", "lookup", "100")
	ipn(tb, g.gw, "-6", "rule", "add", "pref", "1040", "to", "2001:db8:ff::/64", "lookup", "100")
	ipn(tb, g.gw, "route", "add", "203.0.113.0/25", "via", "198.51.100.1", "table", "100")
	ipn(tb, g.gw, "route", "add", "203.0.113.128/25", "via", "198.51.100.1", "table", "201", "proto", "static")
	ipn(tb, g.gw, "-6", "route", "add", "2001:db8:ff::/64", "via", "2001:db8:2::1", "table", "100")
}

// snapshot is the namespace's whole rule set and routing tables as `ip` prints them (routes
// one a line, so a multipath route's nexthops stay on its line).
func (g gateway) snapshot(tb testing.TB) string {
	tb.Helper()
	return ipn(tb, g.gw, "-4", "rule") + ipn(tb, g.gw, "-6", "rule") +
		ipn(tb, g.gw, "-o", "-4", "route", "show", "table", "all") + ipn(tb, g.gw, "-o", "-6", "route", "show", "table", "all")
}

// withoutOurs drops the lines of entries carrying our protocol.
func withoutOurs(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, " proto 85") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// routeGet asks the kernel in ns which way dst goes, e.g. "dev wan2", with optional extra
// `ip route get` arguments (mark 0x100, from 192.0.2.10).
func routeGet(tb testing.TB, ns, dst string, extra ...string) string {
	tb.Helper()
	return ipn(tb, ns, append([]string{"route", "get", dst}, extra...)...)
}

// labUplinks are the gateway lab's uplinks as the daemon would describe them.
func labUplinks() []Uplink { return twoUplinks() }
