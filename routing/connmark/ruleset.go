package connmark

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/uplinkd/uplinkd/uplink"
)

// The table is built from a small intermediate form: chains of rules made
// of statements. Each statement knows its nft text (Render, golden tests)
// and its kernel expressions (stmts.go), so both come from one source.

type chain struct {
	name  string
	hook  string // "" for a regular chain
	ctype string // "filter", "route" or "nat" for a base chain
	prio  priority
	rules []rule
}

// priority is a base chain's place in its hook, as nft(8) writes it and as a number.
type priority struct {
	text string
	num  int32
}

var (
	prioMangle = priority{"mangle", -150}
	// prioBeforeSNAT runs before the operator's source NAT (srcnat, 100), so that what it
	// decides is not overwritten there: a connection's NAT is set up by the first chain
	// that sets it.
	prioBeforeSNAT = priority{"srcnat - 10", 90}
)

type rule struct {
	stmts   []stmt
	comment string
}

// namedSet is a set (of interface names) or a verdict map (from interface
// names or marks). Keys in host byte order go in named sets: nft(8) then
// lists them correctly, which it does not for anonymous ones built here.
type namedSet struct {
	name    string
	keyType string // "ifname", "fib oifname" (the same, typed as nft(8) wants) or "mark"
	isMap   bool
	entries []kv
}

type ruleset struct {
	sets     []namedSet
	counters []string // named counter objects
	chains   []chain
}

// receivedCounter names the counter of the packets that arrive on an uplink for connections
// through it (their replies): the engine's passive evidence that the uplink works.
func receivedCounter(mark uint32) string { return chainName("rx", mark) }

func chainName(kind string, mark uint32) string { return fmt.Sprintf("%s_%d", kind, uplink.IDOf(mark)) }

