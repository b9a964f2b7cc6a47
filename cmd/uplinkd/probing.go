package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// roundResult carries one finished probe round into the run loop.
type roundResult struct {
	uplink string
	from   *prober // rounds of a replaced prober (after a reload) are ignored
	round  uplink.Round
}

// prober runs an uplink's probe rounds every interval. Rounds overlap when the timeout is
// longer than the interval; each is reported when all its targets have answered or timed out.
type prober struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	pin    atomic.Pointer[probe.Pin]
}

func startProber(ctx context.Context, u uplink.Uplink, pin probe.Pin, out chan<- roundResult, log *slog.Logger) *prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &prober{cancel: cancel}
	p.pin.Store(&pin)
	method, err := probe.New(u.Probe.Method)
	if err != nil { // the config accepts only known methods, so this is a programming error
		log.Error("probe method", "uplink", u.Name, "err", err)
		return p
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		tick := time.NewTicker(u.Probe.Interval)
		defer tick.Stop()
		for {
			p.done.Add(1)
			go func(start time.Time) {
				defer p.done.Done()
				results := probe.Round(ctx, method, *p.pin.Load(), u.Probe.Targets, u.Probe.Timeout)
				if ctx.Err() != nil {
					return
				}
				r := uplink.Round{Start: start, Results: make([]uplink.Result, len(results))}
				for i, x := range results {
					r.Results[i] = uplink.Result{Target: x.Target, OK: x.OK, RTT: x.RTT}
					if x.Err != nil {
						r.Results[i].Err = x.Err.Error()
					}
				}
				select {
				case out <- roundResult{uplink: u.Name, from: p, round: r}:
				case <-ctx.Done():
				}
			}(time.Now())
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// setPin changes the mark and source addresses for the next rounds (DHCP renumbering).
func (p *prober) setPin(pin probe.Pin) { p.pin.Store(&pin) }

// stop ends the rounds and waits for those in flight.
func (p *prober) stop() {
	p.cancel()
	p.done.Wait()
}
