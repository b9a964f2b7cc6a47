package inbound

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/uplink"
)

var (
	isp1v4 = netip.MustParseAddr("198.51.100.2")
	isp2v4 = netip.MustParseAddr("198.51.100.66")
	isp1v6 = netip.MustParseAddr("2001:db8:11::2")
	isp2v6 = netip.MustParseAddr("2001:db8:12::2")
	t0     = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
)

// state is two uplinks, isp1 carrying new connections, under the zone lb.example.com.
func state(policy string) dataplane.State {
	return dataplane.State{
		Uplinks: []dataplane.Uplink{
			{Name: "isp1", Active: true, Active6: true, Usable: true, Usable6: true, Public4: isp1v4, Public6: isp1v6},
			{Name: "isp2", Usable: true, Usable6: true, Public4: isp2v4, Public6: isp2v6},
		},
		DNS: uplink.DNS{Zone: "lb.example.com.", Serve: true, TTL: 30 * time.Second, Policy: policy, RateLimit: 20,
			Names: []uplink.DNSName{{Name: "www.lb.example.com."}, {Name: "vpn.a.lb.example.com.", Uplinks: []string{"isp2"}}}},
	}
}

func ask(t *testing.T, z *Zone, name string, qtype uint16, edit func(*dns.Msg), tcp bool) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	if edit != nil {
		edit(q)
	}
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := Respond(z, wire, tcp, false)
	if out == nil {
		t.Fatalf("%s %s: no response", name, dns.TypeToString[qtype])
	}
	if !tcp && len(out) > maxUDPSize {
		t.Fatalf("%d-byte UDP response", len(out))
	}
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil {
		t.Fatalf("response does not parse: %v", err)
	}
	if r.Id != q.Id || !r.Response || r.RecursionAvailable {
		t.Errorf("id %d (want %d), QR %v, RA %v: want the query's id, QR and never RA", r.Id, q.Id, r.Response, r.RecursionAvailable)
	}
	return r
}

func addrsOf(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch x := rr.(type) {
		case *dns.A:
			out = append(out, x.A.String())
		case *dns.AAAA:
			out = append(out, x.AAAA.String())
		}
	}
	return out
}

func TestAnswersCarryTheLiveUplinksAddresses(t *testing.T) {
	z := Build(state(uplink.DNSPolicyBest), nil, t0)
	r := ask(t, z, "www.lb.example.com.", dns.TypeA, nil, false)
	if got := addrsOf(r.Answer); !slices.Equal(got, []string{"198.51.100.2"}) || !r.Authoritative || r.Answer[0].Header().Ttl != 30 {
		t.Errorf("best: %v aa=%v ttl=%d, want isp1's address only, authoritative, TTL 30", got, r.Authoritative, r.Answer[0].Header().Ttl)
	}
	r = ask(t, z, "www.lb.example.com.", dns.TypeAAAA, nil, false)
	if got := addrsOf(r.Answer); !slices.Equal(got, []string{"2001:db8:11::2"}) {
		t.Errorf("best AAAA: %v", got)
	}
	all := Build(state(uplink.DNSPolicyAll), nil, t0)
	if got := addrsOf(ask(t, all, "www.lb.example.com.", dns.TypeA, nil, false).Answer); !slices.Equal(got, []string{"198.51.100.2", "198.51.100.66"}) {
		t.Errorf("all: %v, want both uplinks", got)
	}
	// isp1 dies: isp2 carries; the answer follows and the serial grows.
	s := state(uplink.DNSPolicyBest)
	s.Uplinks[0].Active, s.Uplinks[0].Active6, s.Uplinks[0].Usable, s.Uplinks[0].Usable6 = false, false, false, false
	s.Uplinks[1].Active, s.Uplinks[1].Active6 = true, true
	z2 := Build(s, z, t0)
	if got := addrsOf(ask(t, z2, "www.lb.example.com.", dns.TypeA, nil, false).Answer); !slices.Equal(got, []string{"198.51.100.66"}) {
		t.Errorf("after isp1 died: %v, want isp2's", got)
	}
	if z2.Serial != z.Serial+1 {
		t.Errorf("serial %d after a change, want %d", z2.Serial, z.Serial+1)
	}
	if z3 := Build(s, z2, t0.Add(time.Hour)); z3.Serial != z2.Serial {
		t.Errorf("serial %d → %d without a change", z2.Serial, z3.Serial)
	}
	// Nothing usable: every address of the name, never an empty answer.
	s.Uplinks[1].Active, s.Uplinks[1].Active6 = false, false
	if got := addrsOf(ask(t, Build(s, z2, t0), "www.lb.example.com.", dns.TypeA, nil, false).Answer); len(got) != 2 {
		t.Errorf("nothing usable: %v, want both addresses", got)
	}
	// A name restricted to isp2 keeps isp2's address even while isp1 is best.
	if got := addrsOf(ask(t, z, "vpn.a.lb.example.com.", dns.TypeA, nil, false).Answer); !slices.Equal(got, []string{"198.51.100.66"}) {
		t.Errorf("vpn: %v, want isp2's address", got)
	}
}

