package routing

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// snatFilter matches connections source-NATed to one address: replies come back to the
// address, but the connection did not start from it (the gateway's own connections from that
// address and inbound connections to it are left alone).
type snatFilter struct{ addr netip.Addr }

func (f snatFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	return addrOf(flow.Reverse.DstIP) == f.addr && addrOf(flow.Forward.SrcIP) != f.addr
}

// FlushSNAT deletes the conntrack entries source-NATed to addr (an uplink's address), so that
// connections stuck on a departed uplink start over on the new one. It never flushes the
// table. It returns how many entries it deleted.
func (r *Router) FlushSNAT(addr netip.Addr) (int, error) {
	return flushSNAT(r.k, addr)
}

func flushSNAT(k kernel, addr netip.Addr) (int, error) {
	if !addr.IsValid() {
		return 0, fmt.Errorf("routing: flush SNAT entries: no address given")
	}
	addr = addr.Unmap()
	fam := netlink.InetFamily(netlink.FAMILY_V4)
	if addr.Is6() {
		fam = netlink.InetFamily(netlink.FAMILY_V6)
	}
	n, err := k.ConntrackDeleteFilters(netlink.ConntrackTable, fam, snatFilter{addr})
	if err != nil {
		return int(n), fmt.Errorf("routing: flush conntrack entries SNATed to %s: %w", addr, err)
	}
	return int(n), nil
}

// prefixFilter matches connections from a LAN prefix that were not translated: the replies
// come back to the address they left from.
type prefixFilter struct{ p netip.Prefix }

func (f prefixFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	src := addrOf(flow.Forward.SrcIP)
	return f.p.Contains(src) && addrOf(flow.Reverse.DstIP) == src
}

// FlushPrefix deletes the conntrack entries of untranslated connections from LAN prefix p
// (an uplink's, which died): their next packet is a new connection, which NPTv6 translates.
func (r *Router) FlushPrefix(p netip.Prefix) (int, error) {
	if !p.IsValid() || !p.Addr().Is6() {
		return 0, fmt.Errorf("routing: flush conntrack entries of prefix %s: not an IPv6 prefix", p)
	}
	n, err := r.k.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V6, prefixFilter{p.Masked()})
	if err != nil {
		return int(n), fmt.Errorf("routing: flush conntrack entries from %s: %w", p, err)
	}
	return int(n), nil
}

// FlowMatch picks the connections of one per-service rule.
type FlowMatch struct {
	Protos   []uint8        // empty: any
	Src, Dst []netip.Prefix // empty: any
	DPorts   [][2]uint16    // inclusive ranges; empty: any
}

// flowFilter matches FlowMatch's connections whose mark, under mask, is mark.
type flowFilter struct {
	m          FlowMatch
	mark, mask uint32
}

func (f flowFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	in := func(ps []netip.Prefix, a netip.Addr) bool {
		if len(ps) == 0 {
			return true
		}
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	port := len(f.m.DPorts) == 0
	for _, r := range f.m.DPorts {
		port = port || flow.Forward.DstPort >= r[0] && flow.Forward.DstPort <= r[1]
	}
	return flow.Mark&f.mask == f.mark && port &&
		(len(f.m.Protos) == 0 || slices.Contains(f.m.Protos, flow.Forward.Protocol)) &&
		in(f.m.Src, addrOf(flow.Forward.SrcIP)) && in(f.m.Dst, addrOf(flow.Forward.DstIP))
}

// EndFlows deletes the conntrack entries of m's connections pinned to mark (under mask), in
// both families: their next packet is a new connection and takes the service's new uplink.
func (r *Router) EndFlows(m FlowMatch, mark, mask uint32) (int, error) {
	total := 0
	for _, fam := range []netlink.InetFamily{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		n, err := r.k.ConntrackDeleteFilters(netlink.ConntrackTable, fam, flowFilter{m, mark, mask})
		total += int(n)
		if err != nil {
			return total, fmt.Errorf("routing: end connections marked %#x: %w", mark, err)
		}
	}
	return total, nil
}
