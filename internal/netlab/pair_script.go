package netlab

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/uplinkd/uplinkd/packaging/examples"
)

// The pair's scripts and daemon configs, generated as text without touching the kernel. The
// keepalived, conntrackd, notify and nftables texts are packaging/examples' files with only
// paths and per-box values substituted (one source: the lab tests the examples).

// Roles of a pair's namespaces: the two gateways; lan, isp1, isp2 and inet as in the single lab
// (in a pair the LAN, isp1 and isp2 namespaces also hold the segment's switch, a bridge "br0").
const (
	RoleGWA = "gwa"
	RoleGWB = "gwb"
)

var pairRoles = []string{RoleLAN, RoleGWA, RoleGWB, RoleISP1, RoleISP2, RoleInet}

// Box is one gateway of a pair.
type Box int

// The pair's boxes.
const (
	BoxA Box = iota
	BoxB
)

// Boxes lists both boxes.
var Boxes = [2]Box{BoxA, BoxB}

func (b Box) String() string {
	if b == BoxA {
		return "gw-a"
	}
	return "gw-b"
}

// Role is the box's namespace role.
func (b Box) Role() string {
	if b == BoxA {
		return RoleGWA
	}
	return RoleGWB
}

// Other is the peer.
func (b Box) Other() Box { return 1 - b }

// The pair's addressing plan (see packaging/examples/keepalived.conf). The virtual addresses are
// the single lab's gateway addresses: the LAN gateway GWLAN4 and the SNAT addresses GWWANnSNAT4.
var (
	PairVIPLAN = GWLAN4                                  // 192.0.2.1: the LAN's gateway
	PairVIPWAN = [2]netip.Addr{GWWAN1SNAT4, GWWAN2SNAT4} // per ISP: routed to the pair, SNAT source

	// Each box's own addresses: [box] on the LAN, [isp][box] on the ISP segments.
	PairLAN4    = [2]netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")}
	PairWAN4    = [2][2]netip.Addr{{GWWAN1Addr4, netip.MustParseAddr("198.51.100.3")}, {GWWAN2Addr4, netip.MustParseAddr("198.51.100.67")}}
	PairWAN6    = [2][2]netip.Addr{{GWWAN1Addr6, netip.MustParseAddr("2001:db8:11::3")}, {GWWAN2Addr6, netip.MustParseAddr("2001:db8:12::3")}}
	SyncPrefix4 = netip.MustParsePrefix("192.0.2.136/30") // the sync link: unused by the single lab
	PairSync4   = [2]netip.Addr{netip.MustParseAddr(examples.SyncA), netip.MustParseAddr(examples.SyncB)}
)

// Interface names on a box (lan0, wan1, wan2 as in the single lab) and on the switches.
const (
	IfSync   = "sync" // the box's end of the sync link
	ifBridge = "br0"  // the switch in lan, isp1, isp2
)

// ifPort is the switch port of box b ("ga", "gb").
func ifPort(b Box) string { return [2]string{"ga", "gb"}[b] }

// pairMAC is a fixed, locally administered MAC per box and interface, so faults can name a box.
func pairMAC(b Box, dev string) string {
	n := map[string]int{IfLAN: 0, IfWAN1: 1, IfWAN2: 2, IfSync: 3}[dev]
	return fmt.Sprintf("02:00:00:00:%02x:%02x", 0xa+int(b), n)
}

// Pair NAT variants.
const (
	// PairNATForwarded: only traffic forwarded from the LAN takes the VIP (the example ruleset).
	PairNATForwarded = "forwarded"
	// PairNATAll: everything leaving wanN takes the VIP, the box's own probes included; the
	// backup's probes then leave with an address it does not hold (the danger to reproduce).
	PairNATAll = "all"
)

// pairLinkScript creates a box's veths: into each switch namespace and, from gw-a, the sync link.
func pairLinkScript(b Box, ns func(string) string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "link add %s address %s type veth peer name %s netns %s\n", IfLAN, pairMAC(b, IfLAN), ifPort(b), ns(RoleLAN))
	for _, u := range Uplinks {
		fmt.Fprintf(&s, "link add %s address %s type veth peer name %s netns %s\n", u.GWIf, pairMAC(b, u.GWIf), ifPort(b), ns(u.Role))
	}
	if b == BoxA {
		fmt.Fprintf(&s, "link add %s address %s type veth peer name %s address %s netns %s\n",
			IfSync, pairMAC(BoxA, IfSync), IfSync, pairMAC(BoxB, IfSync), ns(RoleGWB))
	}
	return s.String()
}

