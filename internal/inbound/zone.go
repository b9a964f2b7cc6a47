// Package inbound is uplinkd's authoritative DNS server: it answers for the names the business
// publishes ([dns]) with the addresses of the uplinks that are alive, so that customers reach
// the business through whichever provider works. The zone is rebuilt from every
// dataplane.State, in the same decision that moves the routes.
package inbound

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// Zone is one immutable view of the published zone. Safe for concurrent readers.
type Zone struct {
	Origin string // "lb.example.com."
	Serial uint32
	ttl    uint32
	soa    *dns.SOA
	ns     []dns.RR            // the apex NS RRset
	rrs    map[string][]dns.RR // owner (lower case) → its A, AAAA records (names and NS glue)
	// exists holds every name in the zone, empty non-terminals included: a name that is not
	// here is NXDOMAIN, one that is but lacks the type is NODATA.
	exists map[string]bool
	// Published is what each published name answers, for logs and the status: "www.lb…" →
	// addresses.
	Published map[string][]netip.Addr
	rateLimit int
	// nearest are, per owner of a name under the nearest policy, each site's records and the
	// client networks it is nearest to; rrs holds the records of a client in none of them.
	nearest map[string][]nearestRRs
	// signed holds the zone's signatures when [dns] dnssec names a key; nil: unsigned.
	signed *signing
}

// nearestRRs is one site's records for a name, and the client networks nearest to it.
type nearestRRs struct {
	site     string
	networks []netip.Prefix
	rrs      []dns.RR
	sigs     map[uint16]*dns.RRSIG // by type, when the zone is signed
}

// Build returns the zone of s. The serial is prev's when nothing changed, else one more than
// prev's (and at least now in Unix seconds, so a restarted daemon's serial still grows).
// Build returns nil when s publishes nothing.
func Build(s dataplane.State, prev *Zone, now time.Time) *Zone { return BuildSigned(s, prev, now) }

// BuildSigned is Build, the zone signed with keys[0] when there is one, keys[1] (a key rolled
// in) published beside it.
func BuildSigned(s dataplane.State, prev *Zone, now time.Time, keys ...config.DNSSECKey) *Zone {
	d := s.DNS
	if !d.Enabled() {
		return nil
	}
	z := &Zone{Origin: d.Zone, ttl: uint32(d.TTL / time.Second), rrs: map[string][]dns.RR{},
		exists: map[string]bool{}, Published: map[string][]netip.Addr{}, rateLimit: d.RateLimit}
	z.addName(d.Zone)
	if d.Multisite() { // every site's name servers, the same set at every site
		for _, site := range d.Sites {
			for i, ns := range site.NSNames(d.Zone) {
				z.ns = append(z.ns, &dns.NS{Hdr: z.hdr(d.Zone, dns.TypeNS), Ns: ns})
				z.addAddrs(ns, site.NameServers[i:i+1])
			}
		}
	} else {
		for _, u := range s.Uplinks {
			if !u.Public4.IsValid() && !u.Public6.IsValid() {
				continue
			}
			ns := uplink.NSName(u.Name, d.Zone)
			z.ns = append(z.ns, &dns.NS{Hdr: z.hdr(d.Zone, dns.TypeNS), Ns: ns})
			z.addAddrs(ns, []netip.Addr{u.Public4, u.Public6})
		}
	}
	for _, n := range d.Names {
		a := s.Answer(n)
		z.Published[n.Name] = a.Addrs
		ttl := z.ttl
		if a.Fallback { // a status page elsewhere, with its own (short) TTL: resolvers come back soon after a server does
			ttl = uint32(d.Check.FallbackTTL / time.Second)
		}
		z.addAddrsTTL(n.Name, a.Addrs, ttl)
		for _, s := range a.Nearest {
			if z.nearest == nil {
				z.nearest = map[string][]nearestRRs{}
			}
			v := &Zone{Origin: z.Origin, ttl: z.ttl, rrs: map[string][]dns.RR{}, exists: map[string]bool{}}
			v.addAddrsTTL(n.Name, s.Addrs, ttl)
			z.nearest[n.Name] = append(z.nearest[n.Name], nearestRRs{site: s.Site, networks: s.Networks, rrs: v.rrs[n.Name]})
		}
	}
	mname := "ns." + d.Zone
	if len(z.ns) > 0 {
		mname = z.ns[0].(*dns.NS).Ns
	}
	z.soa = &dns.SOA{Hdr: z.hdr(d.Zone, dns.TypeSOA), Ns: mname, Mbox: "hostmaster." + d.Zone,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: z.ttl}
	z.Serial = uint32(now.Unix())
	if prev != nil {
		if prev.sameContents(z) {
			z.Serial = prev.Serial
		} else if next := prev.Serial + 1; int32(next-z.Serial) > 0 {
			z.Serial = next
		}
	}
	z.soa.Serial = z.Serial
	switch len(keys) {
	case 1:
		z.sign(keys[0], nil, prev, now)
	case 2:
		z.sign(keys[0], &keys[1], prev, now)
	}
	return z
}

