package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// fakeProbers hands the test each uplink's round channel: the test decides what the probes saw.
type fakeProbers struct {
	mu      sync.Mutex
	out     map[string]func(uplink.Round)
	targets map[string][]netip.Addr
	started map[string]int
	pins    map[string]probe.Pin
	modes   map[string]probe.Mode
}

func newFakeProbers() *fakeProbers {
	return &fakeProbers{out: map[string]func(uplink.Round){}, targets: map[string][]netip.Addr{},
		started: map[string]int{}, pins: map[string]probe.Pin{}, modes: map[string]probe.Mode{}}
}

type fakeProber struct {
	f    *fakeProbers
	name string
}

func (f *fakeProbers) start(_ context.Context, u uplink.Uplink, pin probe.Pin, out func(uplink.Round)) (Prober, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out[u.Name], f.targets[u.Name], f.pins[u.Name] = out, u.Probe.Targets, pin
	f.started[u.Name]++
	return fakeProber{f, u.Name}, nil
}

func (p fakeProber) SetPin(pin probe.Pin) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.f.pins[p.name] = pin
}

func (p fakeProber) SetMode(m probe.Mode) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.f.modes[p.name] = m
}

// mode is what uplink name's prober was last told.
func (f *fakeProbers) mode(name string) probe.Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.modes[name]
}

func (p fakeProber) Stop() {}

// round delivers one round of uplink name in which every target answered (ok) or none did.
func (f *fakeProbers) round(name string, ok bool) { f.roundAt(name, ok, ok, timeNow()) }

// roundFamilies delivers a round in which the IPv4 targets answered (ok4) or not, and the
// IPv6 ones (ok6).
func (f *fakeProbers) roundFamilies(name string, ok4, ok6 bool) { f.roundAt(name, ok4, ok6, timeNow()) }

// roundAt delivers a round that started at start (one in flight across a change), in which the
// IPv4 targets answered (ok4) or not, and the IPv6 ones (ok6).
func (f *fakeProbers) roundAt(name string, ok4, ok6 bool, start time.Time) {
	f.mu.Lock()
	out, targets := f.out[name], f.targets[name]
	f.mu.Unlock()
	r := uplink.Round{Start: start}
	for _, t := range targets {
		r.Results = append(r.Results, uplink.Result{Target: t, OK: t.Is4() && ok4 || t.Is6() && ok6, RTT: 1e6})
	}
	out(r)
}

// roundLosing delivers a round of uplink name in which its first target alone did not answer.
func (f *fakeProbers) roundLosing(name string) {
	f.mu.Lock()
	out, targets := f.out[name], f.targets[name]
	f.mu.Unlock()
	r := uplink.Round{Start: timeNow()}
	for i, t := range targets {
		r.Results = append(r.Results, uplink.Result{Target: t, OK: i > 0, RTT: 1e6})
	}
	out(r)
}

func (f *fakeProbers) startedCount(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started[name]
}

// fakeNotifier records what systemd would be told.
type fakeNotifier struct {
	mu    sync.Mutex
	sent  []string
	ready int
}

func (n *fakeNotifier) add(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, s)
}
func (n *fakeNotifier) Ready(s string) {
	n.mu.Lock()
	n.ready++
	n.mu.Unlock()
	n.add("READY " + s)
}
func (n *fakeNotifier) Status(s string) { n.add("STATUS " + s) }
func (n *fakeNotifier) Reloading()      { n.add("RELOADING") }
func (n *fakeNotifier) Stopping()       { n.add("STOPPING") }
func (n *fakeNotifier) Watchdog()       { n.add("WATCHDOG") }

// fakeTracker records what keepalived's track file would say.
type fakeTracker struct {
	mu     sync.Mutex
	path   string
	writes []string // "usable/total" or "standby"
	start  bool     // the file asked for standby when uplinkd started
}

func (f *fakeTracker) Set(usable, total int, standby bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := fmt.Sprintf("%d/%d", usable, total)
	if standby {
		v = "standby"
	}
	if len(f.writes) == 0 || f.writes[len(f.writes)-1] != v {
		f.writes = append(f.writes, v)
	}
	return nil
}

func (f *fakeTracker) Standby() bool { return f.start }

func (f *fakeTracker) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}
