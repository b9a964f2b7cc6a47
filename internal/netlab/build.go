package netlab

import (
	"fmt"
	"net/netip"
	"strings"
)

// The lab is built from plain iproute2 batch scripts and nft scripts, generated here without
// touching the kernel, so what the lab does is readable (and testable) as text.

// Interface names inside the ISP and internet namespaces.
const (
	ifISPToGW   = "gw"   // in ispN: the wire to the gateway (gateway side is wanN)
	ifISPToInet = "inet" // in ispN: the core wire to the internet
	ifLANClient = "eth0" // in lan: the client's wire to the gateway
)

// ifInetToISP is the internet namespace's end of ISP n's core wire.
func ifInetToISP(n int) string { return fmt.Sprintf("isp%d", n) }

// sysctls returns the settings each namespace needs before any interface exists (so that
// "default" applies to every interface created afterwards).
func sysctls(role string, prefixes bool) []string {
	s := []string{
		// Policy routing sends replies through other interfaces than requests came in on:
		// strict reverse-path filtering (which a new namespace may inherit) would drop them.
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
		// No duplicate address detection: addresses are usable at once, and nobody clashes.
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
	}
	switch role {
	case RoleGW:
		s = append(s, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	case RoleLAN:
		if prefixes { // a desktop: SLAAC from the RAs, with temporary addresses preferred
			s = append(s, "net.ipv6.conf.default.accept_ra=1", "net.ipv6.conf.default.autoconf=1",
				"net.ipv6.conf.default.use_tempaddr=2")
		}
	case RoleISP1, RoleISP2:
		s = append(s, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
			// CarrierLoss sets the ISP's end of the wire admin-down: keep its IPv6 addresses
			// (and so its routes) for Heal. The gateway keeps the kernel default, like a real one.
			"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1")
	}
	return s
}

// linkScript creates the veth pairs, run in the gateway's and the internet's namespace; each
// peer is created straight in its own namespace, so the root namespace never sees a link.
func linkScript(role string, ns func(string) string) string {
	var b strings.Builder
	switch role {
	case RoleGW:
		fmt.Fprintf(&b, "link add %s type veth peer name %s netns %s\n", IfLAN, ifLANClient, ns(RoleLAN))
		for _, u := range Uplinks {
			fmt.Fprintf(&b, "link add %s type veth peer name %s netns %s\n", u.GWIf, ifISPToGW, ns(u.Role))
		}
	case RoleInet:
		for _, u := range Uplinks {
			fmt.Fprintf(&b, "link add %s type veth peer name %s netns %s\n", ifInetToISP(u.N), ifISPToInet, ns(u.Role))
		}
	}
	return b.String()
}

// addrScript configures addresses, links and routes of one namespace.
func addrScript(role string, nat string, prefixes bool) string {
	var b strings.Builder
	addr := func(a netip.Addr, p netip.Prefix, dev string) {
		fmt.Fprintf(&b, "addr add %s/%d dev %s\n", a, p.Bits(), dev)
	}
	host := func(a netip.Addr, dev string) { fmt.Fprintf(&b, "addr add %s/%d dev %s\n", a, a.BitLen(), dev) }
	up := func(dev string) { fmt.Fprintf(&b, "link set %s up\n", dev) }
	route := func(dst string, via netip.Addr, dev string) {
		fmt.Fprintf(&b, "route add %s via %s dev %s\n", dst, via, dev)
	}
	up("lo")
	switch role {
	case RoleLAN:
		addr(Client4, LANPrefix4, ifLANClient)
		if !prefixes {
			addr(Client6, LANPrefix6, ifLANClient)
		}
		up(ifLANClient)
		route("default", GWLAN4, ifLANClient)
		if !prefixes {
			route("default", GWLAN6, ifLANClient)
		}
	case RoleGW:
		addr(GWLAN4, LANPrefix4, IfLAN)
		addr(GWLAN6, LANPrefix6, IfLAN)
		if prefixes { // what each ISP's DHCPv6-PD client would put on the LAN
			for _, u := range Uplinks {
				addr(u.LANPrefix6.Addr().Next(), u.LANPrefix6, IfLAN)
			}
		}
		up(IfLAN)
		for _, u := range Uplinks {
			addr(u.GW4, u.Prefix4, u.GWIf)
			addr(u.GW6, u.Prefix6, u.GWIf)
			if nat == NATSNAT {
				addr(u.SNAT4, u.Prefix4, u.GWIf) // a secondary: the primary stays the source of the gateway's own traffic
			}
			up(u.GWIf)
		}
		// What a DHCP client would leave behind: the main table points at isp1.
		route("default", Uplinks[0].ISP4, Uplinks[0].GWIf)
		route("default", Uplinks[0].ISP6, Uplinks[0].GWIf)
	case RoleISP1, RoleISP2:
		u := Uplinks[0]
		if role == RoleISP2 {
			u = Uplinks[1]
		}
		addr(u.ISP4, u.Prefix4, ifISPToGW)
		addr(u.ISP6, u.Prefix6, ifISPToGW)
		addr(u.CoreISP4, u.Core4, ifISPToInet)
		addr(u.CoreISP6, u.Core6, ifISPToInet)
		up(ifISPToGW)
		up(ifISPToInet)
		route("default", u.CoreInet4, ifISPToInet)
		route("default", u.CoreInet6, ifISPToInet)
		if prefixes {
			route(u.LANPrefix6.String(), u.GW6, ifISPToGW) // the delegation
		}
	case RoleInet:
		for _, a := range append(append(append([]netip.Addr{}, Targets4...), Targets6...), Server4, Server6) {
			host(a, "lo")
		}
		for _, u := range Uplinks {
			dev := ifInetToISP(u.N)
			addr(u.CoreInet4, u.Core4, dev)
			addr(u.CoreInet6, u.Core6, dev)
			up(dev)
			// The internet knows each customer range lives behind its ISP.
			route(u.Prefix4.String(), u.CoreISP4, dev)
			route(u.Prefix6.String(), u.CoreISP6, dev)
			if prefixes {
				route(u.LANPrefix6.String(), u.CoreISP6, dev)
			}
		}
	}
	return b.String()
}

// nftTable is the name of the lab's own nftables table in every namespace; the daemon's
// table ("uplinkd") lives beside it in the gateway and is never touched by the lab.
const nftTable = "lab"

// Counter names in each ISP namespace (see Counters).
const (
	counterUp      = "up"      // every packet forwarded from the gateway towards the internet
	counterUpICMP  = "up_icmp" // of those, ICMP/ICMPv6 echo requests (probes)
	counterDown    = "down"    // every packet forwarded from the internet to the gateway
	counterSpoofed = "spoofed" // dropped by BCP 38: from the gateway with a source not of this ISP
)

// nftScript is the namespace's lab table: NAT on the gateway, BCP 38, counters and an empty
// "fault" chain in each ISP, an empty "fault" chain on the internet's input for DropICMP.
func nftScript(role, nat string, prefixes bool) string {
	var b strings.Builder
	switch role {
	case RoleGW:
		fmt.Fprintf(&b, "table inet %s {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n", nftTable)
		for _, u := range Uplinks {
			// Only the LAN is translated: the gateway's own traffic keeps its source, so a probe
			// leaving the wrong uplink shows up as spoofed instead of being silently fixed up.
			if nat == NATSNAT {
				fmt.Fprintf(&b, "\t\toifname %q ip saddr %s snat ip to %s\n", u.GWIf, LANPrefix4, u.SNAT4)
			} else {
				fmt.Fprintf(&b, "\t\toifname %q ip saddr %s masquerade\n", u.GWIf, LANPrefix4)
			}
			if !prefixes { // NAT66; with prefixes the LAN's addresses are the ISPs' own
				fmt.Fprintf(&b, "\t\toifname %q ip6 saddr %s masquerade\n", u.GWIf, LANPrefix6)
			}
		}
		b.WriteString("\t}\n}\n")
	case RoleISP1, RoleISP2:
		u := Uplinks[0]
		if role == RoleISP2 {
			u = Uplinks[1]
		}
		fmt.Fprintf(&b, "table inet %s {\n", nftTable)
		for _, c := range []string{counterUp, counterUpICMP, counterDown, counterSpoofed} {
			fmt.Fprintf(&b, "\tcounter %s { }\n", c)
		}
		b.WriteString("\tchain fault {\n\t}\n")
		b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
		fmt.Fprintf(&b, "\t\tiifname %q counter name %q\n", ifISPToGW, counterUp)
		fmt.Fprintf(&b, "\t\tiifname %q icmp type echo-request counter name %q\n", ifISPToGW, counterUpICMP)
		fmt.Fprintf(&b, "\t\tiifname %q icmpv6 type echo-request counter name %q\n", ifISPToGW, counterUpICMP)
		fmt.Fprintf(&b, "\t\toifname %q counter name %q\n", ifISPToGW, counterDown)
		// BCP 38: a customer may only send from the range it was given.
		fmt.Fprintf(&b, "\t\tiifname %q meta nfproto ipv4 ip saddr != %s counter name %q drop\n", ifISPToGW, u.Prefix4, counterSpoofed)
		own6 := u.Prefix6.String()
		if prefixes {
			own6 = "{ " + own6 + ", " + u.LANPrefix6.String() + " }"
		}
		fmt.Fprintf(&b, "\t\tiifname %q meta nfproto ipv6 ip6 saddr != %s counter name %q drop\n", ifISPToGW, own6, counterSpoofed)
		b.WriteString("\t\tjump fault\n\t}\n}\n")
	case RoleInet:
		fmt.Fprintf(&b, "table inet %s {\n\tchain fault {\n\t}\n", nftTable)
		b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tjump fault\n\t}\n}\n")
	}
	return b.String()
}
