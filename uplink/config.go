package uplink

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is a validated uplinkd configuration with every default filled in.
type Config struct {
	Path     string
	Daemon   Daemon
	Defaults Probe
	Uplinks  []Uplink
	Services []Service
	Hooks    []Hook
	HA       HA
	DNS      DNS
	IPv6     IPv6
}

// HA is [ha]: this box is one of a keepalived gateway pair, and uplinkd steers its VRRP
// priority through a track file (internal/ha writes it).
type HA struct {
	TrackFile string // keepalived's track_file; "" when the box is not in a pair
}

// Daemon holds the daemon-wide settings of [daemon].
type Daemon struct {
	Socket        string
	SocketGroup   string
	LogLevel      string
	TableBase     int  // the active table; uplink tables are TableBase + ID
	RulePriority  int  // start of the policy rule band
	CleanupOnExit bool // false: fail static, routes stay when the daemon stops
	// Pinning keeps every connection on the uplink it started on (connection marks in
	// nftables table inet uplinkd) and balances new connections by weight.
	Pinning       bool
	Affinity      bool     // balance by source address: one LAN host, one uplink
	LANInterfaces []string // forwarded traffic that is balanced; empty: every non-uplink interface
	// MetricsListen is the address ("127.0.0.1:9847") of the Prometheus metrics listener;
	// empty: no listener.
	MetricsListen string
	// StateFile keeps what must outlive a restart (drains, prefixes that left the LAN);
	// empty: nothing is remembered.
	StateFile string
}

// Probe is how one uplink is probed and judged.
type Probe struct {
	Targets []netip.Addr
	Method  Method
	// TargetMethods are per-target methods ("tcp://198.51.100.53:443" in the file); a target
	// without one is probed with Method.
	TargetMethods map[netip.Addr]Method
	Interval      time.Duration // time between rounds
	Timeout       time.Duration // a target answers if its reply comes within this
	Quorum        int           // targets that must answer for the uplink to count as alive
	DownAfter     int           // rounds without quorum before Down
	UpAfter       int           // good rounds in a row before Up again
	MaxLoss       float64       // percent over the window before Degraded
	MaxRTT        time.Duration // mean RTT over the window before Degraded
	Window        int           // rounds in the sliding loss/RTT window
	HoldDown      time.Duration // extra wait before a flapping uplink may come back; doubles per flap
	MaxHoldDown   time.Duration // cap of the hold-down; also how long stability takes to forget one flap
}

// Uplink is one provider.
type Uplink struct {
	ID        int // stable small number: table TableBase+ID, mark MarkOf(ID)
	Name      string
	Interface string
	Gateway   netip.Addr // IPv4 gateway; zero: learned from the kernel
	Gateway6  netip.Addr // IPv6 gateway; zero: learned from the kernel
	Priority  int        // tier: lower is preferred
	Weight    int        // share within its tier, 1..256
	// Public4 and Public6 are the addresses customers reach the business at through this
	// uplink ([dns]); invalid: the interface's own global address (no NAT in front of it).
	Public4, Public6 netip.Addr
	// Prefixes are the LAN prefixes this provider delegates ([ipv6]): a /64 is static; a
	// shorter one is the delegation a DHCPv6-PD client takes /64s from, and every LAN address
	// inside it names one, followed as the client adds and removes them.
	Prefixes []netip.Prefix
	// Metered: every byte costs (a 4G/5G SIM). While it carries nothing and is not needed, it
	// is probed one target every MeteredInterval instead of every target every interval.
	Metered bool
	Probe   Probe
}

// MeteredInterval is the gap between the probes of a metered uplink that is not needed: one
// ICMP echo and its reply (88 bytes over IPv4) every 15 s is about 0.5 MB a day.
const MeteredInterval = 15 * time.Second

// MarkMask covers the bits of the firewall mark that uplinkd uses.
const MarkMask uint32 = 0xff00

// Mark is the firewall mark that routes through this uplink's table.
func (u Uplink) Mark() uint32 { return MarkOf(u.ID) }

// MarkOf is the mark of the uplink with id. With IDOf, the one place that knows the id sits
// in the mark's second byte (MarkMask).
func MarkOf(id int) uint32 { return uint32(id) << 8 }

// IDOf is the uplink id a mark names.
func IDOf(mark uint32) int { return int(mark&MarkMask) >> 8 }