func (z *Zone) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: z.ttl}
}

// addName records name and every name between it and the origin.
func (z *Zone) addName(name string) {
	for n := name; dns.IsSubDomain(z.Origin, n); {
		z.exists[n] = true
		i, end := dns.NextLabel(n, 0)
		if end || n == z.Origin {
			return
		}
		n = n[i:]
	}
}

func (z *Zone) addAddrs(owner string, addrs []netip.Addr) { z.addAddrsTTL(owner, addrs, z.ttl) }

// addAddrsTTL adds owner's A and AAAA records with TTL ttl.
func (z *Zone) addAddrsTTL(owner string, addrs []netip.Addr, ttl uint32) {
	z.addName(owner)
	hdr := func(t uint16) dns.RR_Header { h := z.hdr(owner, t); h.Ttl = ttl; return h }
	for _, a := range addrs {
		switch {
		case a.Is4():
			z.rrs[owner] = append(z.rrs[owner], &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
		case a.Is6():
			z.rrs[owner] = append(z.rrs[owner], &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
}

// sameContents says whether z and o answer every question alike (the serial aside).
func (z *Zone) sameContents(o *Zone) bool { return z.text() == o.text() }

func (z *Zone) text() string {
	var b strings.Builder
	b.WriteString(z.Origin)
	for _, rr := range z.ns {
		b.WriteString(rr.String())
	}
	for _, owner := range slices.Sorted(maps.Keys(z.rrs)) {
		for _, rr := range z.rrs[owner] {
			b.WriteString(rr.String())
		}
	}
	for _, owner := range slices.Sorted(maps.Keys(z.nearest)) {
		for _, v := range z.nearest[owner] {
			b.WriteString(v.site)
			for _, rr := range v.rrs {
				b.WriteString(rr.String())
			}
		}
	}
	return b.String()
}

// recordsFor are owner's records for a client in the network client (invalid: unknown), the
// site's variant they come from (nil: everyone's), and the ECS scope they hold for: the
// longest of the nearest sites' networks that holds the client, the client's whole prefix when
// the name is nearest but none does, 0 when the records do not depend on the client.
func (z *Zone) recordsFor(owner string, client netip.Prefix) ([]dns.RR, *nearestRRs, int) {
	variants, ok := z.nearest[owner]
	if !ok || !client.IsValid() {
		return z.rrs[owner], nil, 0
	}
	var best *nearestRRs
	bits := -1
	for i, v := range variants {
		for _, n := range v.networks {
			if n.Addr().Is4() == client.Addr().Is4() && n.Contains(client.Addr()) && n.Bits() > bits {
				best, bits = &variants[i], n.Bits()
			}
		}
	}
	if best == nil {
		return z.rrs[owner], nil, client.Bits()
	}
	return best.rrs, best, bits
}

// sigFor is the signature of owner's RRset of type t as recordsFor gave it (variant v), nil
// when the zone is unsigned.
func (z *Zone) sigFor(owner string, t uint16, v *nearestRRs) *dns.RRSIG {
	switch {
	case z.signed == nil:
		return nil
	case v != nil:
		return v.sigs[t]
	}
	return z.signed.sigs[rrsetKey{owner, t}]
}
