package dataplane

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/uplinkd/uplinkd/uplink"
)

var (
	paris1 = netip.MustParseAddr("198.51.100.2")  // this site's isp1
	paris2 = netip.MustParseAddr("198.51.100.66") // its isp2
	lyon   = netip.MustParseAddr("203.0.113.20")  // the other site's address for www
	lyon2  = netip.MustParseAddr("203.0.113.21")
	status = netip.MustParseAddr("192.0.2.200") // the fallback: a status page elsewhere
	www    = "www.lb.example.com."
)

// sites is paris (this gateway: isp1 active, isp2 usable) and lyon, serving www with a check.
func sites(policy string) State {
	n := uplink.DNSName{Name: www, Policy: policy, Fallback: []netip.Addr{status},
		Servers: []uplink.Server{{Addr: netip.MustParseAddr("192.0.2.10"), Method: uplink.Method{Name: uplink.MethodHTTP, Port: 80, Path: "/"}}}}
	return State{
		Uplinks: []Uplink{
			{Name: "isp1", Active: true, Usable: true, Public4: paris1},
			{Name: "isp2", Usable: true, Public4: paris2},
		},
		DNS: uplink.DNS{Zone: "lb.example.com.", Policy: uplink.DNSPolicyBest, Site: "paris", Names: []uplink.DNSName{n},
			Sites: []uplink.Site{
				{Name: "paris", NameServers: []netip.Addr{paris1}, Addresses: []netip.Addr{paris1, paris2}},
				{Name: "lyon", NameServers: []netip.Addr{lyon}, Addresses: []netip.Addr{lyon, lyon2}},
			}},
		SitesUp: map[string]map[string]map[netip.Addr]bool{www: {"lyon": {lyon: true, lyon2: true}}},
	}
}

func TestTheAnswerComesFromTheSitesThatCanServeTheName(t *testing.T) {
	for _, c := range []struct {
		name     string
		policy   string
		edit     func(*State)
		addrs    []netip.Addr
		sites    []string
		fallback bool
	}{
		{"failover: this site first, while its servers pass and an uplink carries traffic", uplink.SitePolicyFailover, nil,
			[]netip.Addr{paris1}, []string{"paris"}, false},
		{"spread: every site that can, each with its own addresses", uplink.SitePolicySpread, nil,
			[]netip.Addr{paris1, lyon, lyon2}, []string{"paris", "lyon"}, false},
		{"this site's servers dead: the other site", uplink.SitePolicyFailover,
			func(s *State) { s.NamesDown = map[string]bool{www: true} }, []netip.Addr{lyon, lyon2}, []string{"lyon"}, false},
		{"this site's uplinks all down: the other site, not this one's dead addresses", uplink.SitePolicyFailover,
			func(s *State) { s.Uplinks[0].Active, s.Uplinks[0].Usable, s.Uplinks[1].Usable = false, false, false },
			[]netip.Addr{lyon, lyon2}, []string{"lyon"}, false},
		{"an address of the other site that fails this site's checks is never published", uplink.SitePolicySpread,
			func(s *State) { delete(s.SitesUp[www]["lyon"], lyon) }, []netip.Addr{paris1, lyon2}, []string{"paris", "lyon"}, false},
		{"nothing can serve it: the fallback", uplink.SitePolicyFailover,
			func(s *State) { s.NamesDown = map[string]bool{www: true}; s.SitesUp = nil }, []netip.Addr{status}, nil, true},
		{"the name's own order puts lyon first", uplink.SitePolicyFailover,
			func(s *State) { s.DNS.Names[0].Sites = []string{"lyon", "paris"} }, []netip.Addr{lyon, lyon2}, []string{"lyon"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := sites(c.policy)
			if c.edit != nil {
				c.edit(&s)
			}
			a := s.Answer(s.DNS.Names[0])
			if !slices.Equal(a.Addrs, c.addrs) || !slices.Equal(a.Sites, c.sites) || a.Fallback != c.fallback {
				t.Errorf("%+v, want %v from %v (fallback %v)", a, c.addrs, c.sites, c.fallback)
			}
		})
	}
}

func TestWithoutAFallbackANameNobodyCanServeAnswersEveryListedAddress(t *testing.T) {
	s := sites(uplink.SitePolicyFailover)
	s.DNS.Names[0].Fallback = nil
	s.NamesDown, s.SitesUp = map[string]bool{www: true}, nil
	a := s.Answer(s.DNS.Names[0])
	if !a.Unverified || !slices.Equal(a.Addrs, []netip.Addr{paris1, lyon, lyon2}) {
		t.Errorf("%+v: want every listed address, unverified", a)
	}
}

func TestAnUncheckedNameTakesTheOtherSitesAsListed(t *testing.T) {
	s := sites(uplink.SitePolicySpread)
	s.DNS.Names[0].Servers, s.DNS.Names[0].Fallback, s.SitesUp = nil, nil, nil
	if a := s.Answer(s.DNS.Names[0]); !slices.Equal(a.Addrs, []netip.Addr{paris1, lyon, lyon2}) {
		t.Errorf("%+v", a)
	}
}

func TestOneSiteAnswersAsBefore(t *testing.T) {
	s := sites(uplink.SitePolicyFailover)
	s.DNS.Sites, s.DNS.Site = nil, ""
	if a := s.Answer(s.DNS.Names[0]); !slices.Equal(a.Addrs, []netip.Addr{paris1}) || a.Sites != nil {
		t.Errorf("servers passing: %+v", a)
	}
	s.NamesDown = map[string]bool{www: true}
	if a := s.Answer(s.DNS.Names[0]); !a.Fallback || !slices.Equal(a.Addrs, []netip.Addr{status}) {
		t.Errorf("servers dead: %+v", a)
	}
	s.Uplinks[0].Active = false // no uplink carries traffic: every address, as before
	s.NamesDown = nil
	if a := s.Answer(s.DNS.Names[0]); !slices.Equal(a.Addrs, []netip.Addr{paris1, paris2}) {
		t.Errorf("no active uplink: %+v", a)
	}
}