// Table is this uplink's routing table.
func (u Uplink) Table(d Daemon) int { return d.TableBase + u.ID }

// Uplink returns the uplink called name.
func (c *Config) Uplink(name string) (Uplink, bool) {
	for _, u := range c.Uplinks {
		if u.Name == name {
			return u, true
		}
	}
	return Uplink{}, false
}

// DefaultConfig returns the built-in defaults: a silent failure is detected in about 2 s
// (3 rounds of 500ms, each target given 1s).
func DefaultConfig() Config {
	return Config{
		Daemon: Daemon{
			Socket:       DefaultSocket,
			StateFile:    DefaultStateFile,
			SocketGroup:  "uplinkd",
			LogLevel:     "info",
			TableBase:    DefaultTableBase,
			RulePriority: DefaultRulePriority,
			Pinning:      true,
		},
		Defaults: Probe{
			Method:      Method{Name: MethodICMP},
			Interval:    500 * time.Millisecond,
			Timeout:     time.Second,
			DownAfter:   3,
			UpAfter:     10,
			MaxLoss:     20,
			MaxRTT:      500 * time.Millisecond,
			Window:      20,
			HoldDown:    10 * time.Second,
			MaxHoldDown: 5 * time.Minute,
		},
	}
}

// DefaultTrackFile is where uplinkd writes the value by default: its runtime directory, which
// systemd creates (and which ProtectSystem=strict leaves writable).
const DefaultTrackFile = "/run/uplinkd/vrrp-priority"

// DefaultStateFile is in the unit's StateDirectory=uplinkd, the one place under /var that
// ProtectSystem=strict leaves writable.
const DefaultStateFile = "/var/lib/uplinkd/state.json"

// DefaultSocket is where the daemon listens unless told otherwise, and where uplinkctl looks.
const DefaultSocket = "/run/uplinkd/uplinkd.sock"

// The default routing table base and rule priority band: tables 1000 (active) and 1001..1250
// stay clear of the kernel's 253..255 for every id; rules 1000.. leave room below and above.
const (
	DefaultTableBase    = 1000
	DefaultRulePriority = 1000
)

// MaxUplinkID is the largest uplink id: marks (MarkOf) are within MarkMask.
const MaxUplinkID = 250

// Method is how a target is probed, parsed once from the configuration's "icmp", "tcp",
// "http", "https" or "dns", each but icmp with an optional ":PORT".
type Method struct {
	Name string // one of the Method* constants
	Port uint16 // tcp, http, https, dns: the port (the method's default when not written)
	// Path is what http and https GET ("/" when empty); Expect, if set, must be in the first
	// 4 KiB of the body (a server check's health page).
	Path, Expect string
}

// The probe methods.
const (
	MethodICMP  = "icmp"  // echo request
	MethodTCP   = "tcp"   // a completed handshake
	MethodHTTP  = "http"  // GET / answered 2xx or 3xx
	MethodHTTPS = "https" // the same over TLS, the certificate verified for the target's address
	MethodDNS   = "dns"   // a query answered (any rcode)
)

// DefaultTCPPort is the port of a bare "tcp" method.
const DefaultTCPPort = 80

// defaultPorts are the ports of the methods written without one.
var defaultPorts = map[string]uint16{MethodTCP: DefaultTCPPort, MethodHTTP: 80, MethodHTTPS: 443, MethodDNS: 53}

// Methods are the probe methods the configuration accepts, as a person writes them.
var Methods = []string{"icmp", "tcp", "tcp:PORT", "http", "http:PORT", "https", "https:PORT", "dns", "dns:PORT"}

// ParseMethod reads "icmp", or "tcp", "http", "https", "dns" with an optional ":PORT"
// (defaults 80, 80, 443, 53).
func ParseMethod(s string) (Method, error) {
	name, port, hasPort := strings.Cut(s, ":")
	if name == MethodICMP && !hasPort {
		return Method{Name: MethodICMP}, nil
	}
	def, ok := defaultPorts[name]
	switch {
	case ok && !hasPort:
		return Method{Name: name, Port: def}, nil
	case ok:
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 || strings.HasPrefix(port, "0") || strings.HasPrefix(port, "+") {
			return Method{}, fmt.Errorf("%q: the port must be a number 1..65535", s)
		}
		return Method{Name: name, Port: uint16(p)}, nil
	}
	return Method{}, fmt.Errorf("unknown probe method %q (known: %s)", s, strings.Join(Methods, ", "))
}

