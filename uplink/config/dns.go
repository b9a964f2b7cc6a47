package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/uplink"
)

type rawDNS struct {
	Zone      *string      `toml:"zone"`
	TTL       *duration    `toml:"ttl"`
	Policy    *string      `toml:"policy"`
	RateLimit *int         `toml:"rate_limit"`
	Names     []rawDNSName `toml:"name"`
	Serve     *bool        `toml:"serve"`
	Update    *rawUpdate   `toml:"update"`
	Check     *rawCheck    `toml:"check"`
	Site      *string      `toml:"site"`
	DNSSEC    *string      `toml:"dnssec"`
	DNSSECNxt *string      `toml:"dnssec_next"`
}

// rawCheck is [dns.check]: how the names' servers are checked.
type rawCheck struct {
	Interval    *duration `toml:"interval"`
	Timeout     *duration `toml:"timeout"`
	DownAfter   *int      `toml:"down_after"`
	UpAfter     *int      `toml:"up_after"`
	FallbackTTL *duration `toml:"fallback_ttl"`
}

type rawUpdate struct {
	Server  *string `toml:"server"`
	Zone    *string `toml:"zone"`
	KeyFile *string `toml:"key_file"`
}

type rawDNSName struct {
	Name     string    `toml:"name"`
	Uplinks  []string  `toml:"uplinks"`
	Servers  []string  `toml:"servers"`
	Quorum   *int      `toml:"quorum"`
	Expect   *string   `toml:"expect"`
	Fallback []address `toml:"fallback"`
	Policy   *string   `toml:"policy"`
	Sites    []string  `toml:"sites"`
}

// parseDNS validates [dns] against the uplinks; a nil r leaves DNS off.
func parseDNS(r *rawDNS, sites []rawSite, uplinks []uplink.Uplink, fail func(string, string, ...any)) uplink.DNS {
	var d uplink.DNS
	if r == nil {
		if len(sites) > 0 {
			fail("site", "[[site]] tables serve a [dns] zone, and there is none")
		}
		return d
	}
	if r.Zone == nil || *r.Zone == "" {
		fail("dns", "[dns] has no zone: name the zone delegated to uplinkd, e.g. zone = \"lb.example.com\"")
		return d
	}
	d.Zone = dns.Fqdn(strings.ToLower(*r.Zone))
	if _, ok := dns.IsDomainName(d.Zone); !ok || d.Zone == "." || dns.CountLabel(d.Zone) < 2 {
		fail("dns.zone", "%q is not a zone name such as \"lb.example.com\"", *r.Zone)
	}
	d.TTL, d.Policy, d.RateLimit = uplink.DefaultDNSTTL, uplink.DNSPolicyBest, uplink.DefaultDNSRateLimit
	if r.TTL != nil {
		d.TTL = r.TTL.Duration
		if d.TTL < 1e9 || d.TTL > 86400e9 || d.TTL%1e9 != 0 {
			fail("dns.ttl", "%s is not a whole number of seconds from 1s to 24h", d.TTL)
		}
	}
	if r.Policy != nil {
		d.Policy = *r.Policy
		if d.Policy != uplink.DNSPolicyBest && d.Policy != uplink.DNSPolicyAll {
			fail("dns.policy", "%q is not %q or %q", d.Policy, uplink.DNSPolicyBest, uplink.DNSPolicyAll)
		}
	}
	if r.RateLimit != nil {
		d.RateLimit = *r.RateLimit
		if d.RateLimit < 0 || d.RateLimit > 100000 {
			fail("dns.rate_limit", "%d is outside 0..100000 (0: no limit)", d.RateLimit)
		}
	}
	d.Serve = true
	if r.Serve != nil {
		d.Serve = *r.Serve
	}
	d.Update = parseUpdate(r.Update, d.Zone, fail)
	if !d.Serve && !d.Update.Enabled() {
		fail("dns.serve", "with serve = false and no [dns.update], nothing publishes the names")
	}
	if len(r.Names) == 0 {
		fail("dns", "[dns] publishes no name: add [[dns.name]] with name = \"www\" (\"@\" is the zone itself)")
	}
	seen := map[string]bool{}
	for i, rn := range r.Names {
		k := func(key string) string { return fmt.Sprintf("dns.name.%d.%s", i, key) }
		n := strings.ToLower(rn.Name)
		switch {
		case n == "":
			fail(fmt.Sprintf("dns.name.%d", i), "[[dns.name]] #%d has no name", i+1)
			continue
		case n == "@":
			n = d.Zone
		case strings.HasSuffix(n, "."):
			// fully qualified: must be inside the zone
		default:
			n = n + "." + d.Zone
		}
		if _, ok := dns.IsDomainName(n); !ok || !dns.IsSubDomain(d.Zone, n) {
			fail(k("name"), "%q is not a name inside the zone %s", rn.Name, d.Zone)
			continue
		}
		if slices.ContainsFunc(uplinks, func(u uplink.Uplink) bool { return uplink.NSName(u.Name, d.Zone) == n }) {
			fail(k("name"), "%q is the name server name of an uplink (ns-<uplink>): choose another", rn.Name)
		}
		if seen[n] {
			fail(k("name"), "%q is published twice", rn.Name)
		}
		seen[n] = true
		for _, u := range rn.Uplinks {
			if !slices.ContainsFunc(uplinks, func(x uplink.Uplink) bool { return x.Name == u }) {
				fail(k("uplinks"), "no uplink is called %q", u)
			}
		}
		d.Names = append(d.Names, parseChecked(rn, uplink.DNSName{Name: n, Uplinks: rn.Uplinks}, k, fail))
	}
	d.Check = parseCheck(r.Check, fail)
	if r.DNSSEC != nil {
		if d.DNSSEC = *r.DNSSEC; !strings.HasPrefix(d.DNSSEC, "/") {
			fail("dns.dnssec", "%q is not an absolute path (uplinkd --dnssec-keygen FILE makes a key)", d.DNSSEC)
		}
	}
	if r.DNSSECNxt != nil {
		d.DNSSECNext = *r.DNSSECNxt
		switch {
		case d.DNSSEC == "":
			fail("dns.dnssec_next", "a key is rolled in beside [dns] dnssec, and there is none")
		case !strings.HasPrefix(d.DNSSECNext, "/"):
			fail("dns.dnssec_next", "%q is not an absolute path", d.DNSSECNext)
		case d.DNSSECNext == d.DNSSEC:
			fail("dns.dnssec_next", "%q is the key in use", d.DNSSECNext)
		}
	}
	parseSites(sites, r.Site, &d, r.Names, fail)
	checkServed(d, r.Names, fail)
	return d
}

