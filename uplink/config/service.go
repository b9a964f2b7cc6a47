package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/uplinkd/uplinkd/uplink"
)

var protocols = []string{"tcp", "udp", "icmp"}

type rawService struct {
	Name         string     `toml:"name"`
	Src          []string   `toml:"src"`
	Dst          []string   `toml:"dst"`
	Proto        string     `toml:"proto"`
	Ports        []portSpec `toml:"ports"`
	InInterface  string     `toml:"in_interface"`
	Uplinks      []string   `toml:"uplinks"`
	Fallback     *bool      `toml:"fallback"`
	MaxRTT       *duration  `toml:"max_rtt"`
	MaxJitter    *duration  `toml:"max_jitter"`
	MaxLoss      *percent   `toml:"max_loss"`
	MinMOS       *float64   `toml:"min_mos"`
	MoveExisting *bool      `toml:"move_existing"`
}

// portSpec is 443 or "8000-8100".
type portSpec struct{ uplink.PortRange }

func (p *portSpec) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 1 || x > 65535 {
			return fmt.Errorf("port %d is outside 1..65535", x)
		}
		p.From, p.To = uint16(x), uint16(x)
		return nil
	case string:
		lo, hi, ok := strings.Cut(x, "-")
		a, errA := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		b, errB := a, error(nil)
		if ok {
			b, errB = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		}
		if errA != nil || errB != nil || a < 1 || b < a {
			return fmt.Errorf("%q is not a port or a range such as \"8000-8100\"", x)
		}
		p.From, p.To = uint16(a), uint16(b)
		return nil
	}
	return fmt.Errorf("want a port number or a range string such as \"8000-8100\", got %s %v", tomlType(v), v)
}

// parseServices validates [[service]] against the uplinks.
func parseServices(raw []rawService, uplinks []uplink.Uplink, fail func(string, string, ...any)) []uplink.Service {
	var out []uplink.Service
	names := map[string]bool{}
	for i, r := range raw {
		k := func(name string) string { return fmt.Sprintf("service.%d.%s", i, name) }
		s := uplink.Service{Name: r.Name, Proto: r.Proto, InInterface: r.InInterface, Uplinks: r.Uplinks, Fallback: true}
		if r.Fallback != nil {
			s.Fallback = *r.Fallback
		}
		switch {
		case s.Name == "":
			fail(fmt.Sprintf("service.%d", i), "service #%d has no name", i+1)
		case names[s.Name]:
			fail(k("name"), "duplicate service name %q", s.Name)
		}
		names[s.Name] = true
		s.Src = parsePrefixes(r.Src, k("src"), fail)
		s.Dst = parsePrefixes(r.Dst, k("dst"), fail)
		if s.Proto != "" && !slices.Contains(protocols, s.Proto) {
			fail(k("proto"), "unknown protocol %q (known: %s)", s.Proto, strings.Join(protocols, ", "))
		}
		for _, p := range r.Ports {
			s.Ports = append(s.Ports, p.PortRange)
		}
		s.Targets = parseTargets(r, k, fail)
		if r.MoveExisting != nil {
			if s.MoveExisting = *r.MoveExisting; s.MoveExisting && !s.Targets.Set() {
				fail(k("move_existing"), "service %q has no quality targets (max_rtt, max_jitter, max_loss, min_mos) to move its connections for", s.Name)
			}
		}
		if s.Targets.Set() && len(r.Uplinks) < 2 {
			fail(k("uplinks"), "service %q has quality targets but fewer than two uplinks to choose from", s.Name)
		}
		if len(s.Ports) > 0 && s.Proto == "icmp" {
			fail(k("ports"), "icmp has no ports: this rule could never match")
		}
		if len(s.Src) > 0 && len(s.Dst) > 0 && !sharesFamily(s.Src, s.Dst) {
			fail(k("dst"), "src and dst are of different address families: this rule could never match")
		}
		if len(s.Src) == 0 && len(s.Dst) == 0 && s.Proto == "" && len(s.Ports) == 0 && s.InInterface == "" {
			fail(fmt.Sprintf("service.%d", i), "service %q matches all traffic: give it src, dst, proto, ports or in_interface (use priority and weight to steer everything)", s.Name)
		}
		if len(s.Uplinks) == 0 {
			fail(fmt.Sprintf("service.%d", i), "service %q lists no uplinks", s.Name)
		}
		for _, u := range s.Uplinks {
			if !slices.ContainsFunc(uplinks, func(x uplink.Uplink) bool { return x.Name == u }) {
				fail(k("uplinks"), "unknown uplink %q in service %q", u, s.Name)
			}
		}
		for _, u := range uplinks {
			if u.Interface == s.InInterface {
				fail(k("in_interface"), "%s is uplink %q's interface: services steer traffic from the LAN or the gateway", s.InInterface, u.Name)
			}
		}
		out = append(out, s)
	}
	return out
}

func parsePrefixes(in []string, key string, fail func(string, string, ...any)) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				fail(key, "%q is not an address or prefix such as \"192.0.2.0/24\"", s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p != p.Masked() {
			fail(key, "%s has host bits set: did you mean %s?", p, p.Masked())
			continue
		}
		out = append(out, p)
	}
	return out
}

func sharesFamily(a, b []netip.Prefix) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Addr().Is4() == y.Addr().Is4() {
				return true
			}
		}
	}
	return false
}

// parseTargets reads a service's quality targets (max_rtt, max_jitter, max_loss, min_mos).
func parseTargets(r rawService, k func(string) string, fail func(string, string, ...any)) uplink.ServiceTargets {
	var t uplink.ServiceTargets
	if r.MaxRTT != nil {
		if t.MaxRTT = r.MaxRTT.Duration; t.MaxRTT <= 0 {
			fail(k("max_rtt"), "%s must be positive", t.MaxRTT)
		}
	}
	if r.MaxJitter != nil {
		if t.MaxJitter = r.MaxJitter.Duration; t.MaxJitter <= 0 {
			fail(k("max_jitter"), "%s must be positive", t.MaxJitter)
		}
	}
	if r.MaxLoss != nil {
		if t.MaxLoss = float64(*r.MaxLoss); t.MaxLoss <= 0 || t.MaxLoss >= 100 {
			fail(k("max_loss"), "%g%% must be above 0 and below 100", t.MaxLoss)
		}
	}
	if r.MinMOS != nil {
		if t.MinMOS = *r.MinMOS; t.MinMOS < 1 || t.MinMOS > 4.5 {
			fail(k("min_mos"), "%g is outside 1..4.5 (4.4: a clean line; 3.6: users start to complain)", t.MinMOS)
		}
	}
	return t
}
