package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// HostAddr is one global IPv6 address the LAN client configured by SLAAC, as `ip -6 addr`
// shows it.
type HostAddr struct {
	Addr       netip.Addr
	Prefix     netip.Prefix
	Deprecated bool // preferred lifetime 0: not used as the source of new connections
	Temporary  bool // a privacy address (RFC 8981)
	Preferred  int  // remaining preferred lifetime, s
	Valid      int  // remaining valid lifetime, s
}

// ClientAddrs6 returns the LAN client's global IPv6 addresses.
func (l *Lab) ClientAddrs6(ctx context.Context) ([]HostAddr, error) {
	return l.Addrs6(ctx, RoleLAN, ifLANClient)
}

// Addrs6 returns the global IPv6 addresses of interface dev in role's namespace.
func (l *Lab) Addrs6(ctx context.Context, role, dev string) ([]HostAddr, error) {
	out, err := l.Exec(ctx, role, "ip", "-j", "-6", "addr", "show", "dev", dev, "scope", "global")
	if err != nil {
		return nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local      string `json:"local"`
			Prefixlen  int    `json:"prefixlen"`
			Deprecated bool   `json:"deprecated"`
			Temporary  bool   `json:"temporary"`
			Preferred  any    `json:"preferred_life_time"`
			Valid      any    `json:"valid_life_time"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("netlab: ip -j addr: %w", err)
	}
	var addrs []HostAddr
	for _, lk := range links {
		for _, a := range lk.AddrInfo {
			ip, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			h := HostAddr{Addr: ip, Prefix: netip.PrefixFrom(ip, a.Prefixlen).Masked(), Deprecated: a.Deprecated, Temporary: a.Temporary}
			if f, ok := a.Preferred.(float64); ok {
				h.Preferred = int(f)
			}
			if f, ok := a.Valid.(float64); ok {
				h.Valid = int(f)
			}
			addrs = append(addrs, h)
		}
	}
	return addrs, nil
}

// PrefixState is what the client holds in prefix p: whether it has an address there, and
// whether every such address is deprecated.
func PrefixState(addrs []HostAddr, p netip.Prefix) (has, deprecated bool) {
	deprecated = true
	for _, a := range addrs {
		if p.Contains(a.Addr) {
			has = true
			deprecated = deprecated && a.Deprecated
		}
	}
	return has, has && deprecated
}

// Advert is a router advertisement as rdisc6(8) (package ndisc6) printed it.
type Advert struct {
	RouterLifetime int // s
	Prefixes       []AdvertPrefix
	RDNSS          []netip.Addr
	From           netip.Addr
}

// AdvertPrefix is one prefix information option.
type AdvertPrefix struct {
	Prefix           netip.Prefix
	Valid, Preferred int // s
}

// Prefix returns the option for p, if the advert has one.
func (a Advert) Prefix(p netip.Prefix) (AdvertPrefix, bool) {
	for _, x := range a.Prefixes {
		if x.Prefix == p {
			return x, true
		}
	}
	return AdvertPrefix{}, false
}

// Solicit sends a router solicitation from the LAN client with rdisc6 and returns the first
// answer and how long it took (rdisc6's start included).
func (l *Lab) Solicit(ctx context.Context) (Advert, time.Duration, error) {
	start := time.Now()
	out, err := l.Exec(ctx, RoleLAN, "rdisc6", "-1", "-n", "-r", "1", "-w", "1000", ifLANClient)
	took := time.Since(start)
	if err != nil {
		return Advert{}, took, err
	}
	a, err := parseRdisc6(string(out))
	return a, took, err
}

// parseRdisc6 reads rdisc6's verbose output.
func parseRdisc6(out string) (Advert, error) {
	var a Advert
	num := func(v string) int {
		n, _ := strconv.Atoi(strings.Fields(v + " x")[0])
		return n
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "from" {
			a.From, _ = netip.ParseAddr(f[1])
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		last := len(a.Prefixes) - 1
		switch {
		case key == "Router lifetime":
			a.RouterLifetime = num(val)
		case key == "Prefix":
			p, err := netip.ParsePrefix(val)
			if err != nil {
				return a, fmt.Errorf("netlab: rdisc6 prefix %q", val)
			}
			a.Prefixes = append(a.Prefixes, AdvertPrefix{Prefix: p})
		case key == "Valid time" && last >= 0:
			a.Prefixes[last].Valid = num(val)
		case key == "Pref. time" && last >= 0:
			a.Prefixes[last].Preferred = num(val)
		case key == "Recursive DNS server":
			if ip, err := netip.ParseAddr(val); err == nil {
				a.RDNSS = append(a.RDNSS, ip)
			}
		}
	}
	if !a.From.IsValid() {
		return a, fmt.Errorf("netlab: no router advertisement in rdisc6's output:\n%s", out)
	}
	return a, nil
}
