package connmark

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// stmt is one statement of a rule: its nft text and its kernel expressions.
type stmt interface {
	text() string
	exprs(b *batch) []expr.Any
}

// kv is one element of a set or map: an interface name, a mark or a range
// of numbers, and for a verdict map the chain to go to.
type kv struct {
	key      string
	mark     uint32
	from, to uint32
	chain    string
}

const (
	protoICMP   = unix.IPPROTO_ICMP
	protoTCP    = unix.IPPROTO_TCP
	protoUDP    = unix.IPPROTO_UDP
	protoICMPv6 = unix.IPPROTO_ICMPV6
)

var protoNames = map[uint8]string{protoICMP: "icmp", protoTCP: "tcp", protoUDP: "udp", protoICMPv6: "ipv6-icmp"}

const reg = 1 // every rule is a chain of loads and compares in register 1

func ne32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }
func be32(v uint32) []byte { return binaryutil.BigEndian.PutUint32(v) }

func ifnameBytes(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

func gotoVerdict(chain string) *expr.Verdict {
	return &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain}
}

func setBody(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return "{ " + strings.Join(items, ", ") + " }"
}

// markIsOurs: the packet already carries an uplink mark.
type markIsOurs struct{}

func (markIsOurs) text() string {
	return fmt.Sprintf("meta mark & %#08x != 0x00000000", MarkMask)
}

func (markIsOurs) exprs(*batch) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: ne32(MarkMask), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: ne32(0)},
	}
}

// ctMarkUnset: the connection has no uplink mark yet.
type ctMarkUnset struct{}

func (ctMarkUnset) text() string { return ctMarkIs{}.text() }

func (ctMarkUnset) exprs(b *batch) []expr.Any { return ctMarkIs{}.exprs(b) }

// ctMarkIs matches connections whose uplink bits are mark (0: none yet).
type ctMarkIs struct{ mark uint32 }

func (m ctMarkIs) text() string { return fmt.Sprintf("ct mark & %#08x == 0x%08x", MarkMask, m.mark) }

func (m ctMarkIs) exprs(*batch) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: ne32(MarkMask), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: ne32(m.mark)},
	}
}

// setCtMark writes the uplink bits of the connection mark, keeping the others.
type setCtMark struct{ mark uint32 }

func (s setCtMark) text() string {
	return fmt.Sprintf("ct mark set ct mark & %#08x | %#08x", ^MarkMask, s.mark)
}

func (s setCtMark) exprs(*batch) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: ne32(^MarkMask), Xor: ne32(s.mark)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: reg, SourceRegister: true},
	}
}

// setMetaMark writes the uplink bits of the packet mark, keeping the others.
type setMetaMark struct{ mark uint32 }

func (s setMetaMark) text() string {
	return fmt.Sprintf("meta mark set meta mark & %#08x | %#08x", ^MarkMask, s.mark)
}

func (s setMetaMark) exprs(*batch) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: ne32(^MarkMask), Xor: ne32(s.mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg, SourceRegister: true},
	}
}

// ctDirection matches the packet's direction in its connection.
type ctDirection struct{ dir string } // "original" or "reply"

func (c ctDirection) text() string { return "ct direction " + c.dir }

func (c ctDirection) exprs(*batch) []expr.Any {
	d := byte(0)
	if c.dir == "reply" {
		d = 1
	}
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{d}},
	}
}

// fibDaddrLocal: the destination is one of the gateway's own addresses.
type fibDaddrLocal struct{}

func (fibDaddrLocal) text() string { return "fib daddr type local" }

func (fibDaddrLocal) exprs(*batch) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: ne32(unix.RTN_LOCAL)},
	}
}

// ctEstablished: the packet belongs to an established connection (not a related ICMP error,
// which a router can send when the path beyond it is dead).
type ctEstablished struct{}

func (ctEstablished) text() string { return "ct state established" }

func (ctEstablished) exprs(*batch) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: ne32(expr.CtStateBitESTABLISHED), Xor: ne32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: ne32(0)},
	}
}

// counterRef counts the packet in a named counter of the table.
type counterRef struct{ name string }

func (c counterRef) text() string { return fmt.Sprintf("counter name %q", c.name) }

func (c counterRef) exprs(*batch) []expr.Any {
	return []expr.Any{&expr.Objref{Type: 1, Name: c.name}} // 1: NFT_OBJECT_COUNTER
}

