package netlab

import (
	"fmt"
	"net/netip"

	up "github.com/uplinkd/uplinkd/uplink"
)

// The lab's addressing plan. Documentation ranges only (RFC 5737, RFC 3849), so nothing the lab
// sends could ever mean a real host. Daemon configs and tests are written against these names.
var (
	// LAN 192.0.2.0/26 and 2001:db8:1::/64: the gateway's lan0 and the client behind it.
	LANPrefix4 = netip.MustParsePrefix("192.0.2.0/26")
	LANPrefix6 = netip.MustParsePrefix("2001:db8:1::/64")
	GWLAN4     = netip.MustParseAddr("192.0.2.1")
	GWLAN6     = netip.MustParseAddr("2001:db8:1::1")
	Client4    = netip.MustParseAddr("192.0.2.10")
	Client6    = netip.MustParseAddr("2001:db8:1::10")

	// WAN1: isp1 is the gateway's next hop on wan1.
	WAN1Prefix4 = netip.MustParsePrefix("198.51.100.0/26")
	WAN1Prefix6 = netip.MustParsePrefix("2001:db8:11::/64")
	ISP1Addr4   = netip.MustParseAddr("198.51.100.1")
	ISP1Addr6   = netip.MustParseAddr("2001:db8:11::1")
	GWWAN1Addr4 = netip.MustParseAddr("198.51.100.2")
	GWWAN1Addr6 = netip.MustParseAddr("2001:db8:11::2")
	GWWAN1SNAT4 = netip.MustParseAddr("198.51.100.10") // secondary address in NAT mode "snat"

	// WAN2: isp2 is the gateway's next hop on wan2.
	WAN2Prefix4 = netip.MustParsePrefix("198.51.100.64/26")
	WAN2Prefix6 = netip.MustParsePrefix("2001:db8:12::/64")
	ISP2Addr4   = netip.MustParseAddr("198.51.100.65")
	ISP2Addr6   = netip.MustParseAddr("2001:db8:12::1")
	GWWAN2Addr4 = netip.MustParseAddr("198.51.100.66")
	GWWAN2Addr6 = netip.MustParseAddr("2001:db8:12::2")
	GWWAN2SNAT4 = netip.MustParseAddr("198.51.100.74") // secondary address in NAT mode "snat"

	// Cores between each ISP and the "internet" namespace.
	Core1Prefix4 = netip.MustParsePrefix("192.0.2.128/30")
	Core1Prefix6 = netip.MustParsePrefix("2001:db8:f1::/64")
	Core2Prefix4 = netip.MustParsePrefix("192.0.2.132/30")
	Core2Prefix6 = netip.MustParsePrefix("2001:db8:f2::/64")

	// The internet namespace owns the probe targets and the traffic server on its loopback.
	Targets4 = []netip.Addr{
		netip.MustParseAddr("203.0.113.1"),
		netip.MustParseAddr("203.0.113.2"),
		netip.MustParseAddr("203.0.113.3"),
	}
	Targets6 = []netip.Addr{
		netip.MustParseAddr("2001:db8:ff::1"),
		netip.MustParseAddr("2001:db8:ff::2"),
		netip.MustParseAddr("2001:db8:ff::3"),
	}
	// In a lab with IPv6 prefixes (Options.IPv6Prefixes), each ISP delegates a LAN /64 of its
	// own instead of the LAN's 2001:db8:1::/64 being NATed: the gateway holds ::1 in each and
	// the client configures itself from the RAs.
	LANPrefixISP1 = netip.MustParsePrefix("2001:db8:a1::/64")
	LANPrefixISP2 = netip.MustParsePrefix("2001:db8:a2::/64")

	Server4 = netip.MustParseAddr("203.0.113.100")
	Server6 = netip.MustParseAddr("2001:db8:ff::100")
)

// Ports of the traffic servers in the internet namespace (see StartServers).
const (
	EchoPort = 7  // UDP echo: replies with the datagram followed by the source address it saw
	TCPPort  = 80 // TCP: writes the source address it saw ("198.51.100.2:40123\n") and closes
)

