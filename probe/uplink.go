package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// Uplink probes one uplink's targets continuously: rounds every interval, quicker confirmation
// rounds while a target is in doubt (see schedule.go), each finished round handed to out in
// start order with results in target order. ICMP probes share one long-lived pinned raw socket
// per address family; tcp, http and dns probes make one connection each (that is the probe).
type Uplink struct {
	name   string
	cancel context.CancelFunc
	pins   chan Pin
	modes  chan Mode
	done   sync.WaitGroup
	stop   sync.Once
}

// event is what arrives for the run loop of an Uplink: a reply or a failed probe.
type event struct {
	seq  uint16
	from netip.Addr
	rtt  time.Duration
	err  error // nil: a reply
	when time.Time
}

// Start probes p's targets through pin until ctx ends or Stop. out is called from one goroutine,
// one finished round at a time; it should not block for long (a round waiting in out delays
// the next sends), and Stop waits for a call in progress: if out may block, make it give up when
// ctx ends. An error means the method is unknown (the configuration's parser rejects those).
func Start(ctx context.Context, name string, p uplink.Probe, pin Pin, out func(uplink.Round)) (*Uplink, error) {
	t, err := transportsFor(p)
	if err != nil {
		return nil, fmt.Errorf("probe: uplink %s: %w", name, err)
	}
	return start(ctx, name, p, pin, out, t, newAlarm), nil
}

// transportsFor makes the transport of every method p's targets use: one, or one per method
// when targets have their own.
func transportsFor(p uplink.Probe) (transport, error) {
	if len(p.TargetMethods) == 0 {
		return newTransport(p.Method)
	}
	by := byMethod{p: p, ts: map[uplink.Method]transport{}}
	for _, target := range p.Targets {
		m := p.MethodOf(target)
		if _, ok := by.ts[m]; ok {
			continue
		}
		t, err := newTransport(m)
		if err != nil {
			by.close()
			return nil, err
		}
		by.ts[m] = t
	}
	return by, nil
}

// byMethod sends each probe through the transport of its target's method.
type byMethod struct {
	p  uplink.Probe
	ts map[uplink.Method]transport
}

func (b byMethod) setPin(pin Pin, post postFunc) {
	for _, t := range b.ts {
		t.setPin(pin, post)
	}
}

func (b byMethod) send(ctx context.Context, running *sync.WaitGroup, pin Pin, target netip.Addr, snd send, post postFunc) error {
	return b.ts[b.p.MethodOf(target)].send(ctx, running, pin, target, snd, post)
}

func (b byMethod) close() {
	for _, t := range b.ts {
		t.close()
	}
}

// wake makes the alarm that wakes the run loop (a fake clock needs a runtime timer).
func start(ctx context.Context, name string, p uplink.Probe, pin Pin, out func(uplink.Round), t transport, wake func() *alarm) *Uplink {
	ctx, cancel := context.WithCancel(ctx)
	u := &Uplink{name: name, cancel: cancel, pins: make(chan Pin, 1), modes: make(chan Mode, 1)}
	s := newSched(schedConfig{Targets: p.Targets, Interval: p.Interval, Timeout: p.Timeout, DownAfter: p.DownAfter,
		GentleInterval: uplink.MeteredInterval})
	u.done.Go(func() { u.run(ctx, s, t, p, pin, out, wake()) })
	return u
}

// SetPin changes the mark and source addresses for the next probes (DHCP renumbering); ICMP
// sockets are reopened with the new pin at the next send.
func (u *Uplink) SetPin(pin Pin) {
	for { // bounded: the channel holds one pin, and only this method sends to it
		select {
		case u.pins <- pin:
			return
		default:
		}
		select {
		case <-u.pins: // replace a pin not yet taken: the newest wins
		default:
		}
	}
}

// SetMode changes how many probes a healthy uplink gets (see Mode); more probes start at once.
func (u *Uplink) SetMode(m Mode) {
	for { // bounded as SetPin
		select {
		case u.modes <- m:
			return
		default:
		}
		select {
		case <-u.modes:
		default:
		}
	}
}

// Stop ends the probing and waits for every goroutine of it; out is not called after Stop
// returns. Calling it again does nothing.
func (u *Uplink) Stop() {
	u.stop.Do(func() {
		u.cancel()
		u.done.Wait()
	})
}

