// Package connmark pins every connection to the uplink it started on and
// balances new connections across uplinks by weight, with connection marks in
// one nftables table the daemon owns (family inet, name "uplinkd").
//
// The policy rules that route a mark to its uplink's table (fwmark M/0xff00
// lookup T) belong to the routing package; this package only decides which
// mark a connection carries.
package connmark

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/uplinkd/uplinkd/uplink"
)

const (
	// TableName is the one nftables table (family inet) this package owns.
	TableName = "uplinkd"
	// MarkMask selects the bits of the packet and connection marks that name
	// an uplink; other bits belong to other software and are preserved.
	MarkMask = uplink.MarkMask
)

// Uplink is one uplink as the balancer sees it.
type Uplink struct {
	Name      string // for comments and logs
	Interface string // traffic arriving here is pinned to this uplink; replies from here are never marked
	Mark      uint32 // uplink.MarkOf(id), within MarkMask
	Weight    int    // share of new connections among the eligible uplinks; 0 takes none
	// Live: may keep its connections (Up/Degraded, not drained --now).
	Live bool
	// Dead6: Live, but its IPv6 connections are not kept (its IPv6 is judged apart and
	// died while its IPv4 works).
	Dead6 bool
	// Eligible: may take new connections (in the active set). Implies Live.
	Eligible bool
	// Eligible6: may take new IPv6 connections, when the plan is PerFamily.
	Eligible6 bool
	// Addrs are the uplink's addresses. The gateway's own new connections from one of them
	// are pinned to this uplink: the kernel chose (or the program bound) that source address,
	// and any other uplink's ISP would drop it (BCP 38).
	Addrs []netip.Addr
	// Prefixes are the LAN prefixes this uplink's ISP delegated. While Usable6, new
	// connections from them go through it before any balancing: its ISP is the only one
	// that routes their replies back.
	Prefixes []netip.Prefix
	Usable6  bool
}

// Translation is one NPTv6 mapping (RFC 6296 style, stateful): connections from From that
// leave by Interface take the same interface identifier in To.
type Translation struct {
	Interface string
	From, To  netip.Prefix // IPv6, the same length
}

// PortRange is an inclusive range of destination ports; From == To for one port.
type PortRange struct{ From, To uint16 }

// Service is a per-service rule: new connections that match go to Mark.
// The daemon resolves the rule's ordered uplink list to Mark (the first
// eligible one). Mark 0 means none is available: Block rejects the
// connection, otherwise it falls through to weighted balancing.
type Service struct {
	Name    string
	Src     []netip.Prefix // empty: any
	Dst     []netip.Prefix // empty: any
	Proto   string         // "", "tcp", "udp" or "icmp" (ICMPv6 for IPv6)
	DPorts  []PortRange    // needs Proto tcp, udp or "" (then tcp and udp)
	InIface string         // "": any; never matches the gateway's own traffic
	Mark    uint32
	Block   bool
}

// Plan is the whole desired state of the table.
type Plan struct {
	// LANInterfaces limits forwarded traffic that is balanced to these
	// incoming interfaces; empty means every interface that is not an uplink.
	LANInterfaces []string
	Uplinks       []Uplink
	Services      []Service // first match wins
	// Affinity picks by a hash of the source address instead of at random,
	// so one client keeps using one uplink for all its new connections.
	Affinity bool
	// PerFamily: new IPv6 connections go to the Eligible6 uplinks, not the Eligible ones
	// (an uplink's IPv6 is judged apart from its IPv4, and they differ).
	PerFamily bool
	// Translations are the NPTv6 mappings in force: a dead uplink's prefix leaving by a live
	// one.
	Translations []Translation
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// validIfname: what Linux accepts as an interface name (dev_valid_name: 1-15
// bytes, not . or .., no '/', ':' or whitespace), limited to printable ASCII
// without the quote and the backslash, which nft text cannot carry.
func validIfname(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("\"\\/:", c) >= 0 {
			return false
		}
	}
	return true
}

