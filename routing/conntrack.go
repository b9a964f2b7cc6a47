package routing

import (
	"fmt"
	"net/netip"

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
