package inbound

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
)

func signedZone(t *testing.T) (*Zone, config.DNSSECKey) {
	t.Helper()
	key, err := config.GenerateDNSSECKey(filepath.Join(t.TempDir(), "dnssec.key"), "lb.example.com.")
	if err != nil {
		t.Fatal(err)
	}
	return BuildSigned(state(uplink.DNSPolicyBest), nil, t0, key), key
}

func withDO(m *dns.Msg) { m.SetEdns0(1232, true) }

// verify checks that every RRset of rrs other than RRSIGs carries a signature by key that
// verifies, and returns how many it verified.
func verify(t *testing.T, key config.DNSSECKey, rrs []dns.RR) int {
	t.Helper()
	sets := map[string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); ok {
			sigs = append(sigs, s)
			continue
		}
		k := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
		sets[k] = append(sets[k], rr)
	}
	n := 0
	for k, set := range sets {
		i := slices.IndexFunc(sigs, func(s *dns.RRSIG) bool {
			return strings.ToLower(s.Hdr.Name)+"/"+dns.TypeToString[s.TypeCovered] == k
		})
		if i < 0 {
			t.Errorf("%s has no RRSIG", k)
			continue
		}
		if err := sigs[i].Verify(key.DNSKEY, set); err != nil {
			t.Errorf("%s: RRSIG does not verify: %v", k, err)
		}
		if !sigs[i].ValidityPeriod(t0) && !sigs[i].ValidityPeriod(time.Now()) { // built, or signed when asked
			t.Errorf("%s: RRSIG not valid at the zone's build time nor now", k)
		}
		n++
	}
	return n
}

func TestASignedZoneAnswersDOQueriesWithSignaturesThatVerify(t *testing.T) {
	z, key := signedZone(t)
	const www = "wWw.lb.example.com." // 0x20
	r := ask(t, z, www, dns.TypeA, withDO, false)
	if len(addrsOf(r.Answer)) != 1 || verify(t, key, r.Answer) != 1 {
		t.Errorf("www A with DO: %v", r.Answer)
	}
	if r := ask(t, z, www, dns.TypeA, nil, false); slices.ContainsFunc(r.Answer, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeRRSIG }) {
		t.Errorf("RRSIGs for a query without DO: %v", r.Answer)
	}
	r = ask(t, z, "lb.example.com.", dns.TypeDNSKEY, withDO, false)
	if verify(t, key, r.Answer) != 1 || r.Answer[0].(*dns.DNSKEY).KeyTag() != key.KeyTag() {
		t.Errorf("DNSKEY: %v", r.Answer)
	}
	for _, q := range []uint16{dns.TypeSOA, dns.TypeNS} {
		if r := ask(t, z, "lb.example.com.", q, withDO, false); verify(t, key, r.Answer) != 1 {
			t.Errorf("%s: %v", dns.TypeToString[q], r.Answer)
		}
	}
	// NODATA: the SOA and the name's NSEC with its real types, signed.
	r = ask(t, z, www, dns.TypeMX, withDO, false)
	var nsec *dns.NSEC
	for _, rr := range r.Ns {
		if n, ok := rr.(*dns.NSEC); ok {
			nsec = n
		}
	}
	if r.Rcode != dns.RcodeSuccess || nsec == nil || verify(t, key, r.Ns) != 2 ||
		!slices.Contains(nsec.TypeBitMap, dns.TypeA) || slices.Contains(nsec.TypeBitMap, dns.TypeMX) {
		t.Errorf("NODATA: rcode %d %v", r.Rcode, r.Ns)
	}
	// A name that does not exist: compact denial (RFC 9824), NOERROR with an NSEC that covers
	// only it, NXNAME in its bitmap.
	r = ask(t, z, "nope.lb.example.com.", dns.TypeA, withDO, false)
	nsec = nil
	for _, rr := range r.Ns {
		if n, ok := rr.(*dns.NSEC); ok {
			nsec = n
		}
	}
	if r.Rcode != dns.RcodeSuccess || nsec == nil || nsec.NextDomain != "\\000.nope.lb.example.com." ||
		!slices.Equal(nsec.TypeBitMap, []uint16{dns.TypeRRSIG, dns.TypeNSEC, typeNXNAME}) || verify(t, key, r.Ns) != 2 {
		t.Errorf("compact denial: rcode %d %v", r.Rcode, r.Ns)
	}
	if r := ask(t, z, "nope.lb.example.com.", dns.TypeA, nil, false); r.Rcode != dns.RcodeNameError {
		t.Errorf("without DO a missing name is NXDOMAIN, got rcode %d", r.Rcode)
	}
	if r := ask(t, z, www, dns.TypeANY, withDO, false); verify(t, key, r.Answer) != 1 {
		t.Errorf("ANY: %v", r.Answer)
	}
}

