package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
)

// Fake is a box in memory: it records every State it is given and serves what the engine reads
// (links, connection counts, passive evidence) from values a test sets. Safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	states   []State
	failNext int  // Set calls that fail before one succeeds
	damaged  bool // the "kernel" lost something: the next Set restores it
	stale    map[netip.Addr]bool
	flushed  []netip.Addr
	cleanups int
	links    map[string]routing.LinkInfo
	counts   map[uint32]int
	walks    int
	received map[uint32]uint64
	reads    int
}

// NewFake returns an empty box: no links, nothing applied.
func NewFake() *Fake {
	return &Fake{stale: map[netip.Addr]bool{}, links: map[string]routing.LinkInfo{}}
}

// Set records s. Like the real one it flushes an address's NAT state once, when the address
// becomes stale, and reports one message whenever the routes change.
func (f *Fake) Set(s State) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prev, had := f.last()
	f.states = append(f.states, s.Clone())
	if f.failNext > 0 {
		f.failNext--
		return Result{Messages: 1}, errors.New("routing: replace ipv4 table 1000 default: no such device")
	}
	stale := map[netip.Addr]bool{}
	for a := range s.staleNAT() {
		stale[a] = true
		if !f.stale[a] {
			f.flushed = append(f.flushed, a)
		}
	}
	f.stale = stale
	var res Result
	set := routing.Settings{}.WithDefaults()
	plan := s.RoutingPlan(set)
	res.Problems = plan.Problems
	if !had || f.damaged || plan.String() != prev.RoutingPlan(set).String() {
		res.Messages = 1
	}
	f.damaged = false
	return res, nil
}

// Forget does nothing here: the fake's "kernel" always holds what it was last given, unless a
// test says otherwise with Damage.
func (f *Fake) Forget() {}

// Damage makes the next Set report that it had to restore something (someone deleted an
// entry).
func (f *Fake) Damage() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.damaged = true
}

// Pins is the connection-mark plan of the last State, and whether it has any: a state with
// pinning off has none.
func (f *Fake) Pins() (connmark.Plan, bool) {
	s := f.Last()
	return s.PinPlan(), s.Pinning
}

// ActiveInterfaces are the interfaces of family's default route (4 or 6) in the active table
// of the last State, as the kernel would hold it.
func (f *Fake) ActiveInterfaces(family int) []string {
	set := routing.Settings{}.WithDefaults()
	var out []string
	for _, r := range f.Last().RoutingPlan(set).Routes {
		if r.Table == set.ActiveTable && r.IsIPv6() == (family == 6) {
			for _, h := range r.Nexthops {
				out = append(out, h.Interface)
			}
		}
	}
	return out
}

// Cleanup counts cleanups.
func (f *Fake) Cleanup() (routing.Changes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups++
	return routing.Changes{}, nil
}

func (f *Fake) last() (State, bool) {
	if len(f.states) == 0 {
		return State{}, false
	}
	return f.states[len(f.states)-1], true
}

// Last is the State the box was last given.
func (f *Fake) Last() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, _ := f.last()
	return s
}

// States is every State the box was given, in order.
func (f *Fake) States() []State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.states)
}

// Sets counts the Set calls.
func (f *Fake) Sets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.states)
}

// FailNext makes the next n Set calls fail.
func (f *Fake) FailNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = n
}

// Flushed lists the addresses whose NAT state was flushed, in order.
func (f *Fake) Flushed() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.flushed)
}

// Cleanups counts Cleanup calls.
func (f *Fake) Cleanups() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cleanups
}

// SetLink makes interface ifname up with carrier, the address 198.51.100.n, the gateway
// 198.51.100.(100+n) and the IPv6 gateway 2001:db8:n::1; present false removes it.
func (f *Fake) SetLink(ifname string, n int, present bool) {
	if !present {
		f.PutLink(ifname, routing.LinkInfo{}, false)
		return
	}
	f.PutLink(ifname, routing.LinkInfo{Name: ifname, Index: n, Up: true, Carrier: true,
		Addrs:    []netip.Addr{netip.AddrFrom4([4]byte{198, 51, 100, byte(n)})},
		Gateway4: netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + n)}),
		Gateway6: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(n), 15: 1})}, true)
}

// PutLink sets what the kernel says about an interface, or removes it.
func (f *Fake) PutLink(ifname string, l routing.LinkInfo, present bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !present {
		delete(f.links, ifname)
		return
	}
	f.links[ifname] = l
}

// EditLink changes what the kernel says about an existing interface.
func (f *Fake) EditLink(ifname string, edit func(*routing.LinkInfo)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[ifname]
	edit(&l)
	f.links[ifname] = l
}

// Link is what the kernel says about an interface.
func (f *Fake) Link(ifname string) (routing.LinkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.links[ifname]
	if !ok {
		return routing.LinkInfo{}, fmt.Errorf("routing: link %s: Link not found", ifname)
	}
	return l, nil
}

// Prefixes6 is the Prefixes6 of what Link says about the interface.
func (f *Fake) Prefixes6(ifname string) ([]routing.AddrPrefix, error) {
	l, err := f.Link(ifname)
	return l.Prefixes6, err
}

// SetCounts sets the live connections per uplink mark.
func (f *Fake) SetCounts(c map[uint32]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts = maps.Clone(c)
}

// Counts returns the counts set, and counts the walks.
func (f *Fake) Counts() (map[uint32]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.walks++
	return maps.Clone(f.counts), nil
}

// Walks counts the Counts calls (conntrack walks).
func (f *Fake) Walks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.walks
}

// Receive counts n more replies arriving on the uplink with mark (passive evidence).
func (f *Fake) Receive(mark uint32, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.received == nil {
		f.received = map[uint32]uint64{}
	}
	f.received[mark] += n
}

// Received returns the replies per uplink mark, and counts the reads.
func (f *Fake) Received() (map[uint32]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return maps.Clone(f.received), nil
}

// Reads counts the Received calls.
func (f *Fake) Reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}