// pairSwitchScript creates the bridge of a switch namespace (before the boxes' links).
func pairSwitchScript() string {
	return fmt.Sprintf("link add %s type bridge mcast_snooping 0\nlink set %s up\n", ifBridge, ifBridge)
}

// pairPortsScript enslaves both boxes' ports to the switch (after the boxes' links exist).
func pairPortsScript() string {
	var s strings.Builder
	for _, b := range Boxes {
		fmt.Fprintf(&s, "link set %s master %s\nlink set %s up\n", ifPort(b), ifBridge, ifPort(b))
	}
	return s.String()
}

// pairAddrScript configures a pair namespace's addresses and routes (inet: as the single lab).
func pairAddrScript(role string) string {
	var s strings.Builder
	addr := func(a netip.Addr, p netip.Prefix, dev string) {
		fmt.Fprintf(&s, "addr add %s/%d dev %s\n", a, p.Bits(), dev)
	}
	up := func(dev string) { fmt.Fprintf(&s, "link set %s up\n", dev) }
	route := func(dst string, via netip.Addr, dev string) {
		fmt.Fprintf(&s, "route add %s via %s dev %s\n", dst, via, dev)
	}
	switch role {
	case RoleInet:
		return addrScript(RoleInet, NATMasquerade, false)
	case RoleLAN:
		up("lo")
		addr(Client4, LANPrefix4, ifBridge)
		route("default", PairVIPLAN, ifBridge)
	case RoleISP1, RoleISP2:
		up("lo")
		u := Uplinks[0]
		if role == RoleISP2 {
			u = Uplinks[1]
		}
		addr(u.ISP4, u.Prefix4, ifBridge)
		addr(u.ISP6, u.Prefix6, ifBridge)
		addr(u.CoreISP4, u.Core4, ifISPToInet)
		addr(u.CoreISP6, u.Core6, ifISPToInet)
		up(ifISPToInet)
		route("default", u.CoreInet4, ifISPToInet)
		route("default", u.CoreInet6, ifISPToInet)
	case RoleGWA, RoleGWB:
		up("lo")
		b := BoxA
		if role == RoleGWB {
			b = BoxB
		}
		addr(PairLAN4[b], LANPrefix4, IfLAN)
		up(IfLAN)
		for i, u := range Uplinks {
			addr(PairWAN4[i][b], u.Prefix4, u.GWIf)
			addr(PairWAN6[i][b], u.Prefix6, u.GWIf)
			up(u.GWIf)
		}
		addr(PairSync4[b], SyncPrefix4, IfSync)
		up(IfSync)
		// What a DHCP client would leave behind: the main table points at isp1.
		route("default", Uplinks[0].ISP4, Uplinks[0].GWIf)
		route("default", Uplinks[0].ISP6, Uplinks[0].GWIf)
	}
	return s.String()
}

// pairISPNft is an ISP's lab table in a pair: the single lab's counters, BCP 38 and "fault"
// chain, on the switch (br0) instead of a wire to one gateway.
func pairISPNft(u Uplink) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", nftTable)
	for _, c := range []string{counterUp, counterUpICMP, counterDown, counterSpoofed} {
		fmt.Fprintf(&b, "\tcounter %s { }\n", c)
	}
	b.WriteString("\tchain fault {\n\t}\n")
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tiifname %q counter name %q\n", ifBridge, counterUp)
	fmt.Fprintf(&b, "\t\tiifname %q icmp type echo-request counter name %q\n", ifBridge, counterUpICMP)
	fmt.Fprintf(&b, "\t\toifname %q counter name %q\n", ifBridge, counterDown)
	fmt.Fprintf(&b, "\t\tiifname %q meta nfproto ipv4 ip saddr != %s counter name %q drop\n", ifBridge, u.Prefix4, counterSpoofed)
	fmt.Fprintf(&b, "\t\tiifname %q meta nfproto ipv6 ip6 saddr != %s counter name %q drop\n", ifBridge, u.Prefix6, counterSpoofed)
	b.WriteString("\t\tjump fault\n\t}\n}\n")
	return b.String()
}