// build turns a valid plan into the table's chains. Pure.
func build(p Plan) ruleset {
	ups := slices.Clone(p.Uplinks)
	slices.SortFunc(ups, func(a, b Uplink) int { return int(a.Mark) - int(b.Mark) })

	var wanNames, wanVmap, restore, restore6 []kv
	split := false // IPv6 keeps other connections than IPv4: a restore map per family
	for _, u := range ups {
		wanNames = append(wanNames, kv{key: u.Interface})
		wanVmap = append(wanVmap, kv{key: u.Interface, chain: chainName("wan", u.Mark)})
		if u.Live {
			restore = append(restore, kv{mark: u.Mark, chain: chainName("restore", u.Mark)})
		}
		if u.Live && !u.Dead6 {
			restore6 = append(restore6, kv{mark: u.Mark, chain: chainName("restore", u.Mark)})
		}
		split = split || u.Live && u.Dead6
	}

	var sets []namedSet
	if len(ups) > 0 {
		sets = append(sets,
			namedSet{name: "uplink_ifaces", keyType: "ifname", entries: wanNames},
			namedSet{name: "uplink_routes", keyType: "fib oifname", entries: wanNames},
			namedSet{name: "inbound", keyType: "ifname", isMap: true, entries: wanVmap})
	}
	if len(p.LANInterfaces) > 0 {
		var lans []kv
		for _, n := range slices.Compact(slices.Sorted(slices.Values(p.LANInterfaces))) {
			lans = append(lans, kv{key: n})
		}
		sets = append(sets, namedSet{name: "lan_ifaces", keyType: "ifname", entries: lans})
	}
	if len(restore) > 0 {
		sets = append(sets, namedSet{name: "live", keyType: "mark", isMap: true, entries: restore})
	}
	if split && len(restore6) > 0 {
		sets = append(sets, namedSet{name: "live6", keyType: "mark", isMap: true, entries: restore6})
	}
	restoreRules := func() []rule {
		if !split {
			if len(restore) == 0 {
				return nil
			}
			return []rule{{stmts: []stmt{vmapRef{key: "ct mark", set: "live"}}, comment: "pinned to a live uplink"}}
		}
		var rs []rule
		if len(restore) > 0 {
			rs = append(rs, rule{stmts: []stmt{nfproto{family: 4}, vmapRef{key: "ct mark", set: "live"}}, comment: "pinned to a live uplink"})
		}
		if len(restore6) > 0 {
			rs = append(rs, rule{stmts: []stmt{nfproto{family: 6}, vmapRef{key: "ct mark", set: "live6"}}, comment: "pinned to an uplink whose IPv6 lives"})
		}
		return rs
	}

	var pre []rule
	pre = append(pre,
		rule{stmts: []stmt{markIsOurs{}, verdict{kind: "return"}}, comment: "already marked: probes, or routed by someone else"},
	)
	if len(ups) > 0 {
		pre = append(pre, rule{stmts: []stmt{vmapRef{key: "iifname", set: "inbound"}}, comment: "from an uplink: pin inbound, never restore replies"})
	}
	if len(p.LANInterfaces) > 0 {
		pre = append(pre, rule{stmts: []stmt{ifnameIn{meta: "iifname", set: "lan_ifaces", invert: true}, verdict{kind: "return"}}})
	}
	pre = append(pre, restoreRules()...)
	pre = append(pre,
		rule{stmts: []stmt{ctDirection{dir: "reply"}, verdict{kind: "return"}}},
		rule{stmts: []stmt{fibDaddrLocal{}, verdict{kind: "return"}}},
	)
	if len(ups) > 0 {
		pre = append(pre, rule{stmts: []stmt{ifnameIn{meta: "fib daddr oifname", set: "uplink_routes", invert: true}, verdict{kind: "return"}}, comment: "not bound for an uplink"})
		pre = append(pre, rule{stmts: []stmt{verdict{kind: "goto", chain: "pick"}}})
	}

	var out []rule
	out = append(out, rule{stmts: []stmt{markIsOurs{}, verdict{kind: "return"}}, comment: "already marked: probes, or routed by someone else"})
	out = append(out, restoreRules()...)
	out = append(out, rule{stmts: []stmt{ctDirection{dir: "reply"}, verdict{kind: "return"}}})
	if len(ups) > 0 {
		out = append(out, rule{stmts: []stmt{ifnameIn{meta: "oifname", set: "uplink_ifaces", invert: true}, verdict{kind: "return"}}, comment: "not bound for an uplink"})
		out = append(out, sourceRules(ups)...)
		out = append(out, rule{stmts: []stmt{verdict{kind: "goto", chain: "pick"}}})
	}

	rs := ruleset{sets: sets, chains: []chain{
		{name: "prerouting", hook: "prerouting", ctype: "filter", prio: prioMangle, rules: pre},
		{name: "output", hook: "output", ctype: "route", prio: prioMangle, rules: out},
		{name: "probes", hook: "postrouting", ctype: "nat", prio: prioBeforeSNAT, rules: probeSourceRules()},
		{name: "pick", rules: pickRules(p, ups)},
		{name: "block", rules: []rule{
			{stmts: []stmt{l4proto{protos: []uint8{protoTCP}}, reject{tcp: true}}},
			{stmts: []stmt{reject{}}},
		}},
	}}
	if len(p.Translations) > 0 {
		rs.chains = append(rs.chains, chain{name: "nptv6", hook: "postrouting", ctype: "nat", prio: prioBeforeSNAT, rules: translationRules(p.Translations)})
	}
	for _, u := range ups {
		rs.counters = append(rs.counters, receivedCounter(u.Mark))
		rs.chains = append(rs.chains, chain{name: chainName("wan", u.Mark), rules: []rule{{
			// Replies of connections pinned here, not of uplinkd's own probes (no connection
			// mark): the traffic that proves the uplink alive apart from its probes.
			stmts:   []stmt{ctEstablished{}, ctDirection{dir: "reply"}, ctMarkIs{mark: u.Mark}, counterRef{name: receivedCounter(u.Mark)}},
			comment: u.Name + ": replies prove it works",
		}, {
			stmts:   []stmt{ctDirection{dir: "original"}, ctMarkUnset{}, setCtMark{mark: u.Mark}},
			comment: u.Name,
		}}})
		if u.Live {
			rs.chains = append(rs.chains, chain{name: chainName("restore", u.Mark), rules: []rule{{
				stmts: []stmt{setMetaMark{mark: u.Mark}}, comment: u.Name,
			}}})
		}
		rs.chains = append(rs.chains, chain{name: chainName("pin", u.Mark), rules: []rule{{
			stmts: []stmt{setCtMark{mark: u.Mark}, setMetaMark{mark: u.Mark}}, comment: u.Name,
		}}})
	}
	return rs
}

// probeSourceRules keep the source address of uplinkd's own probes whatever the operator's NAT
// says: a rule such as "oifname wan1 snat to <the pair's virtual address>" would otherwise
// rewrite them, and the replies would go to whichever box holds that address. A probe is
// local, carries an uplink mark from its socket (SO_MARK) and belongs to no pinned connection
// (the pinning chains set the connection mark; probes skip them). NAT to its own source
// address is a null binding that the later NAT chains cannot change.
func probeSourceRules() []rule {
	var rules []rule
	for _, fam := range []int{4, 6} {
		rules = append(rules, rule{stmts: []stmt{markIsOurs{}, ctMarkUnset{}, fibSaddrLocal{}, snatToSaddr{family: fam}},
			comment: "probes keep their own source address"})
	}
	return rules
}

