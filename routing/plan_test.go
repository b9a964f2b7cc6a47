package routing

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/vishvananda/netlink"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// twoUplinks is the usual dual-stack gateway of the tests.
func twoUplinks() []Uplink {
	return []Uplink{
		{Name: "isp1", Interface: "wan1", Table: 201, Mark: 0x100, Weight: 3,
			Gateway4: mustAddr("192.0.2.1"), Gateway6: mustAddr("2001:db8:1::1"),
			Addrs: []netip.Addr{mustAddr("192.0.2.10"), mustAddr("2001:db8:1::10")}},
		{Name: "isp2", Interface: "wan2", Table: 202, Mark: 0x200, Weight: 1,
			Gateway4: mustAddr("198.51.100.1"), Gateway6: mustAddr("2001:db8:2::1"),
			Addrs: []netip.Addr{mustAddr("198.51.100.10"), mustAddr("2001:db8:2::10")}},
	}
}

func TestPlanGolden(t *testing.T) {
	v4only := twoUplinks()
	v4only[1].Gateway6 = netip.Addr{}
	v4only[1].Addrs = v4only[1].Addrs[:1]
	ppp := []Uplink{{Name: "dsl", Interface: "ppp0", Table: 201, Mark: 0x100, PointToPoint: true,
		Addrs: []netip.Addr{mustAddr("203.0.113.7")}}}
	reversed := []Uplink{twoUplinks()[1], twoUplinks()[0]}
	bad := append(twoUplinks(), Uplink{Name: "isp3", Interface: "wan3", Table: 254})

	tests := []struct {
		name    string
		s       Settings
		uplinks []Uplink
		active  []string
	}{
		{"one-active", Settings{}, twoUplinks(), []string{"isp1"}},
		{"failover-to-second", Settings{}, twoUplinks(), []string{"isp2"}},
		{"weighted-multipath", Settings{}, twoUplinks(), []string{"isp1", "isp2"}},
		{"ipv4-only-active-keeps-kernel-ipv6-route", Settings{}, v4only, []string{"isp2"}},
		{"empty-active-keeps-kernel-routes", Settings{}, twoUplinks(), nil},
		{"point-to-point", Settings{}, ppp, []string{"dsl"}},
		{"custom-band-and-table", Settings{RulePriority: 32000, ActiveTable: 100, Protocol: 0x66}, twoUplinks(), []string{"isp1"}},
		{"unknown-names-and-tables-are-noted", Settings{}, bad, []string{"isp1", "nope", "isp1"}},
		{"input-order-does-not-matter", Settings{}, reversed, []string{"isp1", "isp2"}},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, "-", " "), func(t *testing.T) {
			got := NewPlan(tt.s, tt.uplinks, tt.active).String()
			testkit.Golden(t, filepath.Join("testdata", tt.name+".golden"), []byte(got))
		})
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	a := NewPlan(Settings{}, twoUplinks(), []string{"isp1", "isp2"}).String()
	b := NewPlan(Settings{}, []Uplink{twoUplinks()[1], twoUplinks()[0]}, []string{"isp1", "isp2"}).String()
	if a != b {
		t.Errorf("plans differ with the input order:\n%s\n%s", a, b)
	}
}

func TestWeightsAreClamped(t *testing.T) {
	ups := twoUplinks()
	ups[0].Weight, ups[1].Weight = 0, 1000
	p := NewPlan(Settings{}, ups, []string{"isp1", "isp2"})
	for _, r := range p.Routes {
		if r.Table != DefaultActiveTable {
			continue
		}
		if len(r.Nexthops) != 2 || r.Nexthops[0].Weight != 1 || r.Nexthops[1].Weight != 256 {
			t.Errorf("active route %s: want weights 1 and 256", r)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name string
		s    Settings
		want string // empty: valid
	}{
		{"the defaults are valid", Settings{}, ""},
		{"a band reaching the main rule is refused", Settings{RulePriority: 32700}, "reaches the main table's rule"},
		{"the main table as active table is refused", Settings{ActiveTable: 254}, "active table 254"},
		{"a kernel protocol number is refused", Settings{Protocol: 2}, "route protocol 2"},
		{"a protocol beyond one byte is refused", Settings{Protocol: 300}, "route protocol 300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := newRouter(newFakeKernel(), Settings{Protocol: 300}, nil).Apply(Plan{}); err == nil {
		t.Error("Apply ran with invalid settings")
	}
}

func TestDeadIPv6OnTheActiveUplinkMovesOnlyIPv6(t *testing.T) {
	p := NewPlanPerFamily(Settings{}, twoUplinks(), []string{"isp1"}, []string{"isp2"})
	got := map[int]string{}
	for _, r := range p.Routes {
		if r.Table == DefaultActiveTable {
			got[r.Family] = r.Nexthops[0].Interface
		}
	}
	if got[netlink.FAMILY_V4] != "wan1" || got[netlink.FAMILY_V6] != "wan2" {
		t.Errorf("active routes %v, want IPv4 via wan1 and IPv6 via wan2", got)
	}
	if len(p.Problems) != 0 {
		t.Errorf("problems: %v", p.Problems)
	}
}
