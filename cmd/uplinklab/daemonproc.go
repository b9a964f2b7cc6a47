package main

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// This file holds what demo and bench share on top of netlab.Daemon: the two configs, the
// start they both want, and naming the uplink an address belongs to.

// Shipped defaults (spelled out from uplink.DefaultConfig, so the bench can read them) and the
// tuned config: 100 ms rounds, replies late after at most 200 ms.
var (
	defaultConfig = shipped()
	tunedConfig   = netlab.DaemonConfig{Interval: 100 * time.Millisecond, Timeout: 200 * time.Millisecond, DownAfter: 3, UpAfter: 5}
)

// startDaemon starts bin with cfg in lab's gateway namespace, logging at info as shipped, and
// waits (bounded by limit) until both uplinks have a verdict and isp1 is active; onEvent, if
// set, sees every event after that as it arrives.
func startDaemon(ctx context.Context, lab *netlab.Lab, bin string, cfg netlab.DaemonConfig, limit time.Duration, onEvent func(api.Event)) (*netlab.Daemon, error) {
	return lab.StartDaemon(ctx, netlab.DaemonOptions{
		Binary: bin, Config: cfg, InfoLogs: true, ReadyLimit: limit, OnEvent: onEvent,
		Ready: func(st api.Status) bool {
			return netlab.Judged(st) && len(st.Uplinks) == 2 && slices.Equal(st.Active, []string{"isp1"})
		},
	})
}

// ispOf names the uplink an address the server saw belongs to ("198.51.100.2:40000" → isp1).
func ispOf(via string) string {
	host := via
	if ap, err := netip.ParseAddrPort(via); err == nil {
		host = ap.Addr().String()
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "?"
	}
	for _, u := range netlab.Uplinks {
		if a == u.GW4 || a == u.SNAT4 || a == u.GW6 {
			return u.Role
		}
	}
	return "?"
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// shipped is the lab config with the shipped probing defaults.
func shipped() netlab.DaemonConfig {
	d := uplink.DefaultConfig().Defaults
	return netlab.DaemonConfig{Interval: d.Interval, Timeout: d.Timeout, DownAfter: d.DownAfter, UpAfter: d.UpAfter}
}