// translationRules are the NPTv6 mappings: a connection from a dead uplink's LAN prefix that
// leaves by a live one takes that one's prefix, keeping its interface identifier, so its ISP
// accepts it (BCP 38) and routes the replies back. Stateful: conntrack undoes it on replies,
// and a connection keeps its mapping until it ends. Before the operator's NAT, which must not
// masquerade it again.
func translationRules(ts []Translation) []rule {
	var rules []rule
	for _, t := range ts {
		rules = append(rules, rule{
			stmts: []stmt{ifnameIn{meta: "oifname", name: t.Interface},
				addrMatch{family: 6, field: "saddr", ranges: prefixRanges([]netip.Prefix{t.From})},
				snatPrefix{to: t.To}},
			comment: "NPTv6",
		})
	}
	return rules
}

// sourceRules pin the gateway's own connections whose source address belongs to an uplink to
// that uplink, whatever the balance says: a source address leaves only through its own ISP.
func sourceRules(ups []Uplink) []rule {
	var rules []rule
	for _, u := range ups {
		for _, f := range []int{4, 6} {
			var ps []netip.Prefix
			for _, a := range u.Addrs {
				if a.Is4() == (f == 4) {
					ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
				}
			}
			if len(ps) == 0 {
				continue
			}
			rules = append(rules, rule{
				stmts:   []stmt{addrMatch{family: f, field: "saddr", ranges: prefixRanges(ps)}, verdict{kind: "goto", chain: chainName("pin", u.Mark)}},
				comment: "from " + u.Name + "'s address",
			})
		}
	}
	return rules
}

// pickRules chooses the uplink of a new (or orphaned) connection: the first
// matching service rule, else weighted balancing over the eligible uplinks.
// With no eligible uplink the packet stays unmarked and follows the main
// policy rules (the active table).
func pickRules(p Plan, ups []Uplink) []rule {
	var rules []rule
	for _, u := range ups {
		if u.Usable6 && len(u.Prefixes) > 0 {
			rules = append(rules, rule{
				stmts:   []stmt{addrMatch{family: 6, field: "saddr", ranges: prefixRanges(u.Prefixes)}, verdict{kind: "goto", chain: chainName("pin", u.Mark)}},
				comment: "from " + u.Name + "'s LAN prefix",
			})
		}
	}
	for _, s := range p.Services {
		rules = append(rules, serviceRules(s)...)
	}
	eligible := func(u Uplink) bool { return u.Eligible }
	if !p.PerFamily {
		return append(rules, pickFamily(p.Affinity, 0, ups, eligible)...)
	}
	rules = append(rules, pickFamily(p.Affinity, 4, ups, eligible)...)
	return append(rules, pickFamily(p.Affinity, 6, ups, func(u Uplink) bool { return u.Eligible6 })...)
}

// pickFamily balances new connections of one family (0: both) over the uplinks that may take
// them, by weight.
func pickFamily(affinity bool, family int, ups []Uplink, eligible func(Uplink) bool) []rule {
	var shares []share
	g := 0
	for _, u := range ups {
		if eligible(u) && u.Weight > 0 {
			shares = append(shares, share{mark: u.Mark, weight: u.Weight})
			g = gcd(g, u.Weight)
		}
	}
	if len(shares) == 0 {
		return nil
	}
	var entries []kv
	total := 0
	for _, s := range shares {
		w := s.weight / g
		entries = append(entries, kv{from: uint32(total), to: uint32(total + w - 1), chain: chainName("pin", s.mark)})
		total += w
	}
	if !affinity {
		return []rule{{stmts: []stmt{pickVmap{proto: family, mod: uint32(total), entries: entries}}, comment: "balance by weight"}}
	}
	var rules []rule
	for _, f := range []int{4, 6} {
		if family == 0 || family == f {
			rules = append(rules, rule{stmts: []stmt{pickVmap{family: f, mod: uint32(total), entries: entries}}, comment: "balance by weight and source"})
		}
	}
	return rules
}

