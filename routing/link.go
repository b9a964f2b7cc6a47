package routing

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkInfo is what the kernel says about an uplink's interface.
type LinkInfo struct {
	Name     string
	Index    int
	Up       bool         // administratively up
	Carrier  bool         // lower layer up
	Addrs    []netip.Addr // global unicast addresses, IPv4 then IPv6
	Gateway4 netip.Addr   // default gateway via this interface in a table that is not ours
	Gateway6 netip.Addr
	// PointToPoint links (PPP) need no gateway: the peer is the other end of the link.
	PointToPoint bool
	// Prefixes6 are the global IPv6 addresses with their prefix and remaining lifetimes (a
	// LAN interface's, where a DHCPv6-PD client puts its delegation).
	Prefixes6 []AddrPrefix
}

// AddrPrefix is one address of an interface with the prefix it is in.
type AddrPrefix struct {
	Addr   netip.Addr
	Prefix netip.Prefix // masked
	// Preferred and Valid are the remaining lifetimes; Forever: the address does not expire;
	// PreferredForever: nor does its preference.
	Preferred, Valid          time.Duration
	Forever, PreferredForever bool
}

// LifetimeForever is the kernel's "infinite" address lifetime (netlink.Addr's PreferedLft and
// ValidLft).
const LifetimeForever = 0xffffffff

// Link learns an interface's state, global addresses and the gateways the kernel holds for it
// (the default route via it that DHCP, SLAAC or NetworkManager put in main or another table
// that is not ours; main wins, then the lowest metric).
func (r *Router) Link(ifname string) (LinkInfo, error) {
	l, err := r.k.LinkByName(ifname)
	if err != nil {
		return LinkInfo{}, fmt.Errorf("routing: link %s: %w", ifname, err)
	}
	a := l.Attrs()
	info := LinkInfo{
		Name:    a.Name,
		Index:   a.Index,
		Up:      a.Flags&net.FlagUp != 0,
		Carrier: a.RawFlags&unix.IFF_LOWER_UP != 0,

		PointToPoint: a.Flags&net.FlagPointToPoint != 0,
	}
	for _, f := range families {
		addrs, prefixes, err := r.globalAddrs(l, f)
		if err != nil {
			return info, err
		}
		info.Addrs = append(info.Addrs, addrs...)
		info.Prefixes6 = append(info.Prefixes6, prefixes...)
		routes, err := retryDump("routes", func() ([]netlink.Route, error) {
			return r.k.RouteListFiltered(f, &netlink.Route{Table: tableUnspec}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return info, err
		}
		gw := r.gatewayFor(routes, a.Index)
		if f == netlink.FAMILY_V6 {
			info.Gateway6 = gw
		} else {
			info.Gateway4 = gw
		}
	}
	return info, nil
}

// globalAddrs reads l's global unicast addresses of family f that are not tentative, and for
// IPv6 each with its prefix and remaining lifetimes.
func (r *Router) globalAddrs(l netlink.Link, f int) ([]netip.Addr, []AddrPrefix, error) {
	addrs, err := retryDump("addresses of "+l.Attrs().Name, func() ([]netlink.Addr, error) { return r.k.AddrList(l, f) })
	if err != nil {
		return nil, nil, err
	}
	var ips []netip.Addr
	var prefixes []AddrPrefix
	for _, ad := range addrs {
		ip := addrOf(ad.IP)
		if !ip.IsValid() || !ip.IsGlobalUnicast() || ad.Scope != int(netlink.SCOPE_UNIVERSE) || ad.Flags&unix.IFA_F_TENTATIVE != 0 {
			continue
		}
		ips = append(ips, ip)
		if ip.Is6() && ad.IPNet != nil {
			ones, _ := ad.Mask.Size()
			prefixes = append(prefixes, AddrPrefix{Addr: ip, Prefix: netip.PrefixFrom(ip, ones).Masked(),
				Preferred: time.Duration(ad.PreferedLft) * time.Second, Valid: time.Duration(ad.ValidLft) * time.Second,
				Forever: ad.ValidLft == LifetimeForever, PreferredForever: ad.PreferedLft == LifetimeForever})
		}
	}
	return ips, prefixes, nil
}

// Prefixes6 reads ifname's global IPv6 addresses with their prefixes and lifetimes: Link's
// Prefixes6 without the rest of Link (its route dumps).
func (r *Router) Prefixes6(ifname string) ([]AddrPrefix, error) {
	l, err := r.k.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("routing: link %s: %w", ifname, err)
	}
	_, prefixes, err := r.globalAddrs(l, netlink.FAMILY_V6)
	return prefixes, err
}

// SetPreferred sets the preferred lifetime of ifname's address addr, keeping its valid lifetime
// and flags: whole seconds, forever when forever is set, and 0 deprecates it (the kernel keeps
// it but no longer picks it as a source; a program copying it into RAs tells the hosts).
func (r *Router) SetPreferred(ifname string, addr netip.Addr, preferred time.Duration, forever bool) error {
	l, err := r.k.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("routing: link %s: %w", ifname, err)
	}
	f := netlink.FAMILY_V4
	if addr.Is6() {
		f = netlink.FAMILY_V6
	}
	addrs, err := retryDump("addresses of "+ifname, func() ([]netlink.Addr, error) { return r.k.AddrList(l, f) })
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if addrOf(a.IP) != addr {
			continue
		}
		a.PreferedLft = int(max(preferred, 0) / time.Second)
		if forever {
			a.PreferedLft = LifetimeForever
		}
		if err := r.k.AddrReplace(l, &a); err != nil {
			return fmt.Errorf("routing: %s on %s: %w", addr, ifname, err)
		}
		return nil
	}
	return fmt.Errorf("routing: %s has no address %s", ifname, addr)
}

// gatewayFor picks the gateway of the best foreign default route through link index idx.
func (r *Router) gatewayFor(routes []netlink.Route, idx int) netip.Addr {
	var best netip.Addr
	bestMain, bestMetric := false, 0
	for _, ro := range routes {
		if !isDefault(ro) || r.s.ownedRoute(ro) || ro.Protocol == r.s.Protocol || ro.Table == r.s.ActiveTable {
			continue
		}
		var gw net.IP
		if ro.LinkIndex == idx && ro.Gw != nil {
			gw = ro.Gw
		}
		for _, h := range ro.MultiPath {
			if h.LinkIndex == idx && h.Gw != nil {
				gw = h.Gw
				break
			}
		}
		if gw == nil {
			continue
		}
		isMain := ro.Table == tableMain
		better := !best.IsValid() ||
			isMain && !bestMain ||
			isMain == bestMain && ro.Priority < bestMetric
		if better {
			best, bestMain, bestMetric = addrOf(gw), isMain, ro.Priority
		}
	}
	return best
}

// MarkRouted says whether the kernel sends packets carrying mark through table (uplinkd's
// `fwmark M lookup T` rule, which the running daemon installs) in both families. Without it, a
// marked probe follows the main table and may leave through another uplink.
func (r *Router) MarkRouted(mark uint32, table int) (bool, error) {
	for _, f := range families {
		rules, err := retryDump("rules", func() ([]netlink.Rule, error) { return r.k.RuleList(f) })
		if err != nil {
			return false, err
		}
		found := false
		for _, ru := range rules {
			found = found || ru.Mark == mark && ru.Table == table
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}
