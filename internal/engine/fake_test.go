package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/vishvananda/netlink"
)

// fakeRoutes is the kernel's routing in memory: it records every plan and flush.
type fakeRoutes struct {
	mu       sync.Mutex
	links    map[string]routing.LinkInfo
	plans    []routing.Plan
	applied  string // text of the plan the "kernel" holds
	failNext int    // Apply calls that fail before one succeeds
	flushed  []netip.Addr
	cleanups int
}

func newFakeRoutes() *fakeRoutes { return &fakeRoutes{links: map[string]routing.LinkInfo{}} }

func (f *fakeRoutes) Settings() routing.Settings {
	return routing.Settings{RulePriority: 1000, ActiveTable: 200, Protocol: 85}
}

func (f *fakeRoutes) Apply(p routing.Plan) (routing.Changes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plans = append(f.plans, p)
	if f.failNext > 0 {
		f.failNext--
		return routing.Changes{Messages: 1}, errors.New("routing: replace ipv4 table 200 default: no such device")
	}
	if text := p.String(); text != f.applied {
		f.applied = text
		return routing.Changes{Messages: 1}, nil
	}
	return routing.Changes{}, nil
}

func (f *fakeRoutes) Link(ifname string) (routing.LinkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[ifname]
	if !ok {
		return routing.LinkInfo{}, fmt.Errorf("routing: link %s: Link not found", ifname)
	}
	return l, nil
}

func (f *fakeRoutes) FlushSNAT(a netip.Addr) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushed = append(f.flushed, a)
	return 1, nil
}

func (f *fakeRoutes) Cleanup() (routing.Changes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups++
	f.applied = ""
	return routing.Changes{}, nil
}

// setLink makes an interface up with carrier, one address and a gateway, or removes it.
func (f *fakeRoutes) setLink(ifname string, n int, present bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !present {
		delete(f.links, ifname)
		return
	}
	f.links[ifname] = routing.LinkInfo{Name: ifname, Index: n, Up: true, Carrier: true,
		Addrs:    []netip.Addr{netip.AddrFrom4([4]byte{198, 51, 100, byte(n)})},
		Gateway4: netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + n)}),
		Gateway6: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(n), 14: 0, 15: 1})}
}

// active is the interfaces of the IPv4 default route in the active table of the last plan.
func (f *fakeRoutes) active() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.plans) == 0 {
		return nil
	}
	var out []string
	for _, r := range f.plans[len(f.plans)-1].Routes {
		if r.Table == 200 && r.Family == netlink.FAMILY_V4 {
			for _, h := range r.Nexthops {
				out = append(out, h.Interface)
			}
		}
	}
	return out
}

func (f *fakeRoutes) flushes() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netip.Addr(nil), f.flushed...)
}

func (f *fakeRoutes) applies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.plans)
}

// fakePins is the nftables table in memory.
type fakePins struct {
	mu       sync.Mutex
	plans    []connmark.Plan
	cleanups int
	counts   map[uint32]int
	walks    int
	received map[uint32]uint64 // replies per uplink mark (passive evidence)
	reads    int
}

func (f *fakePins) Apply(p connmark.Plan) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plans = append(f.plans, p)
	return nil
}

func (f *fakePins) Counts() (map[uint32]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.walks++
	return f.counts, nil
}

func (f *fakePins) Cleanup() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups++
	return nil
}

func (f *fakePins) Received() (map[uint32]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return maps.Clone(f.received), nil
}

// receive counts n more replies arriving on the uplink with mark.
func (f *fakePins) receive(mark uint32, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.received == nil {
		f.received = map[uint32]uint64{}
	}
	f.received[mark] += n
}

func (f *fakePins) Exists() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.plans) > 0 && f.cleanups == 0, nil
}

func (f *fakePins) last() connmark.Plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.plans) == 0 {
		return connmark.Plan{}
	}
	return f.plans[len(f.plans)-1]
}

// fakeProbers hands the test each uplink's round channel: the test decides what the probes saw.
type fakeProbers struct {
	mu      sync.Mutex
	out     map[string]func(uplink.Round)
	targets map[string][]netip.Addr
	started map[string]int
	pins    map[string]probe.Pin
}

func newFakeProbers() *fakeProbers {
	return &fakeProbers{out: map[string]func(uplink.Round){}, targets: map[string][]netip.Addr{},
		started: map[string]int{}, pins: map[string]probe.Pin{}}
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
