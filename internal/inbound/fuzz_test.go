package inbound

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// FuzzHandler feeds arbitrary bytes to the handler, from a resolver inside a site's network or
// not, over a zone with a nearest-policy name (EDNS Client Subnet): it must never panic, never
// answer a response, and never send a UDP response larger than the client allowed.
func FuzzHandler(f *testing.F) {
	key, err := config.GenerateDNSSECKey(filepath.Join(f.TempDir(), "dnssec.key"), "lb.example.com.")
	if err != nil {
		f.Fatal(err)
	}
	z := BuildSigned(nearestState(), nil, t0, key) // signed: DO queries get RRSIGs and compact denial
	for _, seed := range []func(*dns.Msg){
		func(m *dns.Msg) { m.SetQuestion("www.lb.example.com.", dns.TypeA) },
		func(m *dns.Msg) { m.SetQuestion("lb.example.com.", dns.TypeNS); m.SetEdns0(600, true) },
		func(m *dns.Msg) {
			m.SetQuestion("x.example.org.", dns.TypeANY)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(3)
		},
		func(m *dns.Msg) { m.SetQuestion("www.lb.example.com.", dns.TypeA); withECS("203.0.113.0", 24, 0)(m) },
		func(m *dns.Msg) { m.SetQuestion("www.lb.example.com.", dns.TypeA); m.SetEdns0(1232, true) },
		func(m *dns.Msg) { m.SetQuestion("nope.lb.example.com.", dns.TypeA); m.SetEdns0(1232, true) },
		func(m *dns.Msg) { m.SetQuestion("lb.example.com.", dns.TypeDNSKEY); m.SetEdns0(512, true) },
		func(m *dns.Msg) {
			m.SetQuestion("www.lb.example.com.", dns.TypeAAAA)
			withECS("2001:db8:77::", 48, 0)(m)
		},
		func(m *dns.Msg) {
			m.SetQuestion("www.lb.example.com.", dns.TypeA)
			m.SetEdns0(1232, true)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: []byte{0, 1, 24, 0, 203, 0, 113, 1}})
		},
	} {
		m := new(dns.Msg)
		seed(m)
		wire, _ := m.Pack()
		f.Add(wire, false)
		f.Add(wire, true)
	}
	f.Fuzz(func(t *testing.T, query []byte, tcp bool) {
		client := netip.MustParseAddr("203.0.113.53") // in lyon's network
		if tcp {
			client = netip.Addr{}
		}
		out := RespondTo(z, query, client, tcp, false)
		if out == nil {
			return
		}
		if len(query) >= 3 && query[2]&0x80 != 0 {
			t.Fatal("answered a response")
		}
		limit := minUDPSize
		req := new(dns.Msg)
		if req.Unpack(query) == nil {
			if opt := req.IsEdns0(); opt != nil {
				limit = min(max(int(opt.UDPSize()), minUDPSize), maxUDPSize)
			}
		}
		if !tcp && len(out) > limit {
			t.Fatalf("%d-byte UDP response, the client allowed %d", len(out), limit)
		}
		if out[0] != query[0] || out[1] != query[1] {
			t.Fatal("response ID differs from the query's")
		}
	})
}
