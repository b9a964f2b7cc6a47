package uplink

import (
	"net/netip"
	"time"
)

// IPv6 is [ipv6]: each provider delegates its own LAN prefix ([[uplink]] prefixes), and a LAN
// host can only use the prefix of a provider that works. uplinkd keeps traffic from each
// prefix on its own uplink, tells the hosts which prefix to prefer (router advertisements,
// RFC 8475) and translates the prefix of a dead uplink (NPTv6) for hosts that keep using it.
type IPv6 struct {
	// Interfaces are the LAN interfaces: where delegated prefixes are followed and RAs sent.
	// Default: [daemon] lan_interfaces.
	Interfaces []string
	// Advertise is how hosts learn which prefix to prefer: AdvertiseRA, AdvertiseLifetimes or
	// AdvertiseNone.
	Advertise string
	// NPTv6 translates connections from a dead uplink's prefix to the prefix of the uplink they
	// leave by.
	NPTv6 bool
	// RDNSS are the DNS servers the RAs carry (RFC 8106); none: no RDNSS option.
	RDNSS []netip.Addr
	// PreferredLifetime and ValidLifetime are the PIO lifetimes of a static prefix, and the
	// caps of a followed one (whose own remaining lifetimes come from its DHCPv6-PD lease).
	PreferredLifetime, ValidLifetime time.Duration
	// RouterLifetime is how long hosts keep the gateway as their default router.
	RouterLifetime time.Duration
}

// Ways of telling LAN hosts which prefix to use.
const (
	AdvertiseRA        = "ra"        // uplinkd sends the RAs itself
	AdvertiseLifetimes = "lifetimes" // uplinkd sets the preferred lifetime of the gateway's LAN addresses (odhcpd, networkd copy it)
	AdvertiseNone      = "none"      // NPTv6 and source rules only
)

// RA lifetimes. RFC 9096 caps a PIO's preferred lifetime at 45 min (ND_PREFERRED_LIMIT) so a
// renumbering is noticed soon. The valid lifetime stays 2 h, the floor of RFC 4862 §5.5.3e:
// a host ignores any lower value for an address it holds, and a deprecation never touches it
// (long-lived connections keep their address; only new ones move).
const (
	DefaultPreferredLifetime = 45 * time.Minute
	MaxPreferredLifetime     = 45 * time.Minute
	DefaultValidLifetime     = 2 * time.Hour
	MinValidLifetime         = 2 * time.Hour
	DefaultRouterLifetime    = 30 * time.Minute
)

// PrefixLen is the length of every LAN prefix: SLAAC needs /64 (RFC 4862, RFC 7421).
const PrefixLen = 64

// IPv6Enabled says whether any uplink has LAN prefixes.
func (c *Config) IPv6Enabled() bool {
	for _, u := range c.Uplinks {
		if len(u.Prefixes) > 0 {
			return true
		}
	}
	return false
}
