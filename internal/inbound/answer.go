package inbound

import (
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Sizes of RFC 6891 and the 2020 DNS flag day: the largest UDP response uplinkd sends, and
// what a query without EDNS gets.
const (
	maxUDPSize     = 1232
	minUDPSize     = 512
	maxTCPResponse = 65535
)

// Respond answers one wire-format query from z: nil when the query gets no answer at all
// (too short to carry an ID, or itself a response). tcp lifts the UDP size limit; truncate
// answers with only the header, the question and TC (the rate limiter's slip), so a real
// client retries over TCP. z may be nil (nothing published): every question is refused.
func Respond(z *Zone, query []byte, tcp, truncate bool) []byte {
	return RespondTo(z, query, netip.Addr{}, tcp, truncate)
}

// RespondTo is Respond for a query from client (its resolver's address; invalid: unknown),
// which, with the query's EDNS Client Subnet, picks a nearest-policy name's site.
func RespondTo(z *Zone, query []byte, client netip.Addr, tcp, truncate bool) []byte {
	if len(query) < 12 || query[2]&0x80 != 0 { // no header, or QR: never answer a response
		return nil
	}
	req := new(dns.Msg)
	if err := req.Unpack(query); err != nil {
		return formErr(query)
	}
	// A slipped answer is sent empty: it must cost no signature (a flood of random names).
	resp, size := answer(z, req, client.Unmap(), tcp, !truncate)
	if truncate {
		resp.Truncated = true
		resp.Answer, resp.Ns, resp.Extra = nil, nil, onlyOPT(resp.Extra)
	}
	out, err := resp.Pack()
	if err != nil {
		return formErr(query)
	}
	if len(out) > size { // the glue goes first; then nothing but TC (never a partial RRset)
		resp.Extra = onlyOPT(resp.Extra)
		if out, err = resp.Pack(); err != nil || len(out) > size {
			resp.Truncated = true
			resp.Answer, resp.Ns = nil, nil
			if out, err = resp.Pack(); err != nil {
				return nil
			}
		}
	}
	return out
}

// answer builds the response to req from client and the size it must fit in; sign false
// leaves DNSSEC records out (the response is sent truncated, empty).
func answer(z *Zone, req *dns.Msg, client netip.Addr, tcp, sign bool) (*dns.Msg, int) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Compress = true
	resp.RecursionAvailable = false
	size := minUDPSize
	if tcp {
		size = maxTCPResponse
	}
	var opts int
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	var ecs *dns.EDNS0_SUBNET
	do := false // the client wants DNSSEC records
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
		resp.SetEdns0(maxUDPSize, opt.Do()) // RFC 3225 3: DO is copied into the response
		if !tcp {
			size = min(max(int(opt.UDPSize()), minUDPSize), maxUDPSize)
		}
		if opt.Version() != 0 { // RFC 6891 6.1.3: BADVERS, and nothing else
			resp.Rcode = dns.RcodeBadVers
			return resp, size
		}
		var bad bool
		if ecs, bad = clientSubnet(opt); bad { // RFC 7871 7.1.1
			resp.Rcode = dns.RcodeFormatError
			return resp, size
		}
	}
	scope := 0 // how much of the client's subnet the answer depended on
	defer func() {
		if ecs != nil { // RFC 7871 7.2.1: the family, source and address echoed, with the scope
			echo := *ecs
			echo.SourceScope = uint8(scope)
			resp.IsEdns0().Option = append(resp.IsEdns0().Option, &echo)
		}
	}()
	switch {
	case opts > 1 || len(req.Question) != 1:
		resp.Rcode = dns.RcodeFormatError
		return resp, size
	case req.Opcode != dns.OpcodeQuery:
		resp.Rcode = dns.RcodeNotImplemented
		return resp, size
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if z == nil || q.Qclass != dns.ClassINET || !dns.IsSubDomain(z.Origin, name) ||
		q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		resp.Rcode = dns.RcodeRefused // not ours, and no zone transfers
		return resp, size
	}
	resp.Authoritative = true
	sg := z.signed // the zone's signatures, for a client that wants them (DO)
	if !do || !sign {
		sg = nil
	}
	// sigOf appends to rrs the signature of owner's RRset of type t (variant v), if wanted.
	sigOf := func(rrs []dns.RR, owner string, t uint16, v *nearestRRs, as string) []dns.RR {
		if sig := z.sigFor(owner, t, v); sg != nil && sig != nil {
			return append(rrs, renamed(sig, as))
		}
		return rrs
	}
	if !z.exists[name] {
		resp.Ns = sigOf([]dns.RR{z.negativeSOA()}, z.Origin, dns.TypeSOA, nil, z.Origin)
		if sg == nil {
			resp.Rcode = dns.RcodeNameError
			return resp, size
		}
		// Compact denial (RFC 9824): NODATA with an NSEC that covers only this name, NXNAME in
		// its bitmap, signed now (cached): no zone walking, no precomputed chain.
		nsec, sig := sg.denial(name, z.ttl)
		resp.Ns = append(resp.Ns, renamed(nsec, q.Name))
		if sig != nil {
			resp.Ns = append(resp.Ns, renamed(sig, q.Name))
		}
		return resp, size
	}
	// Records are owned by the name exactly as asked (0x20: resolvers randomise its case).
	switch {
	case q.Qtype == dns.TypeANY: // RFC 8482: one small record instead of everything
		hinfo := dns.RR(&dns.HINFO{Hdr: named(z.hdr(q.Name, dns.TypeHINFO), q.Name), Cpu: "RFC8482"})
		resp.Answer = []dns.RR{hinfo}
		if sg != nil {
			if rr, sig := sg.synthesized(hinfo); sig != nil {
				resp.Answer = []dns.RR{renamed(rr, q.Name), renamed(sig, q.Name)}
			}
		}
	case name == z.Origin && q.Qtype == dns.TypeSOA:
		resp.Answer = sigOf([]dns.RR{renamed(z.soa, q.Name)}, name, dns.TypeSOA, nil, q.Name)
	case name == z.Origin && q.Qtype == dns.TypeDNSKEY && z.signed != nil:
		for _, rr := range z.signed.dnskey {
			resp.Answer = append(resp.Answer, renamed(rr, q.Name))
		}
		for _, sig := range z.signed.dnskeySigs { // every key's, in a rollover
			if sg != nil {
				resp.Answer = append(resp.Answer, renamed(sig, q.Name))
			}
		}
	case name == z.Origin && q.Qtype == dns.TypeNS:
		for _, rr := range z.ns {
			ns := rr.(*dns.NS).Ns
			resp.Answer = append(resp.Answer, renamed(rr, q.Name))
			resp.Extra = append(resp.Extra, z.rrs[ns]...)
			for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
				resp.Extra = sigOf(resp.Extra, ns, t, nil, ns)
			}
		}
		resp.Answer = sigOf(resp.Answer, name, dns.TypeNS, nil, q.Name)
	default:
		rrs, variant, bits := z.recordsFor(name, clientPrefix(ecs, client))
		scope = bits
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				resp.Answer = append(resp.Answer, renamed(rr, q.Name))
			}
		}
		if len(resp.Answer) > 0 {
			resp.Answer = sigOf(resp.Answer, name, q.Qtype, variant, q.Name)
		}
	}
	if len(resp.Answer) == 0 { // NODATA (RFC 2308), with the name's NSEC when signed
		resp.Ns = sigOf([]dns.RR{z.negativeSOA()}, z.Origin, dns.TypeSOA, nil, z.Origin)
		if sg != nil && sg.nsec[name] != nil {
			resp.Ns = append(resp.Ns, renamed(sg.nsec[name], q.Name))
			resp.Ns = sigOf(resp.Ns, name, dns.TypeNSEC, nil, q.Name)
		}
	}
	if opt := resp.IsEdns0(); opt != nil { // the OPT record goes last
		resp.Extra = append(onlyOthers(resp.Extra), opt)
	}
	return resp, size
}