func TestTheApexHasSOAAndOneNameServerPerUplinkWithGlue(t *testing.T) {
	z := Build(state(uplink.DNSPolicyBest), nil, t0)
	r := ask(t, z, "lb.example.com.", dns.TypeSOA, nil, false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Serial != uint32(t0.Unix()) {
		t.Fatalf("SOA: %v", r.Answer)
	}
	r = ask(t, z, "lb.example.com.", dns.TypeNS, nil, false)
	var ns []string
	for _, rr := range r.Answer {
		ns = append(ns, rr.(*dns.NS).Ns)
	}
	if !slices.Equal(ns, []string{"ns-isp1.lb.example.com.", "ns-isp2.lb.example.com."}) {
		t.Errorf("NS %v", ns)
	}
	if got := addrsOf(r.Extra); len(got) != 4 {
		t.Errorf("glue %v, want both families of both uplinks", got)
	}
	if got := addrsOf(ask(t, z, "ns-isp2.lb.example.com.", dns.TypeA, nil, false).Answer); !slices.Equal(got, []string{"198.51.100.66"}) {
		t.Errorf("ns-isp2 A: %v", got)
	}
}

func TestRFC8906Behaviour(t *testing.T) {
	z := Build(state(uplink.DNSPolicyBest), nil, t0)
	for _, c := range []struct {
		what  string
		name  string
		qtype uint16
		edit  func(*dns.Msg)
		rcode int
		soa   bool // the SOA in the authority section
		aa    bool
	}{
		{"out of zone", "www.example.org.", dns.TypeA, nil, dns.RcodeRefused, false, false},
		{"the parent", "example.com.", dns.TypeNS, nil, dns.RcodeRefused, false, false},
		{"unknown type", "www.lb.example.com.", dns.TypeMX, nil, dns.RcodeSuccess, true, true},
		{"unknown type at the apex", "lb.example.com.", dns.TypeTXT, nil, dns.RcodeSuccess, true, true},
		{"empty non-terminal", "a.lb.example.com.", dns.TypeA, nil, dns.RcodeSuccess, true, true},
		{"no such name", "nope.lb.example.com.", dns.TypeA, nil, dns.RcodeNameError, true, true},
		{"zone transfer", "lb.example.com.", dns.TypeAXFR, nil, dns.RcodeRefused, false, false},
		{"chaos class", "lb.example.com.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeRefused, false, false},
		{"notify", "lb.example.com.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, dns.RcodeNotImplemented, false, false},
		{"update", "lb.example.com.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }, dns.RcodeNotImplemented, false, false},
		{"two questions", "lb.example.com.", dns.TypeSOA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, dns.RcodeFormatError, false, false},
		{"EDNS version 1", "www.lb.example.com.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }, dns.RcodeBadVers, false, false},
		{"two OPT records", "www.lb.example.com.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, m.Extra[0]) }, dns.RcodeFormatError, false, false},
	} {
		t.Run(c.what, func(t *testing.T) {
			r := ask(t, z, c.name, c.qtype, c.edit, false)
			hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
			if r.Rcode != c.rcode || hasSOA != c.soa || r.Authoritative != c.aa || len(r.Answer) != 0 {
				t.Errorf("rcode %s, SOA %v, AA %v, %d answers; want %s, SOA %v, AA %v, none",
					dns.RcodeToString[r.Rcode], hasSOA, r.Authoritative, len(r.Answer), dns.RcodeToString[c.rcode], c.soa, c.aa)
			}
			if c.rcode == dns.RcodeBadVers && (r.IsEdns0() == nil || r.IsEdns0().Version() != 0) {
				t.Errorf("BADVERS without an OPT of version 0")
			}
			if hasSOA && r.Ns[0].Header().Ttl != 30 {
				t.Errorf("negative TTL %d, want 30", r.Ns[0].Header().Ttl)
			}
		})
	}
}

func TestEDNSIsAnsweredWithOurBufferAndTheQuerysDOBit(t *testing.T) {
	z := Build(state(uplink.DNSPolicyBest), nil, t0)
	for _, do := range []bool{true, false} {
		r := ask(t, z, "www.lb.example.com.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, do) }, false)
		opt := r.IsEdns0()
		if opt == nil || opt.UDPSize() != 1232 || opt.Do() != do || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("query DO %v: OPT %v rcode %d: want one with 1232 bytes and DO copied (RFC 3225 3)", do, opt, r.Rcode)
		}
		if nx := ask(t, z, "nope.lb.example.com.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, do) }, false); nx.IsEdns0() == nil || nx.IsEdns0().Do() != do {
			t.Errorf("query DO %v: NXDOMAIN's OPT %v: want DO copied", do, nx.IsEdns0())
		}
	}
	r := ask(t, z, "www.lb.example.com.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(4096, true) }, false)
	opt := r.IsEdns0()
	if r.Extra[len(r.Extra)-1] != dns.RR(opt) {
		t.Errorf("OPT is not the last additional record")
	}
	if r := ask(t, z, "www.lb.example.com.", dns.TypeA, nil, false); r.IsEdns0() != nil {
		t.Errorf("OPT in the answer to a query without one")
	}
}

func TestTheQueryNamesCaseIsEchoed(t *testing.T) {
	z := Build(state(uplink.DNSPolicyBest), nil, t0)
	for _, name := range []string{"wWw.Lb.ExAmPlE.cOm.", "LB.EXAMPLE.COM."} {
		qt := dns.TypeA
		if strings.HasPrefix(name, "LB") {
			qt = dns.TypeSOA
		}
		r := ask(t, z, name, qt, nil, false)
		if r.Question[0].Name != name || len(r.Answer) != 1 || r.Answer[0].Header().Name != name {
			t.Errorf("asked %s: question %s, answer %v", name, r.Question[0].Name, r.Answer)
		}
	}
}

func TestAnAnswerThatDoesNotFitIsTruncatedAndWholeOverTCP(t *testing.T) {
	s := state(uplink.DNSPolicyAll)
	for i := range 40 { // 40 uplinks: 40 A records do not fit 512 bytes
		s.Uplinks = append(s.Uplinks, dataplane.Uplink{Name: "x" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Usable: true,
			Public4: netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)})})
	}
	z := Build(s, nil, t0)
	r := ask(t, z, "www.lb.example.com.", dns.TypeA, nil, false)
	if !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("UDP: TC %v with %d answers; want TC and no partial RRset", r.Truncated, len(r.Answer))
	}
	r = ask(t, z, "www.lb.example.com.", dns.TypeA, nil, true)
	if r.Truncated || len(r.Answer) != 42 {
		t.Errorf("TCP: TC %v with %d answers; want all 42", r.Truncated, len(r.Answer))
	}
	// The NS answer fits 1232 bytes once the glue goes: no TC then.
	r = ask(t, z, "lb.example.com.", dns.TypeNS, func(m *dns.Msg) { m.SetEdns0(1232, false) }, false)
	if r.Truncated || len(r.Answer) != 42 || len(r.Extra) != 1 {
		t.Errorf("NS over UDP: TC %v, %d NS, %d glue; want every NS and only the OPT", r.Truncated, len(r.Answer), len(r.Extra))
	}
}

func TestResponsesAndGarbageGetNoAnswerOrFORMERR(t *testing.T) {
	z := Build(state(uplink.DNSPolicyBest), nil, t0)
	if Respond(z, []byte{1, 2, 3}, false, false) != nil {
		t.Error("answered 3 bytes")
	}
	q := new(dns.Msg)
	q.SetQuestion("www.lb.example.com.", dns.TypeA)
	q.Response = true
	wire, _ := q.Pack()
	if Respond(z, wire, false, false) != nil {
		t.Error("answered a response (reflection loop)")
	}
	garbage := append([]byte{0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}, 0x3f, 'x')
	out := Respond(z, garbage, false, false)
	r := new(dns.Msg)
	if err := r.Unpack(out); err != nil || r.Id != 0xabcd || r.Rcode != dns.RcodeFormatError {
		t.Errorf("garbage: %v %+v", err, r.MsgHdr)
	}
}

func TestASlippedResponseIsTruncatedAndEmpty(t *testing.T) {
	z := Build(state(uplink.DNSPolicyBest), nil, t0)
	q := new(dns.Msg)
	q.SetQuestion("www.lb.example.com.", dns.TypeA)
	wire, _ := q.Pack()
	r := new(dns.Msg)
	if err := r.Unpack(Respond(z, wire, false, true)); err != nil || !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("slip: %v TC %v answers %d", err, r.Truncated, len(r.Answer))
	}
}

// A checked name whose servers fail answers its fallback with the short fallback TTL; the
// other names keep theirs.
func TestANameWhoseServersFailAnswersItsFallbackWithItsOwnTTL(t *testing.T) {
	st := state(uplink.DNSPolicyBest)
	st.DNS.Check = uplink.DefaultServerCheck
	st.DNS.Names[0].Servers = []uplink.Server{{Addr: netip.MustParseAddr("192.0.2.10"), Method: uplink.Method{Name: uplink.MethodTCP, Port: 80}}}
	st.DNS.Names[0].Fallback = []netip.Addr{netip.MustParseAddr("203.0.113.80")}
	if r := ask(t, Build(st, nil, t0), "www.lb.example.com.", dns.TypeA, nil, false); !slices.Equal(addrsOf(r.Answer), []string{isp1v4.String()}) {
		t.Fatalf("servers passing: %v, want isp1's address", addrsOf(r.Answer))
	}
	st.NamesDown = map[string]bool{"www.lb.example.com.": true}
	z := Build(st, nil, t0)
	r := ask(t, z, "www.lb.example.com.", dns.TypeA, nil, false)
	if !slices.Equal(addrsOf(r.Answer), []string{"203.0.113.80"}) || r.Answer[0].Header().Ttl != 10 {
		t.Errorf("servers dead: %v, want the fallback with TTL 10", r.Answer)
	}
	if r := ask(t, z, "www.lb.example.com.", dns.TypeAAAA, nil, false); len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
		t.Errorf("AAAA of an IPv4-only fallback: %v, want NODATA", r.Answer)
	}
	if r := ask(t, z, "vpn.a.lb.example.com.", dns.TypeA, nil, false); len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
		t.Errorf("an unchecked name: %v, want its own TTL 30", r.Answer)
	}
	st.DNS.Names[0].Fallback = nil // no fallback: the uplinks' addresses still
	if r := ask(t, Build(st, nil, t0), "www.lb.example.com.", dns.TypeA, nil, false); !slices.Equal(addrsOf(r.Answer), []string{isp1v4.String()}) {
		t.Errorf("servers dead, no fallback: %v, want the uplinks' answer as before", addrsOf(r.Answer))
	}
}