// parseChecked adds a name's servers, quorum, expected body and fallback to n.
func parseChecked(r rawDNSName, n uplink.DNSName, k func(string) string, fail func(string, string, ...any)) uplink.DNSName {
	for _, s := range r.Servers {
		srv, err := uplink.ParseServer(s)
		if err != nil {
			fail(k("servers"), "%v", err)
			continue
		}
		if slices.ContainsFunc(n.Servers, func(x uplink.Server) bool { return x == srv }) {
			fail(k("servers"), "%q is listed twice", s)
		}
		n.Servers = append(n.Servers, srv)
	}
	if r.Quorum != nil {
		n.Quorum = *r.Quorum // judged against the servers once [[site]] may have given them
	}
	if r.Expect != nil {
		if *r.Expect == "" || len(*r.Expect) > 256 {
			fail(k("expect"), "want 1 to 256 characters of the health page's body")
		}
		for i := range n.Servers {
			if n.Servers[i].Method.Name != uplink.MethodTCP {
				n.Servers[i].Method.Expect = *r.Expect
			}
		}
	}
	for _, a := range r.Fallback {
		n.Fallback = append(n.Fallback, a.Addr)
	}
	return n
}

// checkServed judges what needs a name's servers, once [[site]] may have given them.
func checkServed(d uplink.DNS, raw []rawDNSName, fail func(string, string, ...any)) {
	if len(d.Names) != len(raw) {
		return // a name was refused already: indexes would not match
	}
	for i, n := range d.Names {
		k := func(key string) string { return fmt.Sprintf("dns.name.%d.%s", i, key) }
		if raw[i].Quorum != nil && (n.Quorum < 1 || n.Quorum > len(n.Servers)) {
			fail(k("quorum"), "%d is outside 1..%d (the servers listed)", n.Quorum, len(n.Servers))
		}
		if len(n.Fallback) > 0 && len(n.Servers) == 0 {
			fail(k("fallback"), "a fallback is answered when the name's servers fail: list them in servers")
		}
		if raw[i].Expect != nil && !slices.ContainsFunc(n.Servers, func(s uplink.Server) bool { return s.Method.Name != uplink.MethodTCP }) {
			fail(k("expect"), "only an http or https server has a body to match")
		}
	}
}

