package main

import (
	"context"
	"log/slog"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// roundResult carries one finished probe round into the run loop.
type roundResult struct {
	uplink string
	from   *prober // rounds of a replaced prober (after a reload) are ignored
	round  uplink.Round
}

// prober is an uplink's probe.Uplink: rounds every interval, quicker confirmation rounds while a
// target is in doubt, long-lived ICMP sockets (see package probe).
type prober struct {
	cancel context.CancelFunc
	u      *probe.Uplink // nil when the method is unknown (the config accepts only known ones)
}

func startProber(ctx context.Context, u uplink.Uplink, pin probe.Pin, out chan<- roundResult, log *slog.Logger) *prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &prober{cancel: cancel}
	pu, err := probe.Start(ctx, u.Name, u.Probe, pin, func(r uplink.Round) {
		select {
		case out <- roundResult{uplink: u.Name, from: p, round: r}:
		case <-ctx.Done():
		}
	})
	if err != nil { // a programming error: the config accepts only known methods
		log.Error("probe method", "uplink", u.Name, "err", err)
		return p
	}
	p.u = pu
	return p
}

// setPin changes the mark and source addresses for the next probes (DHCP renumbering).
func (p *prober) setPin(pin probe.Pin) {
	if p.u != nil {
		p.u.SetPin(pin)
	}
}

// stop ends the probing and waits for it.
func (p *prober) stop() {
	p.cancel()
	if p.u != nil {
		p.u.Stop()
	}
}
