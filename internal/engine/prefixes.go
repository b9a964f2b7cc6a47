package engine

import (
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
)

// learnLAN reads the [ipv6] LAN interfaces' addresses: the /64s a DHCPv6-PD client put there
// name the delegated prefixes followed. It says whether the set of prefixes changed.
func (e *Engine) learnLAN() bool {
	if !e.cfg.IPv6Enabled() {
		e.lan = nil
		return false
	}
	lan := map[string][]routing.AddrPrefix{}
	e.lanRead = time.Now() // the kernel's lifetimes count from here
	for _, n := range e.cfg.IPv6.Interfaces {
		prefixes, err := e.opt.Kernel.Prefixes6(n)
		if err != nil {
			e.log.Debug("LAN interface unreadable; its followed prefixes are gone until it returns", "interface", n, "err", err)
			continue
		}
		lan[n] = prefixes
	}
	changed := !samePrefixes(e.lan, lan)
	e.lan = lan
	return changed
}

func samePrefixes(a, b map[string][]routing.AddrPrefix) bool {
	if len(a) != len(b) {
		return false
	}
	for n, as := range a {
		bs, ok := b[n]
		if !ok || len(as) != len(bs) {
			return false
		}
		for i := range as {
			if as[i].Prefix != bs[i].Prefix || as[i].Addr != bs[i].Addr {
				return false
			}
		}
	}
	return true
}

// isLAN says whether ifname is an [ipv6] LAN interface.
func (e *Engine) isLAN(ifname string) bool {
	return e.cfg.IPv6Enabled() && slices.Contains(e.cfg.IPv6.Interfaces, ifname)
}

// prefixes are u's LAN /64s: each static /64 (on the LAN interfaces that hold an address in
// it, or all of them), and each /64 of a LAN address inside one of its delegations, with the
// delegation's remaining lifetimes as caps (RFC 9096).
func (e *Engine) prefixes(u uplink.Uplink) []dataplane.Prefix {
	v := e.cfg.IPv6
	var out []dataplane.Prefix
	// add adds p with lifetimes pref and valid, counting down from until when it is not zero.
	add := func(p netip.Prefix, ifname string, pref, valid time.Duration, until time.Time) {
		for i := range out {
			if out[i].Prefix == p {
				if ifname != "" && !slices.Contains(out[i].Interfaces, ifname) {
					out[i].Interfaces = append(out[i].Interfaces, ifname)
				}
				return
			}
		}
		d := dataplane.Prefix{Prefix: p, Preferred: min(pref, v.PreferredLifetime), Valid: min(valid, v.ValidLifetime)}
		if !until.IsZero() {
			d.PreferredUntil, d.ValidUntil = until.Add(pref), until.Add(valid)
		}
		if ifname != "" {
			d.Interfaces = []string{ifname}
		}
		out = append(out, d)
	}
	for _, cfgp := range u.Prefixes {
		static := cfgp.Bits() == uplink.PrefixLen
		for _, n := range v.Interfaces {
			for _, a := range e.lan[n] {
				if a.Prefix.Bits() != uplink.PrefixLen || !cfgp.Contains(a.Addr) {
					continue
				}
				pref, valid, until := v.PreferredLifetime, v.ValidLifetime, time.Time{}
				if !a.Forever && !static {
					pref, valid, until = a.Preferred, a.Valid, e.lanRead
				}
				add(a.Prefix, n, pref, valid, until)
			}
		}
		if static && !slices.ContainsFunc(out, func(p dataplane.Prefix) bool { return p.Prefix == cfgp }) {
			add(cfgp, "", v.PreferredLifetime, v.ValidLifetime, time.Time{})
			out[len(out)-1].Interfaces = slices.Clone(v.Interfaces)
		}
	}
	return out
}