// Signatures of unchanged RRsets are kept across builds; a changed one is signed anew.
func TestUnchangedRRsetsKeepTheirSignatures(t *testing.T) {
	z, key := signedZone(t)
	again := BuildSigned(state(uplink.DNSPolicyBest), z, t0.Add(3600e9), key)
	k := rrsetKey{"www.lb.example.com.", dns.TypeA}
	if again.signed.sigs[k] != z.signed.sigs[k] {
		t.Errorf("an unchanged RRset was signed again")
	}
	st := state(uplink.DNSPolicyBest)
	st.Uplinks[0].Active, st.Uplinks[1].Active = false, true
	moved := BuildSigned(st, z, t0.Add(3600e9), key)
	if moved.signed.sigs[k] == z.signed.sigs[k] || moved.signed.sigs[k].Verify(key.DNSKEY, moved.rrs["www.lb.example.com."][:1]) != nil {
		t.Errorf("a changed RRset kept its old signature")
	}
}

// In a rollover both keys are published, the DNSKEY RRset is signed by both, everything else
// by the key in use.
func TestARolledInKeyIsPublishedAndSignsTheDNSKEYSet(t *testing.T) {
	dir := t.TempDir()
	old, err := config.GenerateDNSSECKey(filepath.Join(dir, "old.key"), "lb.example.com.")
	if err != nil {
		t.Fatal(err)
	}
	next, err := config.GenerateDNSSECKey(filepath.Join(dir, "next.key"), "lb.example.com.")
	if err != nil {
		t.Fatal(err)
	}
	z := BuildSigned(state(uplink.DNSPolicyBest), nil, t0, old, next)
	r := ask(t, z, "lb.example.com.", dns.TypeDNSKEY, withDO, false)
	var keys []dns.RR
	var sigs []*dns.RRSIG
	for _, rr := range r.Answer {
		switch x := rr.(type) {
		case *dns.DNSKEY:
			keys = append(keys, x)
		case *dns.RRSIG:
			sigs = append(sigs, x)
		}
	}
	if len(keys) != 2 || len(sigs) != 2 {
		t.Fatalf("DNSKEY answer %v: want both keys and a signature by each", r.Answer)
	}
	for _, k := range []config.DNSSECKey{old, next} {
		i := slices.IndexFunc(sigs, func(s *dns.RRSIG) bool { return s.KeyTag == k.KeyTag() })
		if i < 0 || sigs[i].Verify(k.DNSKEY, keys) != nil {
			t.Errorf("the DNSKEY set is not signed by key %d", k.KeyTag())
		}
	}
	if r := ask(t, z, "www.lb.example.com.", dns.TypeA, withDO, false); verify(t, old, r.Answer) != 1 {
		t.Errorf("www A is not signed by the key in use: %v", r.Answer)
	}
}

// Signed answers per second on one core: a DO query for www (signatures made when the zone was
// built), and a DO query for a new random name (compact denial signed when asked).
func BenchmarkSignedAnswer(b *testing.B) {
	key, err := config.GenerateDNSSECKey(filepath.Join(b.TempDir(), "k"), "lb.example.com.")
	if err != nil {
		b.Fatal(err)
	}
	z := BuildSigned(state(uplink.DNSPolicyBest), nil, t0, key)
	q := new(dns.Msg)
	q.SetQuestion("www.lb.example.com.", dns.TypeA)
	q.SetEdns0(1232, true)
	wire, _ := q.Pack()
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if Respond(z, wire, false, false) == nil {
				b.Fatal("no answer")
			}
		}
	})
	b.Run("unsigned", func(b *testing.B) {
		plain := Build(state(uplink.DNSPolicyBest), nil, t0)
		for b.Loop() {
			Respond(plain, wire, false, false)
		}
	})
	b.Run("denial-of-a-new-name", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			q.SetQuestion(fmt.Sprintf("r%d.lb.example.com.", i), dns.TypeA)
			w, _ := q.Pack()
			Respond(z, w, false, false)
		}
	})
}

// A slipped (rate-limited) answer is sent empty and signs nothing: a flood of random names
// costs no signature beyond the rate limit.
func TestASlippedAnswerSignsNothing(t *testing.T) {
	z, _ := signedZone(t)
	q := new(dns.Msg)
	q.SetQuestion("random123.lb.example.com.", dns.TypeA)
	q.SetEdns0(1232, true)
	wire, _ := q.Pack()
	r := new(dns.Msg)
	if err := r.Unpack(Respond(z, wire, false, true)); err != nil || !r.Truncated || len(r.Ns) != 0 {
		t.Fatalf("%v %v", r, err)
	}
	if n := len(z.signed.onTheFly); n != 0 {
		t.Errorf("%d names signed for a slipped answer", n)
	}
}
