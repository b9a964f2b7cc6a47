package connmark

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestRenderGolden(t *testing.T) {
	pfx := netip.MustParsePrefix
	drained := twoUplinks(3, 1)
	drained.Uplinks[0].Eligible = false
	down := twoUplinks(3, 1)
	down.Uplinks[0].Live, down.Uplinks[0].Eligible = false, false
	affinity := twoUplinks(2, 2)
	affinity.Affinity = true
	affinity.LANInterfaces = nil
	none := twoUplinks(1, 1)
	none.Uplinks[0].Eligible, none.Uplinks[1].Eligible = false, false
	services := twoUplinks(3, 1)
	services.Services = []Service{
		{Name: "voip", Src: []netip.Prefix{pfx("192.0.2.0/25"), pfx("192.0.2.128/26"), pfx("2001:db8:1::/64")}, Proto: "udp",
			DPorts: []PortRange{{10000, 20000}, {5060, 5061}}, Mark: 0x200},
		{Name: "metered", Dst: []netip.Prefix{pfx("203.0.113.0/24")}, Block: true},
		{Name: "no-uplink-left-fall-back", Dst: []netip.Prefix{pfx("198.51.100.7/32")}},
	}
	v6dead := twoUplinks(3, 1) // isp1's IPv6 is dead: new IPv6 connections go to isp2 only
	v6dead.PerFamily = true
	v6dead.Uplinks[1].Eligible6 = true
	addrs := twoUplinks(1, 1)
	addrs.Uplinks[0].Addrs = []netip.Addr{netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8:11::2")}
	addrs.Uplinks[1].Addrs = []netip.Addr{netip.MustParseAddr("198.51.100.66")}
	prefixes := twoUplinks(3, 1) // isp1's IPv6 died: its prefix is translated when it leaves by isp2
	prefixes.PerFamily = true
	prefixes.Uplinks[0].Prefixes, prefixes.Uplinks[0].Dead6 = []netip.Prefix{pfx("2001:db8:a1::/64")}, true
	prefixes.Uplinks[1].Prefixes, prefixes.Uplinks[1].Usable6, prefixes.Uplinks[1].Eligible6 = []netip.Prefix{pfx("2001:db8:a2::/64")}, true, true
	prefixes.Translations = []Translation{{Interface: "wan2", From: pfx("2001:db8:a1::/64"), To: pfx("2001:db8:a2::/64")}}
	for _, tc := range []struct {
		name, file string
		plan       Plan
	}{
		{"the gateway's own connections follow their uplink source address", "source-addrs.nft", addrs},
		{"two live eligible uplinks weighted 3 to 1", "weights-3-1.nft", twoUplinks(3, 1)},
		{"a drained uplink keeps its connections but takes no new ones", "drained.nft", drained},
		{"an uplink that is down loses its connections", "down.nft", down},
		{"source affinity hashes the source address and reduces weights", "affinity.nft", affinity},
		{"no eligible uplink leaves new connections unmarked", "none-eligible.nft", none},
		{"services match prefixes ports and protocols, block or fall through", "services.nft", services},
		{"dead IPv6 on an uplink moves only new IPv6 connections", "ipv6-dead.nft", v6dead},
		{"LAN prefixes stay on a usable uplink; a dead one's is translated", "prefixes-nptv6.nft", prefixes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testkit.Golden(t, filepath.Join("testdata", tc.file), []byte(Render(tc.plan)))
		})
	}
}

func TestRenderIsCanonical(t *testing.T) {
	p := twoUplinks(3, 1)
	q := twoUplinks(3, 1)
	q.Uplinks[0], q.Uplinks[1] = q.Uplinks[1], q.Uplinks[0]
	if Render(p) != Render(q) {
		t.Errorf("the order of uplinks in the plan changed the table")
	}
}

func TestRenderOfAnInvalidPlanNamesTheError(t *testing.T) {
	p := twoUplinks(1, 1)
	p.Uplinks[1].Mark = 0x100
	if got := Render(p); !strings.HasPrefix(got, "# connmark: uplink isp2: mark 0x100 already used by uplink isp1") {
		t.Errorf("Render = %q", got)
	}
}

