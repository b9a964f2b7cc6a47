package inbound

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/uplink"
)

// FuzzHandler feeds arbitrary bytes to the handler: it must never panic, never answer a
// response, and never send a UDP response larger than the client allowed.
func FuzzHandler(f *testing.F) {
	z := Build(state(uplink.DNSPolicyAll), nil, t0)
	for _, seed := range []func(*dns.Msg){
		func(m *dns.Msg) { m.SetQuestion("www.lb.example.com.", dns.TypeA) },
		func(m *dns.Msg) { m.SetQuestion("lb.example.com.", dns.TypeNS); m.SetEdns0(600, true) },
		func(m *dns.Msg) {
			m.SetQuestion("x.example.org.", dns.TypeANY)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(3)
		},
	} {
		m := new(dns.Msg)
		seed(m)
		wire, _ := m.Pack()
		f.Add(wire, false)
	}
	f.Fuzz(func(t *testing.T, query []byte, tcp bool) {
		out := Respond(z, query, tcp, false)
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