// String writes the method as the configuration does.
func (m Method) String() string {
	if def, ok := defaultPorts[m.Name]; ok && m.Port != def {
		return fmt.Sprintf("%s:%d", m.Name, m.Port)
	}
	return m.Name
}

// Service is a per-service traffic rule: new connections that match leave through the first
// listed uplink that can carry them.
type Service struct {
	Name        string
	Src, Dst    []netip.Prefix // empty: any
	Proto       string         // "", "tcp", "udp" or "icmp"
	Ports       []PortRange    // destination ports; needs tcp or udp (or no proto: both)
	InInterface string         // incoming interface; "" any
	Uplinks     []string       // in order of preference
	// Fallback: when none of Uplinks can carry traffic, balance the connection like any
	// other (true, the default) or refuse it (false: e.g. never put backups on a metered link).
	Fallback bool
	// Targets: its new connections want an uplink that meets them (see Steering).
	Targets ServiceTargets
	// MoveExisting: when it leaves an uplink for missing its targets, its connections there
	// are ended too (their next packet starts over on the new uplink).
	MoveExisting bool
}

// IPv6Only says whether the service matches IPv6 alone (every prefix it names is IPv6): it then
// follows its uplinks' IPv6 judgement where that is made apart.
func (s Service) IPv6Only() bool {
	ps := append(slices.Clone(s.Src), s.Dst...)
	return len(ps) > 0 && !slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is4() || p.Addr().Is4In6() })
}

// PortRange is an inclusive range of ports.
type PortRange struct{ From, To uint16 }

// Hook is a program run on events ([[hook]]): it never delays a decision; it sees the event in
// its environment.
type Hook struct {
	Name    string        // for logs and metrics; defaults to the program's base name
	Events  []string      // a subset of HookEvents
	Command []string      // absolute program path and its arguments; no shell
	Timeout time.Duration // the run is killed (its whole process group) after this
}

// HookEvents are the events a hook may ask for. "drain" covers undrain too.
var HookEvents = []string{"state", "active", "drain", "reload", "hold", "server"}

// The bounds of a hook's timeout.
const (
	DefaultHookTimeout = 10 * time.Second
	MaxHookTimeout     = 5 * time.Minute
)

// SplitFamilies divides p by the family of its targets when it has targets of both: IPv4 and
// IPv6 are then judged apart, each with the quorum clamped to its own targets. ok is false
// when all targets are of one family (that family's judgement holds for both).
func (p Probe) SplitFamilies() (v4, v6 Probe, ok bool) {
	v4, v6 = p, p
	v4.Targets, v6.Targets = nil, nil
	for _, t := range p.Targets {
		if t.Is4() {
			v4.Targets = append(v4.Targets, t)
		} else {
			v6.Targets = append(v6.Targets, t)
		}
	}
	if len(v4.Targets) == 0 || len(v6.Targets) == 0 {
		return p, Probe{}, false
	}
	v4.Quorum, v6.Quorum = min(p.Quorum, len(v4.Targets)), min(p.Quorum, len(v6.Targets))
	return v4, v6, true
}

// MethodOf is how target is probed.
func (p Probe) MethodOf(target netip.Addr) Method {
	if m, ok := p.TargetMethods[target]; ok {
		return m
	}
	return p.Method
}

// ParseTarget reads a probe target: an address ("192.0.2.53"), or a method and an address
// with an optional port ("tcp://198.51.100.53:443", "https://[2001:db8::1]", "dns://192.0.2.53").
// m is nil for a bare address.
func ParseTarget(s string) (addr netip.Addr, m *Method, err error) {
	name, rest, ok := strings.Cut(s, "://")
	if !ok {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Addr{}, nil, fmt.Errorf("%q is not an IPv4 or IPv6 address, nor METHOD://ADDRESS[:PORT]", s)
		}
		return a.Unmap(), nil, nil
	}
	host, port := rest, ""
	if ap, err := netip.ParseAddrPort(rest); err == nil {
		host, port = ap.Addr().String(), strconv.Itoa(int(ap.Port()))
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1]
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, nil, fmt.Errorf("%q: %q is not an address (write an IPv6 address with a port as [2001:db8::1]:443)", s, rest)
	}
	spec := name
	if port != "" {
		spec += ":" + port
	}
	method, err := ParseMethod(spec)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("%q: %w", s, err)
	}
	return a.Unmap(), &method, nil
}