// fibSaddrLocal: the source is one of the gateway's own addresses (a local packet).
type fibSaddrLocal struct{}

func (fibSaddrLocal) text() string { return "fib saddr type local" }

func (fibSaddrLocal) exprs(*batch) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg, FlagSADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: ne32(unix.RTN_LOCAL)},
	}
}

// snatToSaddr source-NATs a packet of one family to its own source address: a null binding.
type snatToSaddr struct{ family int }

func (s snatToSaddr) text() string {
	if s.family == 6 {
		return "snat ip6 to ip6 saddr"
	}
	return "snat ip to ip saddr"
}

func (s snatToSaddr) exprs(*batch) []expr.Any {
	off, n, fam := uint32(12), uint32(4), uint32(unix.NFPROTO_IPV4)
	if s.family == 6 {
		off, n, fam = 8, 16, unix.NFPROTO_IPV6
	}
	ex := nfprotoExprs(s.family)
	return append(ex,
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam, RegAddrMin: reg})
}

// nfproto matches one address family.
type nfproto struct{ family int }

func (m nfproto) text() string {
	if m.family == 6 {
		return "meta nfproto ipv6"
	}
	return "meta nfproto ipv4"
}

func (m nfproto) exprs(*batch) []expr.Any { return nfprotoExprs(m.family) }

// snatPrefix source-NATs an IPv6 packet to the same interface identifier in another prefix
// (nft's "snat ip6 prefix to", NF_NAT_RANGE_NETMAP: kernel 5.8 or later).
type snatPrefix struct{ to netip.Prefix }

func (s snatPrefix) text() string { return "snat ip6 prefix to " + s.to.String() }

func (s snatPrefix) exprs(*batch) []expr.Any {
	last := lastAddr(s.to)
	return []expr.Any{
		&expr.Immediate{Register: reg, Data: s.to.Addr().AsSlice()},
		&expr.Immediate{Register: reg + 1, Data: last.AsSlice()},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: reg, RegAddrMax: reg + 1, Prefix: true},
	}
}

// ifnameIn matches an interface name (iifname, oifname or the outgoing
// interface of a route lookup, "fib daddr oifname") against a list.
type ifnameIn struct {
	meta   string
	name   string // one name, or
	set    string // a named set of them
	invert bool
}

func (m ifnameIn) text() string {
	op := ""
	if m.invert {
		op = "!= "
	}
	if m.set != "" {
		return m.meta + " " + op + "@" + m.set
	}
	return fmt.Sprintf("%s %s%q", m.meta, op, m.name)
}

func (m ifnameIn) exprs(b *batch) []expr.Any {
	var load expr.Any
	switch m.meta {
	case "iifname":
		load = &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg}
	case "oifname":
		load = &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg}
	default: // fib daddr oifname
		load = &expr.Fib{Register: reg, FlagDADDR: true, ResultOIFNAME: true}
	}
	if m.set == "" {
		op := expr.CmpOpEq
		if m.invert {
			op = expr.CmpOpNeq
		}
		return []expr.Any{load, &expr.Cmp{Op: op, Register: reg, Data: ifnameBytes(m.name)}}
	}
	s := b.named[m.set]
	return []expr.Any{load, &expr.Lookup{SourceRegister: reg, SetID: s.ID, SetName: s.Name, Invert: m.invert}}
}

// vmapRef goes to the chain a named verdict map gives for the incoming
// interface name or the connection's uplink mark.
type vmapRef struct {
	key string // "iifname" or "ct mark"
	set string
}

func (m vmapRef) text() string {
	if m.key == "ct mark" {
		return fmt.Sprintf("ct mark & %#08x vmap @%s", MarkMask, m.set)
	}
	return m.key + " vmap @" + m.set
}

func (m vmapRef) exprs(b *batch) []expr.Any {
	var ex []expr.Any
	if m.key == "ct mark" {
		ex = []expr.Any{
			&expr.Ct{Key: expr.CtKeyMARK, Register: reg},
			&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: ne32(MarkMask), Xor: ne32(0)},
		}
	} else {
		ex = []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg}}
	}
	s := b.named[m.set]
	return append(ex, &expr.Lookup{SourceRegister: reg, IsDestRegSet: true, SetID: s.ID, SetName: s.Name})
}

