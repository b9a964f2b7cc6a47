package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

// demoSites narrates two sites serving www: paris loses power, customers move to lyon, the
// power comes back.
func demoSites(ctx context.Context, tl *timeline, bin string, cfg netlab.DaemonConfig, cfgName, prefix string, hold time.Duration) (err error) {
	tl.say("building the lab: site paris (gateway + two ISPs, its web server behind a DNAT), site lyon (a gateway with one uplink), an Unbound for the customers")
	lab, err := newDemoLab(tl, netlab.Options{Prefix: prefix})
	if err != nil {
		return err
	}
	defer lab.close(&err)
	tl.say("starting uplinkd at both sites (%s), www failover paris then lyon, TTL %s (the shipped TTL is 30 s)", cfgName, demoTTL)
	s, err := lab.StartSites(ctx, netlab.SitesOptions{Binary: bin, Probe: cfg, TTL: demoTTL, InfoLogs: true,
		OnEvent: func(site string, ev api.Event) {
			if ev.Kind == api.KindServer && ev.Site != "" {
				tl.say("uplinkd at %s: %s", site, describeEvent(ev))
			}
		}})
	if err != nil {
		return err
	}
	visit := func() string {
		site, addr := s.Visit(ctx)
		if site == "" {
			return "no answer or no connection"
		}
		return fmt.Sprintf("www is %s, the shop at %s answered", addr, site)
	}
	tl.say("customer: %s", visit())
	tl.say("both sites answer www: paris %s, lyon %s", strings.Join(s.Answers(ctx, netlab.SiteA), " "), strings.Join(s.Answers(ctx, netlab.SiteB), " "))

	tl.say("paris loses power: its gateway (uplinkd, its name servers) and its web server are gone at once")
	cut := time.Now()
	if err := s.A.Stop(); err != nil {
		return err
	}
	if err := lab.PowerCut(netlab.RoleGW); err != nil {
		return err
	}
	if secs, ok := pollUntil(ctx, cut, 20*time.Second, 50*time.Millisecond, func() bool { return netlab.OnlyOf(s.Answers(ctx, netlab.SiteB), netlab.SiteB) }); ok {
		tl.say("lyon's name servers answer lyon only, %.2f s after the cut (its checks of paris, through its own uplink, failed)", secs)
	}
	secs, ok := s.WaitVisit(ctx, demoTTL+30*time.Second, func(site string) bool { return site == netlab.SiteB })
	if !ok {
		return errors.New("customers never reached lyon")
	}
	tl.say("customer: %s, %.2f s after the cut (the resolver's cached answer ran out, paris's name servers are dark)", visit(), secs)
	sleepCtx(ctx, hold)

	tl.say("the power comes back at paris: its ISPs' wires, then uplinkd")
	back := time.Now()
	if err := lab.PowerBack(netlab.RoleGW); err != nil {
		return err
	}
	if err := s.StartDaemon(ctx, netlab.SiteA); err != nil {
		return err
	}
	if _, ok = s.WaitVisit(ctx, demoTTL+60*time.Second, func(site string) bool { return site == netlab.SiteA }); !ok {
		return errors.New("customers never came back to paris")
	}
	tl.say("customer: %s, %.2f s after the power came back (uplinkd's start, lyon's up_after checks, the TTL)", visit(), time.Since(back).Seconds())
	return ctx.Err()
}
