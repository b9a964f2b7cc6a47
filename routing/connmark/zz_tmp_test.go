package connmark

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestTmpPrint(t *testing.T) {
	p := Plan{Uplinks: []Uplink{
		{Name: "isp1", Interface: "wan1", Mark: 0x100, Weight: 3, Live: true, Eligible: true},
		{Name: "isp2", Interface: "wan2", Mark: 0x200, Weight: 1, Live: true, Eligible: true},
	}, Services: []Service{{Name: "voip", Src: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/25"), netip.MustParsePrefix("192.0.2.128/26"), netip.MustParsePrefix("2001:db8::/48")}, Proto: "udp", DPorts: []PortRange{{5060, 5061}, {10000, 20000}}, Mark: 0x200},
	{Name: "metered", Dst: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Block: true}}}
	fmt.Print(Render(p))
}
