package netlab

import (
	"net/netip"
	"strings"
	"testing"
)

var documentation = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func isDocumentation(a netip.Addr) bool {
	for _, p := range documentation {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func TestScriptsUseDocumentationAddressesOnly(t *testing.T) {
	ns := func(r string) string { return "x-" + r }
	for _, nat := range []string{NATMasquerade, NATSNAT} {
		for _, r := range roles {
			for _, script := range []string{linkScript(r, ns), addrScript(r, nat, false), nftScript(r, nat, false)} {
				for _, tok := range strings.Fields(script) {
					tok = strings.Trim(tok, `";`)
					a, err := netip.ParseAddr(tok)
					if p, perr := netip.ParsePrefix(tok); perr == nil {
						a, err = p.Addr(), nil
					}
					if err == nil && !isDocumentation(a) {
						t.Errorf("%s script (nat %s) uses %s, outside the documentation ranges", r, nat, tok)
					}
				}
			}
		}
	}
}

func TestEveryLabAddressIsADocumentationAddress(t *testing.T) {
	all := append(append([]netip.Addr{GWLAN4, GWLAN6, Client4, Client6, Server4, Server6}, Targets4...), Targets6...)
	for _, u := range Uplinks {
		all = append(all, u.ISP4, u.ISP6, u.GW4, u.GW6, u.SNAT4, u.CoreISP4, u.CoreISP6, u.CoreInet4, u.CoreInet6)
		if !u.Prefix4.Contains(u.GW4) || !u.Prefix4.Contains(u.ISP4) || !u.Prefix4.Contains(u.SNAT4) || !u.Prefix6.Contains(u.GW6) {
			t.Errorf("isp%d: the gateway, ISP and SNAT addresses must lie in the customer range %s", u.N, u.Prefix4)
		}
	}
	for _, a := range all {
		if !isDocumentation(a) {
			t.Errorf("%s is outside the documentation ranges", a)
		}
	}
}

func TestSNATModeAddsSecondaryAddressesAndSNATRules(t *testing.T) {
	tests := []struct {
		name, nat, want string
		present         bool
	}{
		{"snat mode adds wan1's fixed address", NATSNAT, "addr add 198.51.100.10/26 dev wan1", true},
		{"masquerade mode adds no fixed address", NATMasquerade, "198.51.100.10", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := addrScript(RoleGW, tt.nat, false) + nftScript(RoleGW, tt.nat, false)
			if strings.Contains(got, tt.want) != tt.present {
				t.Fatalf("want %q present=%v in:\n%s", tt.want, tt.present, got)
			}
		})
	}
}

func TestISPsDropSourcesOutsideTheirCustomerRange(t *testing.T) {
	for _, u := range Uplinks {
		s := nftScript(u.Role, NATMasquerade, false)
		for _, p := range []netip.Prefix{u.Prefix4, u.Prefix6} {
			if !strings.Contains(s, "saddr != "+p.String()) {
				t.Errorf("%s: no BCP 38 rule for %s in:\n%s", u.Role, p, s)
			}
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	tests := []struct {
		prefix string
		ok     bool
	}{
		{"ullab", true},
		{"ul-1_a", true},
		{"", false},
		{"UL", false},
		{"has space", false},
		{"../etc", false},
		{"averyveryverylongprefix", false},
	}
	for _, tt := range tests {
		if err := checkPrefix(tt.prefix); (err == nil) != tt.ok {
			t.Errorf("checkPrefix(%q) = %v, want ok=%v", tt.prefix, err, tt.ok)
		}
	}
}

func TestParseFaultReadsWhatStringWrites(t *testing.T) {
	for _, f := range []Fault{SilentFailure, CarrierLoss, Loss30} {
		got, err := ParseFault(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFault(%q) = %v, %v", f, got, err)
		}
	}
	if _, err := ParseFault("meteor"); err == nil {
		t.Error("ParseFault accepted an unknown fault")
	}
}

func TestParseCounters(t *testing.T) {
	js := `{"nftables": [{"metainfo": {"version": "1.0.6"}},
	 {"counter": {"family": "inet", "name": "up", "table": "lab", "handle": 1, "packets": 7, "bytes": 700}},
	 {"counter": {"family": "inet", "name": "up_icmp", "table": "lab", "handle": 2, "packets": 3, "bytes": 300}},
	 {"counter": {"family": "inet", "name": "down", "table": "lab", "handle": 3, "packets": 5, "bytes": 500}},
	 {"counter": {"family": "inet", "name": "spoofed", "table": "lab", "handle": 4, "packets": 1, "bytes": 84}}]}`
	c, err := parseCounters([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counters{Up: 7, UpICMP: 3, Down: 5, Spoofed: 1}); c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if _, err := parseCounters([]byte(`{"nftables": []}`)); err == nil {
		t.Fatal("a listing without the lab's counters should be an error")
	}
}

func TestUplinkRejectsUnknownISPs(t *testing.T) {
	for _, n := range []int{0, 3, -1} {
		if _, err := uplink(n); err == nil {
			t.Errorf("uplink(%d) gave no error", n)
		}
	}
}

func TestParseRdisc6(t *testing.T) {
	out := `Soliciting ff02::2 (ff02::2) on eth0...

Hop limit                 :           64 (      0x40)
Router lifetime           :         1800 (0x00000708) seconds
 Prefix                   : 2001:db8:a1::/64
  On-link                 :          Yes
  Valid time              :         7200 (0x00001c20) seconds
  Pref. time              :         2700 (0x00000a8c) seconds
 Prefix                   : 2001:db8:a2::/64
  Valid time              :         7200 (0x00001c20) seconds
  Pref. time              :            0 (0x00000000) seconds
 Recursive DNS server     : 2001:db8:a1::53
  DNS server lifetime     :         1800 (0x00000708) seconds
 Source link-layer address: 72:71:29:C5:48:43
 from fe80::7071:29ff:fec5:4843
`
	a, err := parseRdisc6(out)
	if err != nil {
		t.Fatal(err)
	}
	p2, ok := a.Prefix(LANPrefixISP2)
	if a.RouterLifetime != 1800 || len(a.Prefixes) != 2 || !ok || p2.Valid != 7200 || p2.Preferred != 0 ||
		a.Prefixes[0].Preferred != 2700 || len(a.RDNSS) != 1 || a.From.String() != "fe80::7071:29ff:fec5:4843" {
		t.Fatalf("%+v", a)
	}
	if _, err := parseRdisc6("Soliciting ff02::2 (ff02::2) on eth0...\nTimed out.\n"); err == nil {
		t.Fatal("no advert parsed without error")
	}
}
