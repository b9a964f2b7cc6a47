package config

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

type rawIPv6 struct {
	Interfaces        []string  `toml:"interfaces"`
	Advertise         *string   `toml:"advertise"`
	NPTv6             *bool     `toml:"nptv6"`
	RDNSS             []address `toml:"rdnss"`
	PreferredLifetime *duration `toml:"preferred_lifetime"`
	ValidLifetime     *duration `toml:"valid_lifetime"`
	RouterLifetime    *duration `toml:"router_lifetime"`
}

// parseLANPrefixes reads an uplink's LAN prefixes: a /64, or a shorter delegation to follow.
func parseLANPrefixes(raw []string, key string, fail func(string, string, ...any)) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range raw {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			fail(key, "%q is not a prefix such as \"2001:db8:1::/64\"", s)
		case !p.Addr().Is6() || p.Addr().Is4In6() || !p.Addr().IsGlobalUnicast():
			fail(key, "%s is not a global IPv6 prefix", p)
		case p.Bits() > uplink.PrefixLen || p.Bits() < 16:
			fail(key, "%s: a LAN prefix is a /64, or a delegation from /16 to /63 whose /64s are followed on the LAN", p)
		case p.Masked() != p:
			fail(key, "%s has host bits set (did you mean %s?)", p, p.Masked())
		case slices.Contains(out, p):
			fail(key, "%s is listed twice", p)
		default:
			out = append(out, p)
		}
	}
	return out
}

// parseIPv6 validates [ipv6] against the uplinks and the daemon's LAN interfaces.
func parseIPv6(r *rawIPv6, cfg *uplink.Config, fail func(string, string, ...any)) uplink.IPv6 {
	v := uplink.IPv6{
		Interfaces: cfg.Daemon.LANInterfaces, Advertise: uplink.AdvertiseRA, NPTv6: true,
		PreferredLifetime: uplink.DefaultPreferredLifetime, ValidLifetime: uplink.DefaultValidLifetime,
		RouterLifetime: uplink.DefaultRouterLifetime,
	}
	var owner = map[netip.Prefix]string{}
	firstKey := ""
	for i, u := range cfg.Uplinks {
		if len(u.Prefixes) > 0 && firstKey == "" {
			firstKey = fmt.Sprintf("uplink.%d.prefixes", i)
		}
		for _, p := range u.Prefixes {
			for q, other := range owner {
				if q.Overlaps(p) {
					fail(fmt.Sprintf("uplink.%d.prefixes", i), "%s overlaps %s of uplink %s: a prefix belongs to one provider", p, q, other)
				}
			}
			owner[p] = u.Name
		}
	}
	if r == nil {
		r = &rawIPv6{}
	} else if len(owner) == 0 {
		fail("ipv6", "[ipv6] is set but no [[uplink]] has prefixes: name each provider's LAN prefix, e.g. prefixes = [\"2001:db8:1::/64\"]")
	}
	if r.Interfaces != nil {
		v.Interfaces = r.Interfaces
	}
	for _, n := range r.Interfaces { // lan_interfaces are checked under their own key
		if why := ifnameProblem(n); why != "" {
			fail("ipv6.interfaces", "%q is not a valid interface name: %s", n, why)
		}
		for _, u := range cfg.Uplinks {
			if u.Interface == n {
				fail("ipv6.interfaces", "%s is uplink %s's interface, not a LAN", n, u.Name)
			}
		}
	}
	if len(owner) > 0 && len(v.Interfaces) == 0 {
		fail(firstKey, "uplinks have LAN prefixes but no LAN interface is named: set [ipv6] interfaces = [\"lan0\"] (or [daemon] lan_interfaces)")
	}
	if r.Advertise != nil {
		v.Advertise = *r.Advertise
		if !slices.Contains([]string{uplink.AdvertiseRA, uplink.AdvertiseLifetimes, uplink.AdvertiseNone}, v.Advertise) {
			fail("ipv6.advertise", "%q is not %q (uplinkd sends RAs), %q (it sets the gateway's LAN addresses' preferred lifetime, which odhcpd copies) or %q", v.Advertise, uplink.AdvertiseRA, uplink.AdvertiseLifetimes, uplink.AdvertiseNone)
		}
	}
	if r.NPTv6 != nil {
		v.NPTv6 = *r.NPTv6
	}
	if v.NPTv6 && len(owner) > 0 && !cfg.Daemon.Pinning {
		fail("ipv6.nptv6", "NPTv6 lives in the connection-mark table: it needs [daemon] pin_connections = true (or set nptv6 = false)")
	}
	for _, a := range r.RDNSS {
		if !a.Addr.Is6() || a.Addr.Is4In6() || a.Addr.IsMulticast() || a.Addr.IsUnspecified() {
			fail("ipv6.rdnss", "%s is not an IPv6 unicast address", a.Addr)
		}
		v.RDNSS = append(v.RDNSS, a.Addr)
	}
	if len(v.RDNSS) > 8 {
		fail("ipv6.rdnss", "%d servers: an RA carries at most 8 here", len(v.RDNSS))
	}
	lifetime := func(d *duration, key string, into *time.Duration, lo, hi time.Duration, why string) {
		if d == nil {
			return
		}
		*into = d.Duration
		if *into < lo || *into > hi || *into%time.Second != 0 {
			fail(key, "%s is outside %s..%s in whole seconds: %s", *into, lo, hi, why)
		}
	}
	lifetime(r.PreferredLifetime, "ipv6.preferred_lifetime", &v.PreferredLifetime, time.Minute, uplink.MaxPreferredLifetime, "RFC 9096 caps it at 45 min")
	lifetime(r.ValidLifetime, "ipv6.valid_lifetime", &v.ValidLifetime, uplink.MinValidLifetime, 24*time.Hour, "hosts ignore a valid lifetime below 2 h (RFC 4862 §5.5.3e)")
	lifetime(r.RouterLifetime, "ipv6.router_lifetime", &v.RouterLifetime, 0, 9000*time.Second, "RFC 4861 allows 0..9000 s")
	return v
}
