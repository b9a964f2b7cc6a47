package uplink

import (
	"fmt"
	"net/netip"
	"strconv"
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
	// Check is how the names' servers are checked.
	Check ServerCheck
	// DNSSEC is the zone's signing key file (config.LoadDNSSECKey); "": answers are unsigned.
	// DNSSECNext is a key being rolled in: published beside it, its DNSKEY RRset signed by
	// both, so the parent's DS can be swapped to it before it signs alone.
	DNSSEC, DNSSECNext string
	// Site is this gateway's site and Sites every site that serves the zone ([[site]]); none:
	// one site, the zone's name servers are the uplinks'.
	Site  string
	Sites []Site
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
	// Servers are the servers behind the name, checked from the gateway: the name carries
	// the uplinks' addresses only while at least Quorum of them pass (NeedServers). None: it
	// is published whatever the servers do.
	Servers []Server
	Quorum  int
	// Fallback is answered, with [dns.check] fallback_ttl, while the name is not healthy (a
	// status page hosted elsewhere); none: the uplinks' addresses still, an answer that may
	// work beating none.
	Fallback []netip.Addr
	// Policy picks among the healthy sites (SitePolicy*), in the order of Sites (every site
	// when empty); with one site it is moot.
	Policy string
	Sites  []string
}

// Enabled says whether uplinkd serves DNS.
func (d DNS) Enabled() bool { return d.Zone != "" }

// NSName is the name server name of an uplink in zone: "ns-isp1.lb.example.com.", whose
// address (glue) is the uplink's public address.
func NSName(uplinkName, zone string) string {
	return "ns-" + strings.ToLower(uplinkName) + "." + zone
}

// Server is one server behind a published name (a DNAT's target on the LAN, or the gateway
// itself), and how the gateway checks it: a tcp connect, or an http/https GET of Method.Path
// answered 2xx/3xx (and, with Method.Expect, a body containing it).
type Server struct {
	Addr   netip.Addr
	Method Method
}

// String is the server as the configuration writes it: "http://192.0.2.10:8080/healthz".
func (s Server) String() string {
	host := s.Addr.String()
	if s.Addr.Is6() {
		host = "[" + host + "]"
	}
	return s.Method.Name + "://" + host + ":" + strconv.Itoa(int(s.Method.Port)) + s.Method.Path
}

// ServerCheck is how every name's servers are checked ([dns.check]).
type ServerCheck struct {
	Interval  time.Duration // one check of each server every interval
	Timeout   time.Duration // a check fails when it takes longer
	DownAfter int           // failed checks in a row before a server is down
	UpAfter   int           // passed checks in a row before it is up again
	// FallbackTTL is the TTL of a name's fallback answer: short, so that resolvers come back
	// soon after a server does.
	FallbackTTL time.Duration
}

// DefaultServerCheck judges a dead server in at most 2 s (three failed checks every 500 ms,
// each given 400 ms: a silent one's check ends before the next is due) and a returned one in
// 1.5 s.
var DefaultServerCheck = ServerCheck{Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond,
	DownAfter: 3, UpAfter: 3, FallbackTTL: 10 * time.Second}

// Checked says whether the name's servers are checked.
func (n DNSName) Checked() bool { return len(n.Servers) > 0 }

// NeedServers is how many of its servers must pass for the name to be healthy.
func (n DNSName) NeedServers() int { return min(max(n.Quorum, 1), len(n.Servers)) }

// ParseServer reads a checked server as the configuration writes it: "tcp://192.0.2.10:443",
// "http://192.0.2.10/healthz", "https://[2001:db8::10]:8443/up", or a bare address (a tcp
// connect to port 80).
func ParseServer(s string) (Server, error) {
	if !strings.Contains(s, "://") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return Server{}, fmt.Errorf("%q is not an address nor METHOD://ADDRESS[:PORT][/PATH] (tcp, http or https)", s)
		}
		return Server{Addr: a.Unmap(), Method: Method{Name: MethodTCP, Port: DefaultTCPPort}}, nil
	}
	name, rest, _ := strings.Cut(s, "://")
	hostport, path := rest, ""
	if i := strings.Index(rest, "/"); i >= 0 {
		hostport, path = rest[:i], rest[i:]
	}
	switch name {
	case MethodTCP:
		if path != "" {
			return Server{}, fmt.Errorf("%q: a tcp check has no path (http or https have)", s)
		}
	case MethodHTTP, MethodHTTPS:
		if strings.ContainsAny(path, " \t\r\n") {
			return Server{}, fmt.Errorf("%q: the path has blanks", s)
		}
	default:
		return Server{}, fmt.Errorf("%q: a server is checked with tcp, http or https, not %q", s, name)
	}
	a, m, err := ParseTarget(name + "://" + hostport)
	if err != nil {
		return Server{}, err
	}
	m.Path = path
	return Server{Addr: a, Method: *m}, nil
}
