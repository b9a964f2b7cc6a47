// Package ra sends the LAN's IPv6 router advertisements (RFC 4861) so that hosts use the
// prefix of a provider that works (RFC 8475): every uplink's LAN prefix is advertised, with a
// preferred lifetime of 0 while its uplink carries no new IPv6 connections. Hosts then pick
// source addresses from the live prefix for new connections (RFC 6724 rule 3) and keep the
// old address for the connections they have.
package ra

import (
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/uplink"
)

// RFC 4861 §6.2.1 and §10: a periodic RA every 200..600 s; after a change, the first RAs are
// repeated (MAX_INITIAL_RTR_ADVERTISEMENTS) MIN_DELAY_BETWEEN_RAS apart.
const (
	minInterval   = 200 * time.Second
	maxInterval   = 600 * time.Second
	burst         = 3
	burstInterval = 3 * time.Second
	hopLimit      = 64
	// rdnssLifetime is 3 × the longest interval (RFC 8106 §5.1).
	rdnssLifetime = 3 * maxInterval
)

// PIO is one prefix of an advert.
type PIO struct {
	Prefix           netip.Prefix
	Uplink           string
	Preferred, Valid time.Duration
	// PreferredUntil and ValidUntil end a followed delegation's lifetimes (zero: never); At
	// counts them down when an RA is sent.
	PreferredUntil, ValidUntil time.Time
}

// Deprecated says whether hosts are told to stop using the prefix for new connections.
func (p PIO) Deprecated() bool { return p.Preferred == 0 }

// Advert is what one LAN interface's RAs say.
type Advert struct {
	// RouterLifetime is 0 when no uplink has an IPv6 gateway: hosts must not use the gateway
	// as their default router then (RFC 7084 L-4), but keep the prefixes on link.
	RouterLifetime time.Duration
	Prefixes       []PIO
	RDNSS          []netip.Addr
}

// Equal says whether a and b advertise the same, but for when a followed delegation's
// lifetimes end: a renewed lease needs no burst of RAs, the next one carries it.
func (a Advert) Equal(b Advert) bool {
	same := func(x, y PIO) bool {
		return x.Prefix == y.Prefix && x.Uplink == y.Uplink && x.Preferred == y.Preferred && x.Valid == y.Valid
	}
	return a.RouterLifetime == b.RouterLifetime && slices.EqualFunc(a.Prefixes, b.Prefixes, same) && slices.Equal(a.RDNSS, b.RDNSS)
}

// At is a as sent at now: each prefix's lifetimes are what is left of them then, so a host
// never holds a prefix longer than the gateway's lease (RFC 9096 §3.3).
func (a Advert) At(now time.Time) Advert {
	a.Prefixes = slices.Clone(a.Prefixes)
	for i, p := range a.Prefixes {
		a.Prefixes[i] = PIO{Prefix: p.Prefix, Uplink: p.Uplink,
			Preferred: dataplane.Left(p.Preferred, p.PreferredUntil, now), Valid: dataplane.Left(p.Valid, p.ValidUntil, now)}
	}
	return a
}

// Adverts is what each LAN interface advertises under s; nil when uplinkd does not send RAs
// (another advertise mode, no prefixes, or no verdict yet).
func Adverts(s dataplane.State) map[string]Advert {
	if s.Provisional || s.IPv6.Advertise != uplink.AdvertiseRA {
		return nil
	}
	out := map[string]Advert{}
	// Fail static, as the routes: with every uplink judged down the gateway stays the hosts'
	// router (the probes may be what failed). Only a gateway without any IPv6 way out tells
	// hosts not to route through it.
	carried := false
	for _, u := range s.Uplinks {
		carried = carried || u.Gateway6.IsValid()
	}
	for _, n := range s.IPv6.Interfaces {
		a := Advert{RDNSS: s.IPv6.RDNSS}
		if carried {
			a.RouterLifetime = s.IPv6.RouterLifetime
		}
		for _, u := range s.Uplinks {
			for _, p := range u.Prefixes {
				if !slices.Contains(p.Interfaces, n) {
					continue
				}
				pio := PIO{Prefix: p.Prefix, Uplink: u.Name, Preferred: p.Preferred, Valid: p.Valid,
					PreferredUntil: p.PreferredUntil, ValidUntil: p.ValidUntil}
				if !s.PrefixesPreferred(u) {
					// RFC 8475: deprecated, never withdrawn; the valid lifetime stays as it was
					// (RFC 4862 §5.5.3e: a host ignores a cut below 2 h anyway).
					pio.Preferred = 0
				}
				a.Prefixes = append(a.Prefixes, pio)
			}
		}
		if len(a.Prefixes) > 0 {
			out[n] = a
		}
	}
	return out
}

// Message is the RA of a, from an interface with hardware address mac.
func (a Advert) Message(mac net.HardwareAddr) *ndp.RouterAdvertisement {
	m := &ndp.RouterAdvertisement{CurrentHopLimit: hopLimit, RouterLifetime: a.RouterLifetime,
		RouterSelectionPreference: ndp.Medium}
	for _, p := range a.Prefixes {
		m.Options = append(m.Options, &ndp.PrefixInformation{
			PrefixLength: uint8(p.Prefix.Bits()), OnLink: true, AutonomousAddressConfiguration: true,
			PreferredLifetime: p.Preferred, ValidLifetime: p.Valid, Prefix: p.Prefix.Addr(),
		})
	}
	if len(a.RDNSS) > 0 {
		m.Options = append(m.Options, &ndp.RecursiveDNSServer{Lifetime: rdnssLifetime, Servers: a.RDNSS})
	}
	if len(mac) > 0 {
		m.Options = append(m.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac})
	}
	return m
}
