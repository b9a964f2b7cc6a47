package ra

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
)

// Lifetimes is the driven mode ([ipv6] advertise = "lifetimes"), a dataplane.Part: another
// program sends the RAs (odhcpd, systemd-networkd), and it copies each prefix's lifetimes
// from the gateway's own LAN address in it. uplinkd sets that address's preferred lifetime to
// 0 while the prefix's uplink carries no new IPv6 connections, and gives it back after.
type Lifetimes struct {
	addrs Addresses
	log   *slog.Logger
	// deprecated are the addresses set to preferred 0, with what they had before.
	deprecated map[netip.Addr]time.Duration // -1: preferred forever
}

// Addresses is what the driven mode needs from the kernel: routing.Router.
type Addresses interface {
	Prefixes6(ifname string) ([]routing.AddrPrefix, error)
	SetPreferred(ifname string, addr netip.Addr, preferred time.Duration, forever bool) error
}

// NewLifetimes returns the driven mode's part, acting through addrs; it changes nothing until a
// State asks for it.
func NewLifetimes(addrs Addresses, log *slog.Logger) *Lifetimes {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lifetimes{addrs: addrs, log: log, deprecated: map[netip.Addr]time.Duration{}}
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
	prefixes, err := l.addrs.Prefixes6(name)
	if err != nil {
		return err
	}
	for _, a := range prefixes {
		if !p.Prefix.Contains(a.Addr) {
			continue
		}
		before, done := l.deprecated[a.Addr]
		var preferred time.Duration // deprecate
		forever := false
		switch {
		case deprecate && !done:
			before = a.Preferred
			if a.PreferredForever {
				before = -1
			}
		case !deprecate && done:
			forever = before < 0
			preferred = min(before, p.Preferred)
		default:
			continue
		}
		if err := l.addrs.SetPreferred(name, a.Addr, preferred, forever); err != nil {
			return err
		}
		if deprecate {
			l.deprecated[a.Addr] = before
			l.log.Info("LAN address deprecated: the program advertising it tells hosts", "interface", name, "addr", a.Addr)
		} else {
			delete(l.deprecated, a.Addr)
			l.log.Info("LAN address preferred again", "interface", name, "addr", a.Addr)
		}
	}
	return nil
}