// negativeSOA is the SOA of a negative answer: its TTL is the negative-caching time.
func (z *Zone) negativeSOA() dns.RR {
	soa := *z.soa
	soa.Hdr.Ttl = min(z.soa.Hdr.Ttl, z.soa.Minttl)
	return &soa
}

func named(h dns.RR_Header, name string) dns.RR_Header { h.Name = name; return h }

// renamed is a copy of rr owned by name (the same name in the query's case).
func renamed(rr dns.RR, name string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = name
	return c
}

func onlyOPT(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

func onlyOthers(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
}

// formErr is FORMERR for a query that does not parse: its ID and opcode, nothing else.
func formErr(query []byte) []byte {
	out := make([]byte, 12)
	copy(out, query[:2])
	flags := uint16(0x8000) | binary.BigEndian.Uint16(query[2:4])&0x7800 | dns.RcodeFormatError
	binary.BigEndian.PutUint16(out[2:4], flags)
	return out
}

// clientSubnet is the query's EDNS Client Subnet option (RFC 7871), nil when it has none; bad
// when it is malformed: more than one, a scope in a query, or address bits beyond the source
// prefix (the family and lengths are checked when the message is unpacked).
func clientSubnet(opt *dns.OPT) (ecs *dns.EDNS0_SUBNET, bad bool) {
	for _, o := range opt.Option {
		s, ok := o.(*dns.EDNS0_SUBNET)
		if !ok {
			continue
		}
		if ecs != nil || s.SourceScope != 0 {
			return nil, true
		}
		if s.Family == 0 { // what dig sends for +subnet=0: "do not use my address"
			ecs = s
			continue
		}
		a, ok := netip.AddrFromSlice(s.Address)
		if !ok {
			return nil, true
		}
		if a = a.Unmap(); (s.Family == 1) != a.Is4() {
			return nil, true
		}
		p, err := a.Prefix(int(s.SourceNetmask))
		if err != nil || p.Addr() != a {
			return nil, true
		}
		ecs = s
	}
	return ecs, false
}

// clientPrefix is the network a nearest-policy answer is chosen for: the client subnet, else
// the resolver's own address; invalid when neither says (ECS source 0: "do not use mine").
func clientPrefix(ecs *dns.EDNS0_SUBNET, client netip.Addr) netip.Prefix {
	if ecs != nil {
		if ecs.SourceNetmask == 0 {
			return netip.Prefix{}
		}
		a, _ := netip.AddrFromSlice(ecs.Address)
		return netip.PrefixFrom(a.Unmap(), int(ecs.SourceNetmask))
	}
	if !client.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(client, client.BitLen())
}