// With several sites every site serves the same zone: the NS set names every site's name
// servers with glue, whichever site answers, and a name carries the sites that can serve it.
func TestSeveralSitesServeOneNSSetAndTheAnswersOfTheSitesThatCanServe(t *testing.T) {
	lyon := netip.MustParseAddr("203.0.113.20")
	st := state(uplink.DNSPolicyBest)
	st.DNS.Site = "paris"
	st.DNS.Sites = []uplink.Site{
		{Name: "paris", NameServers: []netip.Addr{isp1v4, isp2v4}, Addresses: []netip.Addr{isp1v4, isp2v4}},
		{Name: "lyon", NameServers: []netip.Addr{netip.MustParseAddr("203.0.113.2")}, Addresses: []netip.Addr{lyon}},
	}
	for i := range st.DNS.Names {
		st.DNS.Names[i].Policy = uplink.SitePolicySpread
	}
	z := Build(st, nil, t0)
	r := ask(t, z, "lb.example.com.", dns.TypeNS, nil, false)
	var ns []string
	for _, rr := range r.Answer {
		ns = append(ns, rr.(*dns.NS).Ns)
	}
	want := []string{"ns1.paris.lb.example.com.", "ns2.paris.lb.example.com.", "ns1.lyon.lb.example.com."}
	if !slices.Equal(ns, want) || !slices.Contains(addrsOf(r.Extra), "203.0.113.2") {
		t.Errorf("NS %v glue %v, want %v with glue", ns, addrsOf(r.Extra), want)
	}
	if r := ask(t, z, "ns2.paris.lb.example.com.", dns.TypeA, nil, false); !slices.Equal(addrsOf(r.Answer), []string{isp2v4.String()}) {
		t.Errorf("ns2.paris: %v", addrsOf(r.Answer))
	}
	if r := ask(t, z, "www.lb.example.com.", dns.TypeA, nil, false); !slices.Equal(addrsOf(r.Answer), []string{isp1v4.String(), lyon.String()}) {
		t.Errorf("www spread over both sites: %v", addrsOf(r.Answer))
	}
}