// pickVmap draws a number in [0, mod) — at random, or by a hash of the
// source address of the given family — and goes to the chain whose range
// holds it.
type pickVmap struct {
	family  int // 0: numgen random; 4 or 6: jhash of the source address
	proto   int // numgen only: 4 or 6 to pick for that family alone; 0 both
	mod     uint32
	entries []kv
}

func (m pickVmap) text() string {
	items := make([]string, len(m.entries))
	for i, e := range m.entries {
		r := fmt.Sprint(e.from)
		if e.to != e.from {
			r = fmt.Sprintf("%d-%d", e.from, e.to)
		}
		items[i] = r + " : goto " + e.chain
	}
	src := fmt.Sprintf("numgen random mod %d", m.mod)
	switch m.proto {
	case 4:
		src = "meta nfproto ipv4 " + src
	case 6:
		src = "meta nfproto ipv6 " + src
	}
	switch m.family {
	case 4:
		src = fmt.Sprintf("jhash ip saddr mod %d seed %#x", m.mod, affinitySeed)
	case 6:
		src = fmt.Sprintf("jhash ip6 saddr mod %d seed %#x", m.mod, affinitySeed)
	}
	return src + " vmap { " + strings.Join(items, ", ") + " }"
}

func (m pickVmap) exprs(b *batch) []expr.Any {
	// Interval sets compare keys as big-endian bytes, so the host-order
	// number is converted first, as nft does.
	var elems []nftables.SetElement
	for _, e := range m.entries {
		elems = append(elems,
			nftables.SetElement{Key: be32(e.from), VerdictData: gotoVerdict(e.chain)},
			nftables.SetElement{Key: be32(e.to + 1), IntervalEnd: true})
	}
	s := b.anonSet(&nftables.Set{KeyType: nftables.TypeInteger, IsMap: true, DataType: nftables.TypeVerdict, Interval: true}, elems)
	var ex []expr.Any
	switch m.family {
	case 0:
		if m.proto != 0 {
			ex = append(ex, nfprotoExprs(m.proto)...)
		}
		ex = append(ex, &expr.Numgen{Register: reg, Modulus: m.mod, Type: unix.NFT_NG_RANDOM})
	default:
		ex = append(ex, nfprotoExprs(m.family)...)
		off, n := uint32(12), uint32(4)
		if m.family == 6 {
			off, n = 8, 16
		}
		ex = append(ex,
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Hash{SourceRegister: reg, DestRegister: reg, Length: n, Modulus: m.mod, Seed: affinitySeed, Type: expr.HashTypeJenkins})
	}
	return append(ex,
		&expr.Byteorder{SourceRegister: reg, DestRegister: reg, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Lookup{SourceRegister: reg, IsDestRegSet: true, SetID: s.ID, SetName: s.Name})
}

// affinitySeed is fixed (and nonzero: without a seed the kernel draws a
// random one), so a client keeps its uplink across table rebuilds.
const affinitySeed = 0x75706c6b

func nfprotoExprs(family int) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if family == 6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{p}},
	}
}

// addrMatch matches the source or destination address against prefixes of
// one family (already merged into disjoint ranges).
type addrMatch struct {
	family int
	field  string // "saddr" or "daddr"
	ranges []addrRange
}

func (m addrMatch) text() string {
	items := make([]string, len(m.ranges))
	for i, r := range m.ranges {
		items[i] = rangeText(r)
	}
	proto := "ip"
	if m.family == 6 {
		proto = "ip6"
	}
	return proto + " " + m.field + " " + setBody(items)
}

func rangeText(r addrRange) string {
	p, ok := asPrefix(r)
	switch {
	case !ok:
		return r.from.String() + "-" + r.to.String()
	case p.Bits() == p.Addr().BitLen():
		return r.from.String()
	}
	return p.String()
}

