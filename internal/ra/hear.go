package ra

import (
	"net/netip"
	"time"

	"github.com/mdlayher/ndp"
)

type kind int

const (
	ignored   kind = iota
	solicited      // a host asks for an RA
	foreignRA      // another router advertises on the LAN
)

// heard is what one received ICMPv6 message means to the sender.
type heard struct {
	kind           kind
	from           netip.Addr // invalid: a solicitation from the unspecified address
	prefixes       []string
	routerLifetime time.Duration
}

// hear classifies a received message from src with IPv6 hop limit hops (0: unknown),
// following RFC 4861 §6.1: anything not sent on the link itself (hop limit 255) or malformed
// is ignored; a solicitation from :: must not carry a link-layer address.
func hear(b []byte, src netip.Addr, hops int, self netip.Addr) heard {
	if hops != 0 && hops != ndp.HopLimit || src == self {
		return heard{}
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		return heard{}
	}
	switch m := m.(type) {
	case *ndp.RouterSolicitation:
		if src.IsUnspecified() {
			for _, o := range m.Options {
				if _, ok := o.(*ndp.LinkLayerAddress); ok {
					return heard{}
				}
			}
			return heard{kind: solicited}
		}
		if !src.Is6() || src.IsMulticast() {
			return heard{}
		}
		return heard{kind: solicited, from: src}
	case *ndp.RouterAdvertisement:
		if !src.IsLinkLocalUnicast() { // §6.1.2: an RA comes from a link-local address
			return heard{}
		}
		h := heard{kind: foreignRA, from: src, routerLifetime: m.RouterLifetime}
		for _, o := range m.Options {
			if p, ok := o.(*ndp.PrefixInformation); ok && len(h.prefixes) < 8 {
				h.prefixes = append(h.prefixes, netip.PrefixFrom(p.Prefix, int(p.PrefixLength)).String())
			}
		}
		return h
	}
	return heard{}
}
