package uplink

import (
	"net/netip"
	"slices"
	"testing"
)

func TestDecide(t *testing.T) {
	up := func(name string, prio int) Candidate {
		return Candidate{Name: name, Priority: prio, Weight: 1, State: Up}
	}
	with := func(c Candidate, f func(*Candidate)) Candidate { f(&c); return c }
	down := func(c *Candidate) { c.State = Down }
	drained := func(c *Candidate) { c.Drained = true }
	drainNow := func(c *Candidate) { c.Drained, c.DrainNow = true, true }
	voip := Service{Name: "voip", Uplinks: []string{"isp2", "isp1"}, Fallback: true}
	metered := Service{Name: "backup", Uplinks: []string{"lte"}, Fallback: false}
	tests := []struct {
		name     string
		cands    []Candidate
		pinning  bool
		active   []string
		live     []string
		services []ServiceChoice
	}{
		{"with pinning a backup tier keeps its connections while the primary carries new ones",
			[]Candidate{up("isp1", 1), up("isp2", 2)}, true, []string{"isp1"}, []string{"isp1", "isp2"}, nil},
		{"without pinning only the active uplinks carry connections",
			[]Candidate{up("isp1", 1), up("isp2", 2)}, false, []string{"isp1"}, []string{"isp1"}, nil},
		{"a down uplink is never live",
			[]Candidate{with(up("isp1", 1), down), up("isp2", 2)}, true, []string{"isp2"}, []string{"isp2"}, nil},
		{"a gracefully drained uplink keeps its connections",
			[]Candidate{with(up("isp1", 1), drained), up("isp2", 2)}, true, []string{"isp2"}, []string{"isp1", "isp2"}, nil},
		{"drained --now, its connections move too",
			[]Candidate{with(up("isp1", 1), drainNow), up("isp2", 2)}, true, []string{"isp2"}, []string{"isp2"}, nil},
		{"when everything is down the kept primary tier is live",
			[]Candidate{with(up("isp1", 1), down), with(up("isp2", 2), down)}, true, []string{"isp1"}, []string{"isp1"}, nil},
		{"a service takes the first up uplink of its list",
			[]Candidate{up("isp1", 1), up("isp2", 2), up("lte", 3)}, true, []string{"isp1"}, []string{"isp1", "isp2", "lte"},
			[]ServiceChoice{{Service: "voip", Uplink: "isp2"}, {Service: "backup", Uplink: "lte"}}},
		{"a service falls back along its list, and one without fallback is blocked",
			[]Candidate{up("isp1", 1), with(up("isp2", 2), down), with(up("lte", 3), down)}, true, []string{"isp1"}, []string{"isp1"},
			[]ServiceChoice{{Service: "voip", Uplink: "isp1"}, {Service: "backup", Block: true}}},
		{"a drained uplink takes no service traffic",
			[]Candidate{up("isp1", 1), with(up("isp2", 2), drained), with(up("lte", 3), drained)}, true, []string{"isp1"}, []string{"isp1", "isp2", "lte"},
			[]ServiceChoice{{Service: "voip", Uplink: "isp1"}, {Service: "backup", Block: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var svcs []Service
			if tt.services != nil {
				svcs = []Service{voip, metered}
			}
			d := Decide(tt.cands, svcs, tt.pinning)
			if !slices.Equal(d.Active, tt.active) || !slices.Equal(d.Live, tt.live) || !slices.Equal(d.Services, tt.services) {
				t.Errorf("got active %v live %v services %+v\nwant active %v live %v services %+v", d.Active, d.Live, d.Services, tt.active, tt.live, tt.services)
			}
		})
	}
}

func TestDepartedListsUplinksThatStoppedBeingLive(t *testing.T) {
	if got := Departed([]string{"isp1", "isp2"}, []string{"isp2", "lte"}); !slices.Equal(got, []string{"isp1"}) {
		t.Errorf("got %v", got)
	}
	if got := Departed(nil, []string{"isp1"}); got != nil {
		t.Errorf("nothing was live before, yet %v departed", got)
	}
}

func TestDeadIPv6MovesOnlyIPv6(t *testing.T) {
	down, up := Down, Up
	cands := []Candidate{
		{Name: "isp1", Priority: 1, Weight: 1, State: Up, State6: &down},
		{Name: "isp2", Priority: 2, Weight: 1, State: Up, State6: &up},
	}
	d := Decide(cands, nil, true)
	if !slices.Equal(d.Active, []string{"isp1"}) || !slices.Equal(d.Active6, []string{"isp2"}) {
		t.Errorf("active %v, active6 %v; want IPv4 on isp1 and IPv6 on isp2", d.Active, d.Active6)
	}
	one := Decide([]Candidate{{Name: "isp1", Priority: 1, Weight: 1, State: Up}}, nil, true)
	if !slices.Equal(one.Active6, one.Active) {
		t.Errorf("without IPv6 judged apart Active6 %v must follow Active %v", one.Active6, one.Active)
	}
}

func TestProbesOfBothFamiliesSplitWithTheQuorumClampedToEach(t *testing.T) {
	p := Probe{Quorum: 2, Targets: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.2")}}
	v4, v6, ok := p.SplitFamilies()
	if !ok || len(v4.Targets) != 2 || v4.Quorum != 2 || len(v6.Targets) != 1 || v6.Quorum != 1 {
		t.Errorf("split: %v %+v %+v", ok, v4, v6)
	}
	if _, _, ok := (Probe{Targets: p.Targets[:1]}).SplitFamilies(); ok {
		t.Errorf("one family must not split")
	}
}

func TestAnIPv6ServiceFollowsTheIPv6Judgement(t *testing.T) {
	down := Down
	cands := []Candidate{
		{Name: "isp1", Priority: 1, Weight: 1, State: Up, State6: &down}, // IPv4 fine, IPv6 dead
		{Name: "isp2", Priority: 2, Weight: 1, State: Up},
	}
	v6 := Service{Name: "v6", Dst: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}, Uplinks: []string{"isp1", "isp2"}, Fallback: true}
	v4 := Service{Name: "v4", Dst: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Uplinks: []string{"isp1", "isp2"}, Fallback: true}
	d := Decide(cands, []Service{v6, v4}, true)
	if d.Services[0].Uplink != "isp2" || d.Services[1].Uplink != "isp1" {
		t.Errorf("services %+v: want the IPv6 one on isp2 (isp1's IPv6 is down), the IPv4 one on isp1", d.Services)
	}
}