// Interface names. They are the same in every lab: namespaces keep them apart.
const (
	IfLAN  = "lan0" // gateway side of the LAN
	IfWAN1 = "wan1" // gateway side of uplink 1
	IfWAN2 = "wan2" // gateway side of uplink 2
)

// Roles name the namespaces of a lab.
const (
	RoleLAN  = "lan"
	RoleGW   = "gw"
	RoleISP1 = "isp1"
	RoleISP2 = "isp2"
	RoleInet = "inet"
)

var roles = []string{RoleLAN, RoleGW, RoleISP1, RoleISP2, RoleInet}

// Uplink is one ISP of the lab as seen from both ends of its wire, so code can loop over ISPs.
type Uplink struct {
	N            int          // 1 or 2
	Role         string       // namespace role: "isp1", "isp2"
	GWIf         string       // gateway interface: "wan1", "wan2"
	Prefix4      netip.Prefix // the customer range BCP 38 lets through
	Prefix6      netip.Prefix
	ISP4, ISP6   netip.Addr // the ISP's address: the gateway's next hop
	GW4, GW6     netip.Addr // the gateway's primary address on this uplink
	SNAT4        netip.Addr // the gateway's static SNAT address (NAT mode "snat")
	Core4, Core6 netip.Prefix
	CoreISP4     netip.Addr // ISP end of the core link
	CoreISP6     netip.Addr
	CoreInet4    netip.Addr // internet end of the core link
	CoreInet6    netip.Addr
	LANPrefix6   netip.Prefix // the LAN /64 it delegates in a lab with IPv6 prefixes
	Mark         uint32       // the firewall mark the daemon's convention gives this uplink
	Table        int          // the routing table the daemon's convention gives this uplink
}

// Uplinks describes isp1 and isp2; Uplinks[0] is isp1.
var Uplinks = [2]Uplink{
	{
		N: 1, Role: RoleISP1, GWIf: IfWAN1, Prefix4: WAN1Prefix4, Prefix6: WAN1Prefix6,
		ISP4: ISP1Addr4, ISP6: ISP1Addr6, GW4: GWWAN1Addr4, GW6: GWWAN1Addr6, SNAT4: GWWAN1SNAT4,
		Core4: Core1Prefix4, Core6: Core1Prefix6, LANPrefix6: LANPrefixISP1,
		CoreISP4: netip.MustParseAddr("192.0.2.129"), CoreISP6: netip.MustParseAddr("2001:db8:f1::1"),
		CoreInet4: netip.MustParseAddr("192.0.2.130"), CoreInet6: netip.MustParseAddr("2001:db8:f1::2"),
		Mark: up.Uplink{ID: 1}.Mark(), Table: up.Uplink{ID: 1}.Table(up.DefaultConfig().Daemon),
	},
	{
		N: 2, Role: RoleISP2, GWIf: IfWAN2, Prefix4: WAN2Prefix4, Prefix6: WAN2Prefix6,
		ISP4: ISP2Addr4, ISP6: ISP2Addr6, GW4: GWWAN2Addr4, GW6: GWWAN2Addr6, SNAT4: GWWAN2SNAT4,
		Core4: Core2Prefix4, Core6: Core2Prefix6, LANPrefix6: LANPrefixISP2,
		CoreISP4: netip.MustParseAddr("192.0.2.133"), CoreISP6: netip.MustParseAddr("2001:db8:f2::1"),
		CoreInet4: netip.MustParseAddr("192.0.2.134"), CoreInet6: netip.MustParseAddr("2001:db8:f2::2"),
		Mark: up.Uplink{ID: 2}.Mark(), Table: up.Uplink{ID: 2}.Table(up.DefaultConfig().Daemon),
	},
}

// uplink returns isp's description, or an error naming the bad number.
func uplink(isp int) (Uplink, error) {
	if isp < 1 || isp > len(Uplinks) {
		return Uplink{}, fmt.Errorf("netlab: no isp%d: the lab has isp1 and isp2", isp)
	}
	return Uplinks[isp-1], nil
}
