package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

// shopPort is where the lab's "shop" listens on the gateway: on a real site a DNAT to a LAN
// server; here the gateway answers itself, which is what the customer sees either way.
const shopPort = 8443

// demoTTL keeps the demo short; the shipped TTL is 30 s (README, "Customers reaching in").
const demoTTL = 3 * time.Second

// demoInbound narrates customers reaching in: a customer on the Internet resolves www through
// an Unbound resolver, which asks uplinkd on both ISPs' addresses, and connects to the
// answer. isp1 dies: the answer changes and the customer is back through isp2; then the heal.
func demoInbound(ctx context.Context, tl *timeline, bin string, cfg netlab.DaemonConfig, cfgName, prefix string, hold time.Duration) (err error) {
	tl.say("building the lab: customer + resolver on the internet → isp1 | isp2 → gw (uplinkd, the zone %s's name server on both ISPs' addresses)", benchZone)
	lab, err := newDemoLab(tl, netlab.Options{Prefix: prefix})
	if err != nil {
		return err
	}
	defer lab.close(&err)
	// The shop answers on the gateway's every address (the lab removes it with the rest).
	if _, err := lab.StartWebServer(netlab.RoleGW, "the gateway", netip.AddrPortFrom(netip.IPv4Unspecified(), shopPort)); err != nil {
		return err
	}
	cfg.Extra = fmt.Sprintf("\n[dns]\nzone = %q\nttl = %q\n\n[[dns.name]]\nname = \"www\"\n", benchZone, demoTTL)
	tl.say("starting uplinkd (%s) serving www.%s with TTL %s (the shipped TTL is 30 s)", cfgName, benchZone, demoTTL)
	d, err := startDaemon(ctx, lab.Lab, bin, cfg, 15*time.Second, func(ev api.Event) { tl.say("uplinkd: %s", describeEvent(ev)) })
	if err != nil {
		return fmt.Errorf("start uplinkd: %w", err)
	}
	defer d.Stop()
	dir, err := os.MkdirTemp("", "uplinklab-unbound")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	resolver := netlab.Server4
	ub, err := lab.StartUnbound(ctx, netlab.RoleInet, resolver, benchZone, []netip.Addr{netlab.GWWAN1Addr4, netlab.GWWAN2Addr4}, dir)
	if err != nil {
		return err
	}
	defer ub.Stop(2 * time.Second)
	tl.say("the customer's resolver (Unbound at %s) knows the zone's name servers: %s (isp1) and %s (isp2)", resolver, netlab.GWWAN1Addr4, netlab.GWWAN2Addr4)

	// visit is one customer visit: resolve www, connect, read the shop's greeting.
	visit := func() (answer, greeting string) {
		a, err := lab.Dig(ctx, netlab.RoleInet, "@"+resolver.String(), "www."+benchZone, "A")
		if err != nil || len(a.Answer) == 0 {
			return "", ""
		}
		answer = a.Answer[0][1]
		addr, err := netip.ParseAddr(answer)
		if err != nil {
			return answer, ""
		}
		page := lab.Get(ctx, netlab.RoleInet, netip.AddrPortFrom(addr, shopPort))
		if i := strings.Index(page, "the shop at "); i >= 0 {
			return answer, strings.TrimSpace(page[i:])
		}
		return answer, ""
	}
	reached := func(via netip.Addr) func() bool {
		return func() bool { answer, greeting := visit(); return answer == via.String() && greeting != "" }
	}
	if _, ok := pollUntil(ctx, time.Now(), 15*time.Second, 100*time.Millisecond, reached(netlab.GWWAN1Addr4)); !ok {
		return errors.New("the customer never reached the shop through isp1")
	}
	answer, greeting := visit()
	tl.say("customer: www.%s is %s; connected: %q", benchZone, answer, greeting)

	tl.say("breaking isp1 silently (its upstream drops everything, the link stays up)")
	cut := time.Now()
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		return err
	}
	if _, ok := pollUntil(ctx, cut, 20*time.Second, 50*time.Millisecond, func() bool {
		st, err := d.Status(ctx)
		return err == nil && len(st.Active) == 1 && st.Active[0] == "isp2"
	}); !ok {
		return errors.New("uplinkd never moved to isp2")
	}
	tl.say("uplinkd now answers www with isp2's address; the resolver may still hold isp1's for up to the TTL (%s)", demoTTL)
	lastAnswer := answer
	back, ok := pollUntil(ctx, cut, demoTTL+20*time.Second, 100*time.Millisecond, func() bool {
		answer, greeting := visit()
		if answer != lastAnswer && answer != "" {
			tl.say("customer: the resolver now answers %s", answer)
			lastAnswer = answer
		}
		return answer == netlab.GWWAN2Addr4.String() && greeting != ""
	})
	if !ok {
		return errors.New("the customer never reached the shop through isp2")
	}
	_, greeting = visit()
	tl.say("customer is back %.2f s after the cut, through isp2: %q", back, greeting)
	sleepCtx(ctx, hold)

	tl.say("healing isp1")
	healed := time.Now()
	if err := lab.Heal(1); err != nil {
		return err
	}
	again, ok := pollUntil(ctx, healed, demoTTL+60*time.Second, 100*time.Millisecond, reached(netlab.GWWAN1Addr4))
	if !ok {
		return errors.New("the customer never came back to isp1 after the heal")
	}
	tl.say("customer reaches the shop through isp1 again %.2f s after the heal (up_after good rounds, then the TTL)", again)
	return ctx.Err()
}
