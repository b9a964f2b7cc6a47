package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/control"
)

// backend answers the control API. Status reads the last published snapshot; changes run
// inside the loop, which owns the state.
type backend struct{ d *daemon }

func (b backend) Status() api.Status {
	st := *b.d.status.Load()
	st.Uptime = time.Since(st.Started).Round(time.Second)
	if b.d.pins != nil {
		// Counting walks the conntrack table: done here, on demand, not in the loop.
		if counts, err := b.d.pins.Counts(); err == nil {
			st.Uplinks = slices.Clone(st.Uplinks)
			for i := range st.Uplinks {
				st.Uplinks[i].Connections = counts[st.Uplinks[i].Mark]
			}
		}
	}
	return st
}

func (b backend) Drain(name string, drained, now bool) error {
	return b.d.do(func(d *daemon) error { return d.setDrained(name, drained, now) })
}

func (b backend) Reload() error {
	return b.d.do(func(d *daemon) error { return d.reload("api") })
}

func (b backend) Subscribe(ctx context.Context) <-chan api.Event {
	return b.d.hub.subscribe(ctx)
}

// do runs f in the loop and returns its error.
func (d *daemon) do(f func(*daemon) error) error {
	res := make(chan error, 1)
	select {
	case d.requests <- func(d *daemon) { res <- f(d) }:
		return <-res
	case <-d.ctx.Done():
		return errors.New("uplinkd is stopping")
	case <-time.After(10 * time.Second):
		return fmt.Errorf("uplinkd is busy: the request was not taken within 10s")
	}
}

func (d *daemon) setDrained(name string, drained, now bool) error {
	m := d.member(name)
	if m == nil {
		return fmt.Errorf("%w %q", control.ErrUnknownUplink, name)
	}
	if m.drained == drained && m.drainNow == (drained && now) {
		return nil
	}
	m.drained, m.drainNow = drained, drained && now
	kind := api.KindUndrain
	if drained {
		kind = api.KindDrain
	}
	d.log.Info("operator "+string(kind), "uplink", name, "now", now)
	d.hub.publish(api.Event{Time: time.Now(), Kind: kind, Uplink: name, Reason: "operator request"})
	d.reconcile(string(kind))
	return nil
}

// hub fans events out to control API subscribers. A subscriber that cannot keep up is
// dropped (its stream ends) rather than slowing the loop.
type hub struct {
	mu   sync.Mutex
	subs map[chan api.Event]struct{}
}

func newHub() *hub { return &hub{subs: map[chan api.Event]struct{}{}} }

func (h *hub) subscribe(ctx context.Context) <-chan api.Event {
	ch := make(chan api.Event, 128)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}()
	return ch
}

func (h *hub) publish(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			delete(h.subs, ch)
			close(ch)
		}
	}
}
