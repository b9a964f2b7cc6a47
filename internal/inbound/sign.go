package inbound

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// Online signing (DNSSEC): every RRset is signed when the zone is built, with one combined
// signing key (ECDSA P-256); a signature is kept while its RRset is unchanged and it has more
// than resignBefore left. Denial is compact (RFC 9824): a name that does not exist gets an NSEC
// that covers only it, with NXNAME in its bitmap, signed when asked (cached, bounded).
const (
	sigBackdate  = time.Hour          // inception: clocks of validators a little behind
	sigValidity  = 7 * 24 * time.Hour // expiration
	resignBefore = 3 * 24 * time.Hour // re-signed when less is left
	typeNXNAME   = 128                // RFC 9824: no constant in miekg/dns v1
	maxOnTheFly  = 4096               // cached signatures of names that do not exist
)

// rrsetKey names one RRset: its owner (lower case) and type.
type rrsetKey struct {
	owner string
	rtype uint16
}

// signing is a signed zone's keys and signatures.
type signing struct {
	key    config.DNSSECKey  // signs every RRset
	next   *config.DNSSECKey // a key rolled in: published, and signs the DNSKEY RRset too
	dnskey []dns.RR
	// dnskeySigs are the DNSKEY RRset's signatures: the key's, and the next key's in a rollover.
	dnskeySigs []*dns.RRSIG
	sigs       map[rrsetKey]*dns.RRSIG // every RRset of the zone's
	nsec       map[string]*dns.NSEC    // every existing name's, for NODATA
	texts      map[rrsetKey]string     // what each signature covers, to keep it while unchanged

	mu       sync.Mutex             // guards onTheFly: filled while answering
	onTheFly map[rrsetKey][2]dns.RR // NSEC or HINFO, and its RRSIG, of names asked
}

// sign signs z with key (and publishes next beside it, when rolling it in), keeping prev's
// signatures of unchanged RRsets that have long enough left.
func (z *Zone) sign(key config.DNSSECKey, next *config.DNSSECKey, prev *Zone, now time.Time) {
	s := &signing{key: key, next: next, sigs: map[rrsetKey]*dns.RRSIG{}, nsec: map[string]*dns.NSEC{}, texts: map[rrsetKey]string{},
		onTheFly: map[rrsetKey][2]dns.RR{}}
	for _, k := range []*config.DNSSECKey{&key, next} {
		if k != nil {
			dk := *k.DNSKEY
			dk.Hdr.Name, dk.Hdr.Ttl = z.Origin, z.ttl
			s.dnskey = append(s.dnskey, &dk)
		}
	}
	var old *signing
	if prev != nil && prev.signed != nil && prev.signed.key.KeyTag() == key.KeyTag() {
		old = prev.signed
	}
	sets := map[rrsetKey][]dns.RR{
		{z.Origin, dns.TypeSOA}:    {z.soa},
		{z.Origin, dns.TypeNS}:     z.ns,
		{z.Origin, dns.TypeDNSKEY}: s.dnskey,
	}
	for owner, rrs := range z.rrs {
		for _, rr := range rrs {
			k := rrsetKey{owner, rr.Header().Rrtype}
			sets[k] = append(sets[k], rr)
		}
	}
	types := map[string][]uint16{}
	for k := range sets {
		types[k.owner] = append(types[k.owner], k.rtype)
	}
	for owner := range z.exists {
		n := &dns.NSEC{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: z.ttl},
			NextDomain: "\\000." + owner, TypeBitMap: bitmap(append(types[owner], dns.TypeRRSIG, dns.TypeNSEC))}
		s.nsec[owner] = n
		sets[rrsetKey{owner, dns.TypeNSEC}] = []dns.RR{n}
	}
	for k, rrs := range sets {
		text := rrsetText(rrs)
		if old != nil && old.texts[k] == text {
			if sig := old.sigs[k]; sig != nil && time.Unix(int64(sig.Expiration), 0).Sub(now) > resignBefore {
				s.sigs[k], s.texts[k] = sig, text
				continue
			}
		}
		if sig := s.rrsig(rrs, now); sig != nil {
			s.sigs[k], s.texts[k] = sig, text
		}
	}
	// The DNSKEY RRset is signed by every key in it: after the parent's DS is swapped to the
	// next key, validators trust the set through it, and the key in use through the set.
	if sig := s.sigs[rrsetKey{z.Origin, dns.TypeDNSKEY}]; sig != nil {
		s.dnskeySigs = []*dns.RRSIG{sig}
	}
	if next != nil {
		if sig := s.rrsigBy(*next, s.dnskey, now); sig != nil {
			s.dnskeySigs = append(s.dnskeySigs, sig)
		}
	}
	for _, vs := range z.nearest { // each site's records of a nearest-policy name
		for i := range vs {
			v := &vs[i]
			v.sigs = map[uint16]*dns.RRSIG{}
			byType := map[uint16][]dns.RR{}
			for _, rr := range v.rrs {
				byType[rr.Header().Rrtype] = append(byType[rr.Header().Rrtype], rr)
			}
			for t, rrs := range byType {
				if sig := s.rrsig(rrs, now); sig != nil {
					v.sigs[t] = sig
				}
			}
		}
	}
	z.signed = s
}

