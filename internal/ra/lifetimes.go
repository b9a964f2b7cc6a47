package ra

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/vishvananda/netlink"
)

// Lifetimes is the driven mode ([ipv6] advertise = "lifetimes"), a dataplane.Part: another
// program sends the RAs (odhcpd, systemd-networkd), and it copies each prefix's lifetimes
// from the gateway's own LAN address in it. uplinkd sets that address's preferred lifetime to
// 0 while the prefix's uplink carries no new IPv6 connections, and gives it back after.
type Lifetimes struct {
	log *slog.Logger
	// deprecated are the addresses set to preferred 0, with what they had before.
	deprecated map[netip.Addr]time.Duration // -1: preferred forever
}

// NewLifetimes returns the driven mode's part; it changes nothing until a State asks for it.
func NewLifetimes(log *slog.Logger) *Lifetimes {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lifetimes{log: log, deprecated: map[netip.Addr]time.Duration{}}
}

var _ dataplane.Part = (*Lifetimes)(nil)

// Set deprecates the gateway's LAN addresses in the prefixes of uplinks that carry no new
// IPv6 connections and restores the others.
func (l *Lifetimes) Set(st dataplane.State) error {
	if st.Provisional {
		return nil
	}
	driven := st.IPv6.Advertise == uplink.AdvertiseLifetimes
	if !driven && len(l.deprecated) == 0 {
		return nil
	}
	var errs []error
	for _, u := range st.Uplinks {
		for _, p := range u.Prefixes {
			for _, n := range p.Interfaces {
				if err := l.setIface(n, p, driven && !st.PrefixesPreferred(u)); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ipv6 lifetimes: %w", errs[0])
	}
	return nil
}

func (l *Lifetimes) setIface(name string, p dataplane.Prefix, deprecate bool) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !p.Prefix.Contains(ip.Unmap()) {
			continue
		}
		ip = ip.Unmap()
		before, done := l.deprecated[ip]
		switch {
		case deprecate && !done:
			before = time.Duration(a.PreferedLft) * time.Second
			if a.PreferedLft == routing.LifetimeForever {
				before = -1
			}
			a.PreferedLft = 0
		case !deprecate && done:
			a.PreferedLft = routing.LifetimeForever
			if before >= 0 {
				a.PreferedLft = int(min(before, p.Preferred) / time.Second)
			}
		default:
			continue
		}
		if err := netlink.AddrReplace(link, &a); err != nil {
			return fmt.Errorf("%s on %s: %w", ip, name, err)
		}
		if deprecate {
			l.deprecated[ip] = before
			l.log.Info("LAN address deprecated: the program advertising it tells hosts", "interface", name, "addr", ip)
		} else {
			delete(l.deprecated, ip)
			l.log.Info("LAN address preferred again", "interface", name, "addr", ip)
		}
	}
	return nil
}