func TestValidate(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name string
		edit func(p *Plan)
		want string
	}{
		{"a good plan passes", func(p *Plan) {}, ""},
		{"a mark outside the mask is refused", func(p *Plan) { p.Uplinks[0].Mark = 0x101 },
			"connmark: uplink isp1: mark 0x101 is not a nonzero value within mask 0xff00"},
		{"a zero mark is refused", func(p *Plan) { p.Uplinks[0].Mark = 0 },
			"connmark: uplink isp1: mark 0x0 is not a nonzero value within mask 0xff00"},
		{"two uplinks on one interface are refused", func(p *Plan) { p.Uplinks[1].Interface = "wan1" },
			"connmark: uplink isp2: interface wan1 already used by uplink isp1"},
		{"an interface name too long is refused", func(p *Plan) { p.Uplinks[0].Interface = "a-very-long-ifname" },
			`connmark: uplink isp1: bad interface name "a-very-long-ifname"`},
		{"a quote in a name is refused", func(p *Plan) { p.Uplinks[0].Name = `isp"1` },
			`connmark: uplink "isp\"1": name must be 1-64 of A-Z a-z 0-9 _ . : -`},
		{"a negative weight is refused", func(p *Plan) { p.Uplinks[0].Weight = -1 },
			"connmark: uplink isp1: weight -1 is outside 0..1000"},
		{"eligible but not live is refused", func(p *Plan) { p.Uplinks[0].Live = false },
			"connmark: uplink isp1: eligible but not live"},
		{"an uplink's interface as a LAN is refused", func(p *Plan) { p.LANInterfaces = []string{"wan2"} },
			"connmark: LAN interface wan2 is uplink isp2's interface"},
		{"a service to an unknown mark is refused", func(p *Plan) { p.Services = []Service{{Name: "s", Mark: 0x900}} },
			"connmark: service s: mark 0x900 belongs to no uplink"},
		{"an unknown protocol is refused", func(p *Plan) { p.Services = []Service{{Name: "s", Proto: "sctp"}} },
			`connmark: service s: protocol "sctp" is not tcp, udp or icmp`},
		{"ports with icmp are refused", func(p *Plan) { p.Services = []Service{{Name: "s", Proto: "icmp", DPorts: []PortRange{{1, 1}}}} },
			"connmark: service s: ports need protocol tcp or udp, not icmp"},
		{"a reversed port range is refused", func(p *Plan) { p.Services = []Service{{Name: "s", DPorts: []PortRange{{9, 1}}}} },
			"connmark: service s: bad port range 9-1"},
		{"an IPv4 source with an IPv6 destination is refused", func(p *Plan) {
			p.Services = []Service{{Name: "s", Src: []netip.Prefix{pfx("192.0.2.0/24")}, Dst: []netip.Prefix{pfx("2001:db8::/32")}}}
		}, "connmark: service s: source and destination prefixes share no address family"},
		{"two services with one name are refused", func(p *Plan) { p.Services = []Service{{Name: "s"}, {Name: "s"}} },
			"connmark: service s: duplicate name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := twoUplinks(3, 1)
			tc.edit(&p)
			err := p.Validate()
			if got := errString(err); got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestRangesMerge(t *testing.T) {
	pfx := netip.MustParsePrefix
	got := prefixRanges([]netip.Prefix{pfx("192.0.2.128/26"), pfx("192.0.2.0/25"), pfx("192.0.2.8/29"), pfx("198.51.100.0/24")})
	var texts []string
	for _, r := range got {
		texts = append(texts, rangeText(r))
	}
	if s := strings.Join(texts, ", "); s != "192.0.2.0-192.0.2.191, 198.51.100.0/24" {
		t.Errorf("overlapping and adjacent prefixes merged into %s", s)
	}
	ports := portRanges([]PortRange{{443, 443}, {80, 80}, {81, 90}, {85, 100}, {65535, 65535}})
	if want := []PortRange{{80, 100}, {443, 443}, {65535, 65535}}; !equalPorts(ports, want) {
		t.Errorf("port ranges merged into %v, want %v", ports, want)
	}
}

func equalPorts(a, b []PortRange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