func (u *Uplink) run(ctx context.Context, s *sched, t transport, p uplink.Probe, pin Pin, out func(uplink.Round), wake *alarm) {
	events := make(chan event, 64)
	post := func(ev event, quit <-chan struct{}) {
		select {
		case events <- ev:
		case <-ctx.Done():
		case <-quit:
		}
	}
	var probes sync.WaitGroup // tcp/http/dns probes in flight
	defer func() {
		t.close()
		probes.Wait()
	}()
	t.setPin(pin, post)
	defer wake.close()
	describe := func(r uplink.Round) uplink.Round {
		for i := range r.Results {
			if x := &r.Results[i]; x.Err != "" && !strings.HasPrefix(x.Err, "probe: ") {
				x.Err = fmt.Sprintf("probe: %s %s %s: %s", p.MethodOf(x.Target), x.Target, pin.describe(x.Target), x.Err)
			}
		}
		return r
	}
	for {
		now := time.Now()
		sends, done := s.advance(now)
		for _, snd := range sends {
			target := p.Targets[snd.Target]
			if err := check(p.MethodOf(target).Name, pin, target, p.Timeout); err != nil {
				s.failed(now, snd.Seq, err)
				continue
			}
			if err := t.send(ctx, &probes, pin, target, snd, post); err != nil {
				s.failed(now, snd.Seq, err)
			}
		}
		if len(sends) > 0 {
			_, more := s.advance(now) // send errors may complete a round at once
			done = append(done, more...)
		}
		for _, r := range done {
			if ctx.Err() != nil {
				return
			}
			out(describe(r))
		}
		wake.set(time.Until(s.next()))
		select {
		case <-ctx.Done():
			return
		case np := <-u.pins:
			pin = np
			t.setPin(pin, post)
		case m := <-u.modes:
			s.setMode(time.Now(), m)
		case ev := <-events:
			s.apply(ev)
			for range len(events) { // bounded: what is queued now
				s.apply(<-events)
			}
		case <-wake.C:
		}
	}
}

// apply feeds an event into the schedule.
func (s *sched) apply(ev event) {
	if ev.err != nil {
		s.failed(ev.when, ev.seq, ev.err)
		return
	}
	s.reply(ev.when, ev.seq, ev.from, ev.rtt)
}

// postFunc hands an event to the run loop; it gives up when the run ends or quit is closed.
type postFunc func(ev event, quit <-chan struct{})

// transport sends probes and reports their outcome as events.
type transport interface {
	// setPin takes effect for the next sends; post delivers events to the run loop.
	setPin(pin Pin, post postFunc)
	// send starts one probe; an error is a probe that failed at once.
	send(ctx context.Context, running *sync.WaitGroup, pin Pin, target netip.Addr, snd send, post postFunc) error
	close()
}

func newTransport(m uplink.Method) (transport, error) {
	if m.Name == uplink.MethodICMP {
		return newICMPTransport(), nil
	}
	p, err := New(m)
	if err != nil {
		return nil, err
	}
	return connTransport{p}, nil
}

// connTransport runs a connection-per-probe Prober (tcp, http, dns) in a goroutine per probe.
type connTransport struct{ p Prober }

func (connTransport) setPin(Pin, postFunc) {}
func (connTransport) close()               {}

func (c connTransport) send(ctx context.Context, running *sync.WaitGroup, pin Pin, target netip.Addr, snd send, post postFunc) error {
	running.Go(func() {
		r := c.p.Probe(ctx, pin, target, snd.Wait)
		ev := event{seq: snd.Seq, from: target, rtt: r.RTT, err: r.Err, when: time.Now()}
		if !r.OK && ev.err == nil {
			ev.err = errors.New("no reply")
		}
		post(ev, nil)
	})
	return nil
}

// icmpTransport keeps one socket per family open, reopened when the pin changes.
type icmpTransport struct {
	id     uint16
	nonce  uint64
	pin    Pin
	post   postFunc
	v4, v6 *icmpSocket
}

func newICMPTransport() *icmpTransport { return &icmpTransport{nonce: rand.Uint64()} }

func (t *icmpTransport) setPin(pin Pin, post postFunc) {
	t.closeSockets()
	t.pin, t.post = pin, post
}

func (t *icmpTransport) send(_ context.Context, _ *sync.WaitGroup, _ Pin, target netip.Addr, snd send, _ postFunc) error {
	if t.id == 0 {
		id, err := ids.acquire()
		if err != nil {
			return err
		}
		t.id = uint16(id)
	}
	sock := &t.v4
	if target.Is6() && !target.Is4In6() {
		sock = &t.v6
	}
	if *sock == nil {
		post := t.post
		s, err := openICMP(sock == &t.v6, t.id, t.nonce, t.pin, func(r icmpReply, quit <-chan struct{}) {
			post(event{seq: r.seq, from: r.from, rtt: r.rtt, when: time.Now()}, quit)
		})
		if err != nil {
			return fmt.Errorf("open icmp socket: %w", err)
		}
		*sock = s
	}
	return (*sock).send(target, snd.Seq, t.nonce)
}

func (t *icmpTransport) closeSockets() {
	for _, s := range []**icmpSocket{&t.v4, &t.v6} {
		if *s != nil {
			(*s).close()
			*s = nil
		}
	}
}

func (t *icmpTransport) close() {
	t.closeSockets()
	if t.id != 0 {
		ids.release(int(t.id))
		t.id = 0
	}
}
