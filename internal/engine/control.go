package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/statefile"
)

// The engine is the control API's backend (cmd/uplinkd wires it): reads come from the
// published snapshot, changes run inside the loop, which owns the state.

// Drain sets or clears an uplink's drained flag; now moves its connections away at once.
func (e *Engine) Drain(name string, drained, now bool) error {
	return e.do(func() error { return e.setDrained(name, drained, now) })
}

// Reload reads the configuration file again; the error says why a file was refused.
func (e *Engine) Reload() error {
	return e.do(func() error { return e.reload("api") })
}

// Subscribe streams events until ctx ends.
func (e *Engine) Subscribe(ctx context.Context) <-chan api.Event {
	return e.hub.subscribe(ctx)
}

// do runs f in the loop and returns its error.
func (e *Engine) do(f func() error) error {
	select {
	case <-e.running:
	default:
		return errors.New("uplinkd is starting")
	}
	res := make(chan error, 1)
	timeout := time.NewTimer(requestTimeout)
	defer timeout.Stop()
	select {
	case e.requests <- func() { res <- f() }:
		return <-res
	case <-e.ctx.Done():
		return errors.New("uplinkd is stopping")
	case <-timeout.C:
		return fmt.Errorf("uplinkd is busy: the request was not taken within %s", requestTimeout)
	}
}

func (e *Engine) setDrained(name string, drained, now bool) error {
	m := e.member(name)
	if m == nil {
		return fmt.Errorf("%w %q", api.ErrUnknownUplink, name)
	}
	if m.drained == drained && m.drainNow == (drained && now) {
		return nil
	}
	m.drained, m.drainNow = drained, drained && now
	kind := api.KindUndrain
	if drained {
		kind = api.KindDrain
	}
	e.rememberDrains()
	e.log.Info("operator "+string(kind), "uplink", name, "now", now)
	e.hub.publish(api.Event{Time: time.Now(), Kind: kind, Uplink: name, Reason: "operator request"})
	e.reconcile(string(kind))
	return nil
}

// rememberDrains writes the drains to the state file: a maintenance window outlives a restart
// (an upgrade) of uplinkd.
func (e *Engine) rememberDrains() {
	drained := map[string]bool{}
	for _, m := range e.members {
		if m.drained {
			drained[m.cfg.Name] = m.drainNow
		}
	}
	e.opt.State.Update(func(st *statefile.State) { st.Drained = drained })
}

// restoreDrains drains the uplinks that were drained when uplinkd last stopped.
func (e *Engine) restoreDrains() {
	for name, now := range e.opt.State.State().Drained {
		if m := e.member(name); m != nil {
			m.drained, m.drainNow = true, now
			e.log.Info("drain remembered from the last run", "uplink", name, "now", now)
		}
	}
}

// hub fans events out to subscribers. A subscriber that cannot keep up is dropped (its stream
// ends) rather than slowing the loop; dropping it also unhooks it from its context, so that
// nothing of it is left behind however often that happens.
type hub struct {
	mu   sync.Mutex
	subs map[chan api.Event]func() bool // the stop of the subscription's context.AfterFunc
}

func newHub() *hub { return &hub{subs: map[chan api.Event]func() bool{}} }

func (h *hub) subscribe(ctx context.Context) <-chan api.Event {
	ch := make(chan api.Event, 128)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[ch] = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.drop(ch)
	})
	return ch
}

// drop ends a subscription; h.mu is held.
func (h *hub) drop(ch chan api.Event) {
	stop, ok := h.subs[ch]
	if !ok {
		return
	}
	delete(h.subs, ch)
	stop() // false when called from the AfterFunc itself: then there is nothing to unhook
	close(ch)
}

func (h *hub) publish(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
			h.drop(ch)
		}
	}
}