// asPrefix returns the prefix that covers exactly r, if there is one.
func asPrefix(r addrRange) (netip.Prefix, bool) {
	for bits := 0; bits <= r.from.BitLen(); bits++ {
		p := netip.PrefixFrom(r.from, bits)
		if p.Masked().Addr() == r.from && lastAddr(p) == r.to {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

func (m addrMatch) exprs(b *batch) []expr.Any {
	off, n := uint32(12), uint32(4)
	if m.family == 6 {
		off, n = 8, 16
	}
	if m.field == "daddr" {
		off += n
	}
	ex := nfprotoExprs(m.family)
	ex = append(ex, &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
	if len(m.ranges) == 1 {
		r := m.ranges[0]
		p, ok := asPrefix(r)
		switch {
		case !ok:
			return append(ex, &expr.Range{Op: expr.CmpOpEq, Register: reg, FromData: r.from.AsSlice(), ToData: r.to.AsSlice()})
		case p.Bits() == 0:
			return ex // any address of the family
		case p.Bits() < p.Addr().BitLen():
			mask := net.CIDRMask(p.Bits(), p.Addr().BitLen())
			ex = append(ex, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: n, Mask: mask, Xor: make([]byte, n)})
		}
		return append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: r.from.AsSlice()})
	}
	kt := nftables.TypeIPAddr
	if m.family == 6 {
		kt = nftables.TypeIP6Addr
	}
	var elems []nftables.SetElement
	for _, r := range m.ranges {
		elems = append(elems, nftables.SetElement{Key: r.from.AsSlice()})
		if next := r.to.Next(); next.IsValid() {
			elems = append(elems, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	s := b.anonSet(&nftables.Set{KeyType: kt, Interval: true}, elems)
	return append(ex, &expr.Lookup{SourceRegister: reg, SetID: s.ID, SetName: s.Name})
}

// l4proto matches the transport protocol.
type l4proto struct{ protos []uint8 }

func (m l4proto) text() string {
	items := make([]string, len(m.protos))
	for i, p := range m.protos {
		items[i] = protoNames[p]
	}
	return "meta l4proto " + setBody(items)
}

func (m l4proto) exprs(b *batch) []expr.Any {
	load := &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg}
	if len(m.protos) == 1 {
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{m.protos[0]}}}
	}
	elems := make([]nftables.SetElement, len(m.protos))
	for i, p := range m.protos {
		elems[i] = nftables.SetElement{Key: []byte{p}}
	}
	s := b.anonSet(&nftables.Set{KeyType: nftables.TypeInetProto}, elems)
	return []expr.Any{load, &expr.Lookup{SourceRegister: reg, SetID: s.ID, SetName: s.Name}}
}

// dport matches the transport destination port (after an l4proto match).
type dport struct{ ranges []PortRange }

func (m dport) text() string {
	items := make([]string, len(m.ranges))
	for i, r := range m.ranges {
		items[i] = fmt.Sprint(r.From)
		if r.To != r.From {
			items[i] = fmt.Sprintf("%d-%d", r.From, r.To)
		}
	}
	return "th dport " + setBody(items)
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func (m dport) exprs(b *batch) []expr.Any {
	ex := []expr.Any{&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}}
	if len(m.ranges) == 1 {
		r := m.ranges[0]
		if r.From == r.To {
			return append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: be16(r.From)})
		}
		return append(ex, &expr.Range{Op: expr.CmpOpEq, Register: reg, FromData: be16(r.From), ToData: be16(r.To)})
	}
	var elems []nftables.SetElement
	for _, r := range m.ranges {
		elems = append(elems, nftables.SetElement{Key: be16(r.From)})
		if r.To != 0xffff {
			elems = append(elems, nftables.SetElement{Key: be16(r.To + 1), IntervalEnd: true})
		}
	}
	s := b.anonSet(&nftables.Set{KeyType: nftables.TypeInetService, Interval: true}, elems)
	return append(ex, &expr.Lookup{SourceRegister: reg, SetID: s.ID, SetName: s.Name})
}

// reject refuses a connection: a TCP reset, or an ICMP(v6) administratively
// prohibited.
type reject struct{ tcp bool }

func (r reject) text() string {
	if r.tcp {
		return "reject with tcp reset"
	}
	return "reject with icmpx admin-prohibited"
}

func (r reject) exprs(*batch) []expr.Any {
	if r.tcp {
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
	}
	return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}}
}

// verdict ends the rule: return, or goto a chain.
type verdict struct{ kind, chain string }

func (v verdict) text() string {
	if v.kind == "goto" {
		return "goto " + v.chain
	}
	return v.kind
}

func (v verdict) exprs(*batch) []expr.Any {
	if v.kind == "goto" {
		return []expr.Any{gotoVerdict(v.chain)}
	}
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
}

func (e kv) keyText(keyType string) string {
	if keyType == "mark" {
		return fmt.Sprintf("%#08x", e.mark)
	}
	return fmt.Sprintf("%q", e.key)
}

func (e kv) keyBytes(keyType string) []byte {
	if keyType == "mark" {
		return ne32(e.mark)
	}
	return ifnameBytes(e.key)
}