// nearest is two sites, paris (this one: 198.51.100.0/24's clients) and lyon (203.0.113.0/24's
// and 2001:db8:77::/48's), serving www under the nearest policy.
func nearest() *Zone { return BuildSigned(nearestState(), nil, t0) }

func nearestState() dataplane.State {
	st := state(uplink.DNSPolicyBest)
	st.DNS.Site = "paris"
	st.DNS.Sites = []uplink.Site{
		{Name: "paris", NameServers: []netip.Addr{isp1v4}, Networks: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
		{Name: "lyon", NameServers: []netip.Addr{netip.MustParseAddr("203.0.113.2")}, Addresses: []netip.Addr{netip.MustParseAddr("203.0.113.20")},
			Networks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:77::/48")}},
	}
	st.DNS.Names[0].Policy = uplink.SitePolicyNearest
	return st
}

func withECS(addr string, source uint8, scope uint8) func(*dns.Msg) {
	return func(m *dns.Msg) {
		m.SetEdns0(1232, false)
		a := netip.MustParseAddr(addr)
		family := uint16(1)
		if a.Is6() {
			family = 2
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: source, SourceScope: scope, Address: a.AsSlice()})
	}
}

func ecsOf(r *dns.Msg) *dns.EDNS0_SUBNET {
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}

// askFrom is ask from the resolver at client.
func askFrom(t *testing.T, z *Zone, client netip.Addr, name string, qtype uint16, edit func(*dns.Msg)) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	if edit != nil {
		edit(q)
	}
	wire, _ := q.Pack()
	r := new(dns.Msg)
	if err := r.Unpack(RespondTo(z, wire, client, false, false)); err != nil {
		t.Fatal(err)
	}
	return r
}