// rrsig signs rrs now; nil if the key cannot sign (logged by the caller's absence of RRSIGs:
// a validator then fails the answer, which is what a broken key must do).
func (s *signing) rrsig(rrs []dns.RR, now time.Time) *dns.RRSIG { return s.rrsigBy(s.key, rrs, now) }

func (s *signing) rrsigBy(k config.DNSSECKey, rrs []dns.RR, now time.Time) *dns.RRSIG {
	h := rrs[0].Header()
	sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: h.Ttl},
		Algorithm: dns.ECDSAP256SHA256, KeyTag: k.KeyTag(), SignerName: s.dnskey[0].Header().Name,
		Inception: uint32(now.Add(-sigBackdate).Unix()), Expiration: uint32(now.Add(sigValidity).Unix())}
	if err := sig.Sign(k.Signer, rrs); err != nil {
		return nil
	}
	return sig
}

// denial is the compact denial of a name that does not exist (RFC 9824): an NSEC owned by it,
// covering only it, with NXNAME, and its signature; cached, bounded.
func (s *signing) denial(name string, ttl uint32) (dns.RR, dns.RR) {
	return s.cached(rrsetKey{name, dns.TypeNSEC}, func() dns.RR {
		return &dns.NSEC{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
			NextDomain: "\\000." + name, TypeBitMap: []uint16{dns.TypeRRSIG, dns.TypeNSEC, typeNXNAME}}
	})
}

// synthesized is rr (the RFC 8482 HINFO of an ANY query) with its signature, cached.
func (s *signing) synthesized(rr dns.RR) (dns.RR, dns.RR) {
	h := rr.Header()
	return s.cached(rrsetKey{strings.ToLower(h.Name), h.Rrtype}, func() dns.RR {
		c := dns.Copy(rr)
		c.Header().Name = strings.ToLower(h.Name)
		return c
	})
}

func (s *signing) cached(k rrsetKey, build func() dns.RR) (dns.RR, dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.onTheFly[k]; ok {
		return v[0], v[1]
	}
	rr := build()
	sig := s.rrsig([]dns.RR{rr}, time.Now())
	if sig == nil {
		return rr, nil
	}
	if len(s.onTheFly) >= maxOnTheFly { // a flood of random names: start over, bounded
		clear(s.onTheFly)
	}
	s.onTheFly[k] = [2]dns.RR{rr, sig}
	return rr, sig
}

// bitmap is types sorted, without repeats, as an NSEC's type bitmap.
func bitmap(types []uint16) []uint16 {
	slices.Sort(types)
	return slices.Compact(types)
}

func rrsetText(rrs []dns.RR) string {
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	return b.String()
}
