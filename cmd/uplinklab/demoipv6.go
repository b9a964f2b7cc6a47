package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

// demoIPv6 narrates IPv6 with two providers: each ISP delegates its own /64, the client
// configures itself from uplinkd's RAs, isp1 dies and heals.
func demoIPv6(ctx context.Context, tl *timeline, bin string, cfg netlab.DaemonConfig, cfgName, prefix string, hold time.Duration) (err error) {
	tl.say("building the lab: lan → gw (uplinkd) → isp1 | isp2 → internet; isp1 delegates %s, isp2 %s, no NAT66, both ISPs drop foreign sources (BCP 38)",
		netlab.LANPrefixISP1, netlab.LANPrefixISP2)
	lab, err := newDemoLab(tl, netlab.Options{Prefix: prefix, Servers: true, IPv6Prefixes: true})
	if err != nil {
		return err
	}
	defer lab.close(&err)
	if err := lab.StartChat(); err != nil {
		return err
	}
	cfg.IPv6Prefixes = true
	tl.say("starting uplinkd (%s) with prefixes = [\"%s\"] on isp1 and [\"%s\"] on isp2; [ipv6] defaults: uplinkd sends the RAs, NPTv6 on",
		cfgName, netlab.LANPrefixISP1, netlab.LANPrefixISP2)
	d, err := startDaemon(ctx, lab.Lab, bin, cfg, 15*time.Second, func(ev api.Event) { tl.say("uplinkd: %s", describeEvent(ev)) })
	if err != nil {
		return fmt.Errorf("start uplinkd: %w", err)
	}
	defer d.Stop()

	p1, p2 := netlab.LANPrefixISP1, netlab.LANPrefixISP2
	holds := func(preferred, deprecated netip.Prefix) func() bool {
		return func() bool {
			addrs, err := lab.ClientAddrs6(ctx)
			if err != nil {
				return false
			}
			h1, d1 := netlab.PrefixState(addrs, preferred)
			h2, d2 := netlab.PrefixState(addrs, deprecated)
			return h1 && !d1 && h2 && d2
		}
	}
	if _, ok := pollUntil(ctx, time.Now(), 15*time.Second, 50*time.Millisecond, holds(p1, p2)); !ok {
		return errors.New("the client never configured its addresses from the RAs")
	}
	a, took, err := lab.Solicit(ctx)
	if err != nil {
		return err
	}
	tl.say("the client asks (rdisc6) and gets an RA in %s: router lifetime %d s, %s", took.Round(100*time.Microsecond), a.RouterLifetime, pios(a))
	sayAddrs(ctx, tl, lab.Lab)
	connect := func(src netip.Addr) (local netip.Addr, seen string, err error) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		l, s, err := lab.CheckTCPFrom(c, netlab.RoleLAN, src, netip.AddrPortFrom(netlab.Server6, netlab.TCPPort))
		return l.Addr(), s, err
	}
	old, seen, err := connect(netip.Addr{})
	if err != nil {
		return err
	}
	tl.say("a new IPv6 connection leaves from %s; the server sees %s", old, seen)

	tl.say("── isp1 dies silently ──")
	cut := time.Now()
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		return err
	}
	ev, err := d.WaitEvent(ctx, 10*time.Second, cut, "the failover to isp2", netlab.ActiveIs("isp2"))
	if err != nil {
		return err
	}
	tl.say("failover: isp2 carries the traffic %s after the cut", secs(ev.Time.Sub(cut)))
	if s, ok := pollUntil(ctx, cut, 10*time.Second, 20*time.Millisecond, holds(p2, p1)); ok {
		tl.say("the client shows isp1's prefix deprecated %.2f s after the cut (RFC 8475: preferred lifetime 0, never withdrawn)", s)
	} else {
		return errors.New("the client never deprecated isp1's prefix")
	}
	sayAddrs(ctx, tl, lab.Lab)
	local, seen, err := connect(netip.Addr{})
	if err != nil {
		return err
	}
	tl.say("a new connection now leaves from %s (isp2's prefix, RFC 6724 rule 3); the server sees %s", local, seen)
	_, seen, err = connect(old)
	if err != nil {
		return fmt.Errorf("a socket bound to isp1's old address: %w", err)
	}
	tl.say("a program bound to the old address %s still gets through: the server sees %s (NPTv6 into isp2's prefix, same interface identifier)", old, seen)
	chatCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	chat, err := lab.DialChatTo(chatCtx, netlab.RoleLAN, netlab.Server6)
	cancel()
	if err != nil {
		return err
	}
	defer chat.Close()
	before, err := chat.Ask(2 * time.Second)
	if err != nil {
		return err
	}
	tl.say("a long-lived connection opens from isp2's prefix: the server sees %s", before)
	sleepCtx(ctx, hold)

	tl.say("── isp1 heals ──")
	healed := time.Now()
	if err := lab.Heal(1); err != nil {
		return err
	}
	if _, err := d.WaitEvent(ctx, 20*time.Second, healed, "the failback to isp1", netlab.ActiveIs("isp1")); err != nil {
		return err
	}
	if s, ok := pollUntil(ctx, healed, 10*time.Second, 20*time.Millisecond, holds(p1, p2)); ok {
		tl.say("isp1's prefix is preferred again %.2f s after the heal; isp2's is deprecated, not withdrawn", s)
	} else {
		return errors.New("isp1's prefix never came back")
	}
	local, _, err = connect(netip.Addr{})
	if err != nil {
		return err
	}
	tl.say("a new connection leaves from %s (isp1's prefix)", local)
	after, err := chat.Ask(2 * time.Second)
	if err != nil || after != before {
		return fmt.Errorf("the connection opened on isp2's prefix did not survive the heal: %q %v", after, err)
	}
	tl.say("the long-lived connection on isp2's prefix still answers (%s): isp2 is usable, so its prefix still leaves through it", after)
	return nil
}

func pios(a netlab.Advert) string {
	var out []string
	for _, p := range a.Prefixes {
		out = append(out, fmt.Sprintf("%s preferred %d s valid %d s", p.Prefix, p.Preferred, p.Valid))
	}
	return strings.Join(out, "; ")
}

func sayAddrs(ctx context.Context, tl *timeline, lab *netlab.Lab) {
	addrs, err := lab.ClientAddrs6(ctx)
	if err != nil {
		return
	}
	for _, a := range addrs {
		kind, state := "stable", "preferred"
		if a.Temporary {
			kind = "temporary"
		}
		if a.Deprecated {
			state = "deprecated"
		}
		tl.say("client: %s (%s, %s)", netip.PrefixFrom(a.Addr, a.Prefix.Bits()), kind, state)
	}
}