// The nearest policy answers a client from the site whose networks hold its EDNS Client Subnet
// (or its resolver's address), with the scope of that network (RFC 7871); others get the first
// site; a malformed subnet gets FORMERR.
func TestNearestAnswersFromTheClientsSiteWithTheScopeSet(t *testing.T) {
	z := nearest()
	const www = "www.lb.example.com."
	lyon := []string{"203.0.113.20"}
	paris := []string{isp1v4.String()}
	for _, c := range []struct {
		name   string
		client string
		ecs    func(*dns.Msg)
		want   []string
		scope  int // -1: no ECS in the response
	}{
		{"a subnet in lyon's network", "192.0.2.53", withECS("203.0.113.0", 24, 0), lyon, 24},
		{"a longer subnet in it", "192.0.2.53", withECS("203.0.113.128", 25, 0), lyon, 24},
		{"an IPv6 subnet in lyon's", "192.0.2.53", withECS("2001:db8:77:1::", 56, 0), lyon, 48},
		{"a subnet in paris's", "203.0.113.53", withECS("198.51.100.0", 24, 0), paris, 24},
		{"a subnet in no site's network: the first site, scoped to the whole subnet", "203.0.113.53", withECS("192.0.2.0", 24, 0), paris, 24},
		{"source 0: the client's address is not to be used", "203.0.113.53", withECS("0.0.0.0", 0, 0), paris, 0},
		{"no subnet: the resolver's own address", "203.0.113.53", nil, lyon, -1},
		{"no subnet, a resolver in no network", "192.0.2.53", nil, paris, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := askFrom(t, z, netip.MustParseAddr(c.client), www, dns.TypeA, c.ecs)
			if got := addrsOf(r.Answer); !slices.Equal(got, c.want) || r.Rcode != dns.RcodeSuccess {
				t.Errorf("%v rcode %d, want %v", got, r.Rcode, c.want)
			}
			e := ecsOf(r)
			switch {
			case c.scope < 0 && e != nil:
				t.Errorf("ECS %v in the answer to a query without one", e)
			case c.scope >= 0 && (e == nil || int(e.SourceScope) != c.scope):
				t.Errorf("ECS %v, want scope %d", e, c.scope)
			}
		})
	}
	// An unrelated name does not depend on the client: scope 0.
	if e := ecsOf(askFrom(t, z, netip.Addr{}, "vpn.a.lb.example.com.", dns.TypeA, withECS("203.0.113.0", 24, 0))); e == nil || e.SourceScope != 0 || e.SourceNetmask != 24 {
		t.Errorf("another name's ECS %v: want the source echoed with scope 0", e)
	}
	for name, edit := range map[string]func(*dns.Msg){
		"a scope in the query": withECS("203.0.113.0", 24, 8),
		"address bits past the source": func(m *dns.Msg) { // raw: miekg masks what it packs
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24, 0, 203, 0, 113, 1}})
		},
		"two subnets": func(m *dns.Msg) {
			withECS("203.0.113.0", 24, 0)(m)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 8, Address: netip.MustParseAddr("198.0.0.0").AsSlice()})
		},
		"an IPv4 family with an IPv6 address": func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: netip.MustParseAddr("2001:db8::").AsSlice()})
		},
	} {
		q := new(dns.Msg)
		q.SetQuestion(www, dns.TypeA)
		edit(q)
		wire, err := q.Pack()
		if err != nil {
			continue // miekg refuses to pack it: the unpacking side is the fuzz target's
		}
		r := new(dns.Msg)
		if err := r.Unpack(RespondTo(z, wire, netip.Addr{}, false, false)); err != nil || r.Rcode != dns.RcodeFormatError {
			t.Errorf("%s: rcode %d %v, want FORMERR", name, r.Rcode, err)
		}
	}
}
