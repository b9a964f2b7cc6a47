package engine

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// roundProber runs an uplink's probe rounds every interval. Rounds overlap when the timeout is
// longer than the interval; each is reported when all its targets have answered or timed out.
type roundProber struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	pin    atomic.Pointer[probe.Pin]
}

// StartRoundProber is the StartProber of probe.Round: every interval, each target once.
func StartRoundProber(ctx context.Context, u uplink.Uplink, pin probe.Pin, out func(uplink.Round)) Prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &roundProber{cancel: cancel}
	p.pin.Store(&pin)
	method, err := probe.New(u.Probe.Method)
	if err != nil { // the config accepts only known methods: report every round as failed
		method = failing{err}
	}
	p.done.Go(func() {
		tick := time.NewTicker(u.Probe.Interval)
		defer tick.Stop()
		for {
			p.done.Go(func() {
				start := time.Now()
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
				out(r)
			})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return p
}

func (p *roundProber) SetPin(pin probe.Pin) { p.pin.Store(&pin) }

func (p *roundProber) Stop() {
	p.cancel()
	p.done.Wait()
}

// failing is a prober for a method that could not be made: every probe fails with its reason.
type failing struct{ err error }

func (f failing) Probe(_ context.Context, _ probe.Pin, target netip.Addr, _ time.Duration) probe.Result {
	return probe.Result{Target: target, Err: f.err}
}