// Validate reports the first thing in p that cannot be turned into a table.
func (p Plan) Validate() error {
	marks := map[uint32]string{}
	ifaces := map[string]string{}
	for _, u := range p.Uplinks {
		if !nameRE.MatchString(u.Name) {
			return fmt.Errorf("connmark: uplink %q: name must be 1-64 of A-Z a-z 0-9 _ . : -", u.Name)
		}
		if u.Mark == 0 || u.Mark&^MarkMask != 0 {
			return fmt.Errorf("connmark: uplink %s: mark %#x is not a nonzero value within mask %#x", u.Name, u.Mark, MarkMask)
		}
		if other, ok := marks[u.Mark]; ok {
			return fmt.Errorf("connmark: uplink %s: mark %#x already used by uplink %s", u.Name, u.Mark, other)
		}
		marks[u.Mark] = u.Name
		if !validIfname(u.Interface) {
			return fmt.Errorf("connmark: uplink %s: bad interface name %q", u.Name, u.Interface)
		}
		if other, ok := ifaces[u.Interface]; ok {
			return fmt.Errorf("connmark: uplink %s: interface %s already used by uplink %s", u.Name, u.Interface, other)
		}
		ifaces[u.Interface] = u.Name
		if u.Weight < 0 || u.Weight > 1000 {
			return fmt.Errorf("connmark: uplink %s: weight %d is outside 0..1000", u.Name, u.Weight)
		}
		if u.Eligible && !u.Live {
			return fmt.Errorf("connmark: uplink %s: eligible but not live", u.Name)
		}
		for _, pr := range u.Prefixes {
			if !pr.IsValid() || !pr.Addr().Is6() || pr.Addr().Is4In6() || pr.Masked() != pr {
				return fmt.Errorf("connmark: uplink %s: %s is not an IPv6 prefix", u.Name, pr)
			}
		}
	}
	for _, t := range p.Translations {
		switch {
		case !validIfname(t.Interface):
			return fmt.Errorf("connmark: translation: bad interface name %q", t.Interface)
		case !t.From.IsValid() || !t.To.IsValid() || !t.From.Addr().Is6() || !t.To.Addr().Is6() || t.From.Addr().Is4In6() || t.To.Addr().Is4In6():
			return fmt.Errorf("connmark: translation %s to %s: both must be IPv6 prefixes", t.From, t.To)
		case t.From.Bits() != t.To.Bits() || t.From.Masked() != t.From || t.To.Masked() != t.To:
			return fmt.Errorf("connmark: translation %s to %s: prefixes of one length are needed", t.From, t.To)
		}
	}
	for _, l := range p.LANInterfaces {
		if !validIfname(l) {
			return fmt.Errorf("connmark: bad LAN interface name %q", l)
		}
		if u, ok := ifaces[l]; ok {
			return fmt.Errorf("connmark: LAN interface %s is uplink %s's interface", l, u)
		}
	}
	seen := map[string]bool{}
	for _, s := range p.Services {
		if err := s.validate(marks); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("connmark: service %s: duplicate name", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (s Service) validate(marks map[uint32]string) error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("connmark: service %q: name must be 1-64 of A-Z a-z 0-9 _ . : -", s.Name)
	}
	if s.Mark != 0 {
		if _, ok := marks[s.Mark]; !ok {
			return fmt.Errorf("connmark: service %s: mark %#x belongs to no uplink", s.Name, s.Mark)
		}
	}
	switch s.Proto {
	case "", "tcp", "udp":
	case "icmp":
		if len(s.DPorts) > 0 {
			return fmt.Errorf("connmark: service %s: ports need protocol tcp or udp, not icmp", s.Name)
		}
	default:
		return fmt.Errorf("connmark: service %s: protocol %q is not tcp, udp or icmp", s.Name, s.Proto)
	}
	for _, r := range s.DPorts {
		if r.From == 0 || r.From > r.To {
			return fmt.Errorf("connmark: service %s: bad port range %d-%d", s.Name, r.From, r.To)
		}
	}
	for _, p := range slices.Concat(s.Src, s.Dst) {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return fmt.Errorf("connmark: service %s: bad prefix %v", s.Name, p)
		}
	}
	if s.InIface != "" && !validIfname(s.InIface) {
		return fmt.Errorf("connmark: service %s: bad interface name %q", s.Name, s.InIface)
	}
	if len(s.families()) == 0 {
		return fmt.Errorf("connmark: service %s: source and destination prefixes share no address family", s.Name)
	}
	return nil
}

// families lists the address families (4, 6) a service can match, given its
// prefixes: a family is possible unless one of the lists excludes it.
func (s Service) families() []int {
	var out []int
	for _, f := range []int{4, 6} {
		if hasFamily(s.Src, f) && hasFamily(s.Dst, f) {
			out = append(out, f)
		}
	}
	return out
}

func hasFamily(ps []netip.Prefix, f int) bool {
	if len(ps) == 0 {
		return true
	}
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr().Is4() == (f == 4) })
}

func prefixesOf(ps []netip.Prefix, f int) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == (f == 4) {
			out = append(out, p.Masked())
		}
	}
	return out
}
