package probe

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// fakeTransport answers every probe after 5 ms, on the fake clock of a synctest bubble.
type fakeTransport struct {
	mu     sync.Mutex
	pins   []Pin
	sent   int
	closed bool
}

func (f *fakeTransport) setPin(pin Pin, _ postFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pins = append(f.pins, pin)
}

func (f *fakeTransport) send(ctx context.Context, running *sync.WaitGroup, _ Pin, target netip.Addr, snd send, post postFunc) error {
	f.mu.Lock()
	f.sent++
	f.mu.Unlock()
	running.Go(func() {
		select {
		case <-time.After(5 * time.Millisecond):
			post(event{seq: snd.Seq, from: target, rtt: 5 * time.Millisecond, when: time.Now()}, nil)
		case <-ctx.Done():
		}
	})
	return nil
}

func (f *fakeTransport) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

func TestUplinkRoundsFollowTheIntervalTakeNewPinsAndStopForGood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := uplink.Probe{Targets: simTargets, Method: uplink.Method{Name: uplink.MethodICMP}, Interval: 500 * time.Millisecond, Timeout: time.Second, DownAfter: 3}
		f := &fakeTransport{}
		var mu sync.Mutex
		var rounds []uplink.Round
		u := start(t.Context(), "isp1", p, Pin{Mark: 0x100}, func(r uplink.Round) {
			mu.Lock()
			defer mu.Unlock()
			rounds = append(rounds, r)
		}, f, newTimerAlarm)
		time.Sleep(2*time.Second + 100*time.Millisecond) // fake time: rounds at 0, 0.5, 1, 1.5, 2 s
		synctest.Wait()
		mu.Lock()
		if len(rounds) != 5 {
			t.Errorf("%d rounds in 2.1 s at 500ms, want 5", len(rounds))
		}
		for _, r := range rounds {
			for _, x := range r.Results {
				if !x.OK || x.RTT != 5*time.Millisecond {
					t.Errorf("result %+v", x)
				}
			}
		}
		mu.Unlock()

		u.SetPin(Pin{Mark: 0x200})
		synctest.Wait()
		f.mu.Lock()
		if len(f.pins) != 2 || f.pins[1].Mark != 0x200 {
			t.Errorf("pins %+v, want the new one taken", f.pins)
		}
		f.mu.Unlock()

		u.Stop()
		mu.Lock()
		n := len(rounds)
		mu.Unlock()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(rounds) != n {
			t.Errorf("%d rounds after Stop returned", len(rounds)-n)
		}
		if !f.closed {
			t.Error("Stop did not close the transport")
		}
		u.Stop() // again: nothing
	})
}