type share struct {
	mark   uint32
	weight int
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func serviceRules(s Service) []rule {
	var v stmt
	switch {
	case s.Mark != 0:
		v = verdict{kind: "goto", chain: chainName("pin", s.Mark)}
	case s.Block:
		v = verdict{kind: "goto", chain: "block"}
	default:
		return nil // nothing available and fallback allowed: balance as usual
	}
	fams := []int{0}
	if len(s.Src)+len(s.Dst) > 0 {
		fams = s.families()
	}
	var rules []rule
	for _, f := range fams {
		var st []stmt
		if s.InIface != "" {
			st = append(st, ifnameIn{meta: "iifname", name: s.InIface})
		}
		if ps := prefixesOf(s.Src, f); len(ps) > 0 {
			st = append(st, addrMatch{family: f, field: "saddr", ranges: prefixRanges(ps)})
		}
		if ps := prefixesOf(s.Dst, f); len(ps) > 0 {
			st = append(st, addrMatch{family: f, field: "daddr", ranges: prefixRanges(ps)})
		}
		switch {
		case s.Proto == "tcp":
			st = append(st, l4proto{protos: []uint8{protoTCP}})
		case s.Proto == "udp":
			st = append(st, l4proto{protos: []uint8{protoUDP}})
		case s.Proto == "icmp" && f == 4:
			st = append(st, l4proto{protos: []uint8{protoICMP}})
		case s.Proto == "icmp" && f == 6:
			st = append(st, l4proto{protos: []uint8{protoICMPv6}})
		case s.Proto == "icmp":
			st = append(st, l4proto{protos: []uint8{protoICMP, protoICMPv6}})
		case len(s.DPorts) > 0:
			st = append(st, l4proto{protos: []uint8{protoTCP, protoUDP}})
		}
		if len(s.DPorts) > 0 {
			st = append(st, dport{ranges: portRanges(s.DPorts)})
		}
		rules = append(rules, rule{stmts: append(st, v), comment: "service " + s.Name})
	}
	return rules
}

// addrRange is an inclusive range of addresses of one family.
type addrRange struct{ from, to netip.Addr }

// prefixRanges merges prefixes of one family into sorted disjoint ranges,
// as an interval set needs them.
func prefixRanges(ps []netip.Prefix) []addrRange {
	rs := make([]addrRange, 0, len(ps))
	for _, p := range ps {
		rs = append(rs, addrRange{from: p.Addr(), to: lastAddr(p)})
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.from.Compare(b.from) })
	var out []addrRange
	for _, r := range rs {
		if n := len(out); n > 0 && (r.from.Compare(out[n-1].to) <= 0 || out[n-1].to.Next() == r.from) {
			if r.to.Compare(out[n-1].to) > 0 {
				out[n-1].to = r.to
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// portRanges sorts and merges port ranges.
func portRanges(in []PortRange) []PortRange {
	rs := slices.Clone(in)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.From) - int(b.From) })
	var out []PortRange
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.From) <= int(out[n-1].To)+1 {
			out[n-1].To = max(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Render returns the table p describes as nft(8) text, loadable with
// `nft -f`. Pure; an invalid plan renders as a comment naming the error.
func Render(p Plan) string {
	if err := p.Validate(); err != nil {
		return "# " + err.Error() + "\n"
	}
	return build(p).text()
}

func (rs ruleset) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for _, s := range rs.sets {
		kind, typ := "set", "type "+s.keyType
		if s.keyType == "fib oifname" {
			typ = "typeof fib daddr oifname"
		}
		if s.isMap {
			kind, typ = "map", "type "+s.keyType+" : verdict"
		}
		items := make([]string, len(s.entries))
		for i, e := range s.entries {
			items[i] = e.keyText(s.keyType)
			if s.isMap {
				items[i] += " : goto " + e.chain
			}
		}
		fmt.Fprintf(&b, "\t%s %s {\n\t\t%s\n\t\telements = { %s }\n\t}\n\n", kind, s.name, typ, strings.Join(items, ", "))
	}
	for _, name := range rs.counters {
		fmt.Fprintf(&b, "\tcounter %s {\n\t\tpackets 0 bytes 0\n\t}\n\n", name)
	}
	for i, c := range rs.chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.name)
		if c.hook != "" {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", c.ctype, c.hook, c.prio.text)
		}
		for _, r := range c.rules {
			b.WriteString("\t\t" + r.text() + "\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func (r rule) text() string {
	parts := make([]string, 0, len(r.stmts)+1)
	for _, s := range r.stmts {
		parts = append(parts, s.text())
	}
	if r.comment != "" {
		parts = append(parts, fmt.Sprintf("comment %q", r.comment))
	}
	return strings.Join(parts, " ")
}