// boxPaths are one box's files in the pair's directory.
type boxPaths struct {
	dir                                        string
	keepalivedConf, notify, notifyLog, track   string
	kaPid, vrrpPid, checkersPid                string
	conntrackdConf, ctdLock, ctdSocket, ctdLog string
}

func newBoxPaths(dir string) boxPaths {
	j := func(n string) string { return dir + "/" + n }
	return boxPaths{
		dir: dir, keepalivedConf: j("keepalived.conf"), notify: j("notify.sh"), notifyLog: j("notify.log"),
		track: j("vrrp-priority"), kaPid: j("keepalived.pid"), vrrpPid: j("vrrp.pid"), checkersPid: j("checkers.pid"),
		conntrackdConf: j("conntrackd.conf"), ctdLock: j("conntrackd.lock"), ctdSocket: j("conntrackd.ctl"), ctdLog: j("conntrackd.log"),
	}
}

// must replaces old (which must occur) by new in s: a changed example fails loudly, not silently.
func must(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic(fmt.Sprintf("netlab: the example text no longer contains %q", old))
	}
	return strings.ReplaceAll(s, old, new)
}

// pairKeepalivedConf is the example keepalived.conf with the box's paths; without conntrackd
// the notify scripts are left out.
func pairKeepalivedConf(p boxPaths, conntrackd bool) string {
	s := must(examples.Keepalived, examples.TrackFile, p.track)
	s = must(s, examples.NotifyPath, p.notify)
	if !conntrackd {
		var keep []string
		for _, line := range strings.Split(s, "\n") {
			if !strings.Contains(line, "notify_") {
				keep = append(keep, line)
			}
		}
		s = strings.Join(keep, "\n")
	}
	return s
}

// pairNotify is the example notify script with the box's paths, logging to a file, and never
// (re)starting a conntrackd of its own: the lab runs conntrackd and must know every process.
func pairNotify(p boxPaths) string {
	s := must(examples.Notify, examples.ConntrackdConfig, p.conntrackdConf)
	s = must(s, "CONNTRACKD_LOCK="+examples.ConntrackdLock, "CONNTRACKD_LOCK="+p.ctdLock)
	s = must(s, `RESTART_CONNTRACKD="systemctl restart conntrackd"`, `RESTART_CONNTRACKD=""`)
	s = must(s, `LOG="logger -t uplinkd-ha"`, `LOG="echo"`)
	return must(s, "#!/bin/sh\n", fmt.Sprintf("#!/bin/sh\nexec >>%s 2>&1\necho \"$(date +%%T.%%N) $*\"\n", p.notifyLog))
}

// pairConntrackdConf is the example conntrackd.conf with the box's paths (gw-b swaps the sync
// addresses) and a log file instead of syslog.
func pairConntrackdConf(p boxPaths, b Box) string {
	s := must(examples.Conntrackd, examples.ConntrackdLock, p.ctdLock)
	s = must(s, examples.ConntrackdSocket, p.ctdSocket)
	s = must(s, "Syslog on", "Syslog off\n    LogFile "+p.ctdLog)
	if b == BoxB {
		s = must(s, "IPv4_address "+examples.SyncA+"\n", "IPv4_address @SELF@\n")
		s = must(s, "IPv4_Destination_Address "+examples.SyncB+"\n", "IPv4_Destination_Address "+examples.SyncA+"\n")
		s = must(s, "@SELF@", examples.SyncB)
	}
	return s
}

// pairNft is the example ruleset, or with PairNATAll its SNAT rules widened to everything
// leaving wanN (the box's own packets included).
func pairNft(nat string) string {
	s := examples.Nftables
	if nat == PairNATAll {
		for i, u := range Uplinks {
			old := fmt.Sprintf("iifname \"lan0\" oifname %q ip saddr %s snat ip to %s", u.GWIf, LANPrefix4, PairVIPWAN[i])
			s = must(s, old, fmt.Sprintf("oifname %q snat ip to %s", u.GWIf, PairVIPWAN[i]))
		}
	}
	return s
}
