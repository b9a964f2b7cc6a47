package uplink

import (
	"net/netip"
	"strings"
	"time"
)

// DNS is [dns]: uplinkd is the authoritative server of a zone the business delegates to it
// (lb.example.com, NS records on each uplink's address) and answers for the names it
// publishes with the addresses of the uplinks that are alive, so customers reach the business
// through whichever provider works.
type DNS struct {
	Zone   string        // fully qualified, lower case ("lb.example.com."); "" when [dns] is absent
	TTL    time.Duration // of every answer, and the zone's negative-caching time
	Policy string        // DNSPolicyBest or DNSPolicyAll
	// RateLimit is the responses per second one client network (/24, /56) gets over UDP; 0:
	// unlimited. Beyond it every second response is sent truncated (the client retries over
	// TCP) and the rest are dropped, so the box cannot be used to amplify an attack.
	RateLimit int
	Names     []DNSName
	// Serve: answer as the zone's authoritative server on the uplinks (false: only Update).
	Serve  bool
	Update DNSUpdate
}

// DNSUpdate is [dns.update]: the published names are also sent as RFC 2136 updates, signed
// with TSIG, to the primary server of a zone that lives elsewhere.
type DNSUpdate struct {
	Server  netip.AddrPort // the primary; invalid: no updates
	Zone    string         // the zone updated (fully qualified); default: [dns] zone
	KeyFile string         // a TSIG key (hmac-sha256) in BIND's format, readable by root only
}

// Enabled says whether updates are sent.
func (u DNSUpdate) Enabled() bool { return u.Server.IsValid() }

// DNS policies: which uplinks' addresses an answer carries.
const (
	DNSPolicyBest = "best" // the uplinks that carry new connections (the best tier)
	DNSPolicyAll  = "all"  // every usable uplink, not drained (inbound spread)
)

// DefaultDNSTTL: a resolver forgets a dead uplink's address at most this long after uplinkd
// stops giving it out, and 30 s costs a busy name a few hundred queries an hour per resolver.
const DefaultDNSTTL = 30 * time.Second

// DefaultDNSRateLimit is the default of DNS.RateLimit.
const DefaultDNSRateLimit = 20

// DNSName is one published name.
type DNSName struct {
	Name    string   // fully qualified, lower case, inside the zone
	Uplinks []string // whose addresses it may carry, in preference order; every uplink when empty
}

// Enabled says whether uplinkd serves DNS.
func (d DNS) Enabled() bool { return d.Zone != "" }

// NSName is the name server name of an uplink in zone: "ns-isp1.lb.example.com.", whose
// address (glue) is the uplink's public address.
func NSName(uplinkName, zone string) string {
	return "ns-" + strings.ToLower(uplinkName) + "." + zone
}