// parseCheck reads [dns.check] over the defaults.
func parseCheck(r *rawCheck, fail func(string, string, ...any)) uplink.ServerCheck {
	c := uplink.DefaultServerCheck
	if r == nil {
		return c
	}
	for _, d := range []struct {
		raw      *duration
		to       *time.Duration
		key      string
		min, max time.Duration
	}{
		{r.Interval, &c.Interval, "dns.check.interval", 50 * time.Millisecond, time.Hour},
		{r.Timeout, &c.Timeout, "dns.check.timeout", 10 * time.Millisecond, time.Minute},
		{r.FallbackTTL, &c.FallbackTTL, "dns.check.fallback_ttl", time.Second, 24 * time.Hour},
	} {
		if d.raw == nil {
			continue
		}
		if *d.to = d.raw.Duration; *d.to < d.min || *d.to > d.max {
			fail(d.key, "%s is outside %s..%s", *d.to, d.min, d.max)
		}
	}
	if c.Timeout >= c.Interval && c.Interval >= 50*time.Millisecond {
		fail("dns.check.timeout", "%s is not shorter than the interval %s: a check still running skips the next, and a dead server is judged late", c.Timeout, c.Interval)
	}
	if c.FallbackTTL%time.Second != 0 {
		fail("dns.check.fallback_ttl", "%s is not a whole number of seconds", c.FallbackTTL)
	}
	for _, n := range []struct {
		raw *int
		to  *int
		key string
	}{{r.DownAfter, &c.DownAfter, "dns.check.down_after"}, {r.UpAfter, &c.UpAfter, "dns.check.up_after"}} {
		if n.raw == nil {
			continue
		}
		if *n.to = *n.raw; *n.to < 1 || *n.to > 100 {
			fail(n.key, "%d is outside 1..100", *n.to)
		}
	}
	return c
}

// parseUpdate validates [dns.update]; nil: no updates.
func parseUpdate(r *rawUpdate, zone string, fail func(string, string, ...any)) uplink.DNSUpdate {
	var u uplink.DNSUpdate
	if r == nil {
		return u
	}
	if r.Server == nil {
		fail("dns.update", "[dns.update] has no server: name the zone's primary, e.g. server = \"192.0.2.53\"")
	} else if ap, err := netip.ParseAddrPort(*r.Server); err == nil {
		u.Server = ap
	} else if a, err := netip.ParseAddr(*r.Server); err == nil {
		u.Server = netip.AddrPortFrom(a, 53)
	} else {
		fail("dns.update.server", "%q is not an address or address:port (\"192.0.2.53\", \"[2001:db8::53]:5353\"); no names, so the update never depends on DNS", *r.Server)
	}
	u.Zone = zone
	if r.Zone != nil {
		u.Zone = dns.Fqdn(strings.ToLower(*r.Zone))
		if _, ok := dns.IsDomainName(u.Zone); !ok || u.Zone == "." || !dns.IsSubDomain(u.Zone, zone) {
			fail("dns.update.zone", "%q must be the zone that holds %s (it or a parent of it)", *r.Zone, zone)
		}
	}
	switch {
	case r.KeyFile == nil:
		fail("dns.update", "[dns.update] has no key_file: updates are signed with TSIG (tsig-keygen -a hmac-sha256 uplinkd > /etc/uplinkd/tsig.key; chmod 600)")
	case !strings.HasPrefix(*r.KeyFile, "/"):
		fail("dns.update.key_file", "%q is not an absolute path", *r.KeyFile)
	default:
		u.KeyFile = *r.KeyFile
	}
	return u
}
