package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
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
	out, err := l.Exec(ctx, RoleLAN, "ip", "-j", "-6", "addr", "show", "dev", ifLANClient, "scope", "global")
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
