package dataplane

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
)

// fakeRoutes and fakePins record what the Dataplane asks of the kernel.
type fakeRoutes struct {
	applies         []routing.Plan
	fail            error
	flushed         []netip.Addr
	flushedPrefixes []netip.Prefix
	ended           []uint32 // marks whose service connections were ended
	cleanups        int
}

func (f *fakeRoutes) EndFlows(_ routing.FlowMatch, mark, _ uint32) (int, error) {
	f.ended = append(f.ended, mark)
	return 1, nil
}

func (f *fakeRoutes) Apply(p routing.Plan) (routing.Changes, error) {
	f.applies = append(f.applies, p)
	return routing.Changes{Messages: 1}, f.fail
}
func (f *fakeRoutes) Link(string) (routing.LinkInfo, error)          { return routing.LinkInfo{}, nil }
func (f *fakeRoutes) Prefixes6(string) ([]routing.AddrPrefix, error) { return nil, nil }
func (f *fakeRoutes) FlushSNAT(a netip.Addr) (int, error) {
	f.flushed = append(f.flushed, a)
	return 1, nil
}
func (f *fakeRoutes) FlushPrefix(p netip.Prefix) (int, error) {
	f.flushedPrefixes = append(f.flushedPrefixes, p)
	return 1, nil
}
func (f *fakeRoutes) Cleanup() (routing.Changes, error) { f.cleanups++; return routing.Changes{}, nil }

type fakePins struct {
	exists   bool
	damage   string
	replaces int
	checks   int
	cleanups int
}

func (f *fakePins) Replace(connmark.Plan) error { f.replaces++; f.exists = true; return nil }
func (f *fakePins) Check(connmark.Plan) (string, error) {
	f.checks++
	return f.damage, nil
}
func (f *fakePins) Exists() (bool, error)                { return f.exists, nil }
func (f *fakePins) Cleanup() error                       { f.cleanups++; f.exists = false; return nil }
func (f *fakePins) Counts() (map[uint32]int, error)      { return nil, nil }
func (f *fakePins) Received() (map[uint32]uint64, error) { return nil, nil }

var (
	addr1 = netip.MustParseAddr("198.51.100.1")
	addr2 = netip.MustParseAddr("198.51.100.2")
)

// twoUplinks is isp1 active and isp2 a live backup.
func twoUplinks() State {
	return State{Pinning: true, Uplinks: []Uplink{
		{Name: "isp1", Interface: "wan1", Table: 1001, Mark: 0x100, Weight: 1, Gateway4: netip.MustParseAddr("198.51.100.101"),
			Addrs: []netip.Addr{addr1}, Active: true, Active6: true, Live: true},
		{Name: "isp2", Interface: "wan2", Table: 1002, Mark: 0x200, Weight: 1, Gateway4: netip.MustParseAddr("198.51.100.102"),
			Addrs: []netip.Addr{addr2}, Live: true},
	}}
}

type partFunc func(State) error

func (f partFunc) Set(s State) error { return f(s) }

func newTest(parts ...Part) (*Dataplane, *fakeRoutes, *fakePins) {
	r, p := &fakeRoutes{}, &fakePins{}
	return newDataplane(routing.Settings{}.WithDefaults(), r, p, nil, parts...), r, p
}

func TestAnUnchangedStateSendsNothing(t *testing.T) {
	d, r, p := newTest()
	s := twoUplinks()
	for range 3 {
		if _, err := d.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.applies) != 1 || p.replaces != 1 {
		t.Errorf("three equal states: %d routing applies and %d table replacements, want 1 and 1", len(r.applies), p.replaces)
	}
	s.Uplinks[1].Active = true // re-weighting: routes and pins change
	d.Set(s)
	if len(r.applies) != 2 || p.replaces != 2 {
		t.Errorf("a changed state: %d applies, %d replacements, want 2 and 2", len(r.applies), p.replaces)
	}
}

func TestForgetChecksTheKernelAndReplacesOnlyADamagedTable(t *testing.T) {
	d, r, p := newTest()
	s := twoUplinks()
	d.Set(s)
	d.Forget()
	d.Set(s)
	if len(r.applies) != 2 || p.checks != 1 || p.replaces != 1 {
		t.Errorf("after Forget: %d applies, %d checks, %d replacements; want the routes re-applied and the intact table only checked", len(r.applies), p.checks, p.replaces)
	}
	p.damage = "table missing"
	d.Forget()
	d.Set(s)
	if p.replaces != 2 {
		t.Errorf("a damaged table was not replaced")
	}
	d.Set(s)
	if p.checks != 2 || len(r.applies) != 3 {
		t.Errorf("a Set after the check checked again: %d checks, %d applies", p.checks, len(r.applies))
	}
}

func TestAFailedApplyIsTriedAgainOnTheNextSet(t *testing.T) {
	d, r, _ := newTest()
	r.fail = errors.New("routing: replace route: no such device")
	if _, err := d.Set(twoUplinks()); err == nil || !strings.Contains(err.Error(), "no such device") {
		t.Fatalf("Set = %v, want the routing error", err)
	}
	r.fail = nil
	if _, err := d.Set(twoUplinks()); err != nil || len(r.applies) != 2 {
		t.Errorf("the same state after a failure: %v, %d applies; want it applied again", err, len(r.applies))
	}
}

func TestStaleNATIsFlushedOnceWhenItBecomesStale(t *testing.T) {
	d, r, _ := newTest()
	s := twoUplinks()
	d.Set(s)
	s.Uplinks[0].Live, s.Uplinks[0].Active, s.Uplinks[0].StaleNAT = false, false, []netip.Addr{addr1}
	s.Uplinks[1].Active = true
	d.Set(s)
	d.Forget() // a repair does not flush again
	d.Set(s)
	if !slices.Equal(r.flushed, []netip.Addr{addr1}) {
		t.Fatalf("flushed %v, want isp1's address once", r.flushed)
	}
	s.Uplinks[0].StaleNAT = nil // back
	d.Set(s)
	s.Uplinks[0].StaleNAT = []netip.Addr{addr1} // and gone again
	d.Set(s)
	if !slices.Equal(r.flushed, []netip.Addr{addr1, addr1}) {
		t.Errorf("flushed %v, want isp1's address again after it came back and left", r.flushed)
	}
}

func TestAProvisionalStateKeepsTheLastRunsTable(t *testing.T) {
	d, _, p := newTest()
	p.exists = true
	s := twoUplinks()
	s.Provisional = true
	d.Set(s)
	if p.replaces != 0 {
		t.Fatalf("the table the last run left was replaced before the first verdict")
	}
	s.Provisional = false
	d.Set(s)
	if p.replaces != 1 {
		t.Errorf("the first verdict did not replace the table")
	}

	d, _, p = newTest()
	s.Provisional = true
	d.Set(s)
	if p.replaces != 1 {
		t.Errorf("a missing table was not installed before the first probe")
	}
}

func TestPinningOffRemovesTheTableOnce(t *testing.T) {
	d, _, p := newTest()
	s := twoUplinks()
	d.Set(s)
	s.Pinning = false
	d.Set(s)
	d.Set(s)
	if p.cleanups != 1 {
		t.Errorf("pinning off: %d removals, want 1", p.cleanups)
	}
	s.Pinning = true
	d.Set(s)
	if p.replaces != 2 {
		t.Errorf("pinning back on: the table was not built again")
	}
}

func TestPartsSeeEveryState(t *testing.T) {
	var seen []State
	d, _, _ := newTest(partFunc(func(s State) error { seen = append(seen, s); return nil }))
	d.Set(twoUplinks())
	d.Set(twoUplinks())
	if len(seen) != 2 {
		t.Errorf("a part saw %d of 2 states", len(seen))
	}
}

func TestTheStatusRoutesAreTheKernelsRoutes(t *testing.T) {
	s := twoUplinks()
	s.Uplinks[0].Gateway6 = netip.MustParseAddr("2001:db8:1::1")
	s.Uplinks[1].Gateway6 = netip.MustParseAddr("2001:db8:2::1")
	s.Uplinks[0].Active6, s.Uplinks[1].Active6 = false, true // IPv6 judged apart: dead at isp1
	if got, want := s.Route4(), "default via 198.51.100.101 dev wan1"; got != want {
		t.Errorf("Route4 = %q, want %q", got, want)
	}
	if got, want := s.Route6(), "default via 2001:db8:2::1 dev wan2"; got != want {
		t.Errorf("Route6 = %q, want %q", got, want)
	}
	s.Uplinks[1].Active = true
	if got, want := s.Route4(), "default\n\tnexthop via 198.51.100.101 dev wan1 weight 1\n\tnexthop via 198.51.100.102 dev wan2 weight 1"; got != want {
		t.Errorf("Route4 = %q, want %q", got, want)
	}
	// The same routes as in the plan the kernel gets.
	plan := s.RoutingPlan(routing.Settings{}.WithDefaults()).String()
	if !strings.Contains(plan, "ipv6 table 1000: default via 2001:db8:2::1 dev wan2") {
		t.Errorf("the plan disagrees with the status:\n%s", plan)
	}
}

func TestAServicesConnectionsAreEndedOncePerMove(t *testing.T) {
	r, p := &fakeRoutes{}, &fakePins{}
	d := newDataplane(routing.Settings{}.WithDefaults(), r, p, nil)
	s := State{Pinning: true}
	s.EndFlows = []EndFlows{{Service: "voice", Mark: 0x100, Seq: 1}}
	for range 3 {
		if _, err := d.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	s.EndFlows[0].Seq, s.EndFlows[0].Mark = 2, 0x200
	d.Set(s)
	if !slices.Equal(r.ended, []uint32{0x100, 0x200}) {
		t.Errorf("ended %#x, want 0x100 once and 0x200 once", r.ended)
	}
}

func withPrefixes(s State, usable1 bool) State {
	s.IPv6 = uplink.IPv6{NPTv6: true, Interfaces: []string{"lan0"}}
	s.Uplinks[0].Prefixes = []Prefix{{Prefix: netip.MustParsePrefix("2001:db8:a1::/64")}}
	s.Uplinks[1].Prefixes = []Prefix{{Prefix: netip.MustParsePrefix("2001:db8:a2::/64")}}
	s.Uplinks[0].Usable6, s.Uplinks[1].Usable6 = usable1, true
	s.Uplinks[0].Live, s.Uplinks[0].Active6 = usable1, usable1
	s.Uplinks[1].Active6 = !usable1
	return s
}

func TestAUsablePrefixIsRoutedByItsUplinkAndADeadOneTranslated(t *testing.T) {
	s := withPrefixes(twoUplinks(), true)
	plan := s.RoutingPlan(routing.Settings{}.WithDefaults()).String()
	for _, want := range []string{"from 2001:db8:a1::/64 lookup 1001", "from 2001:db8:a2::/64 lookup 1002"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	if tr := s.Translations(); len(tr) != 0 {
		t.Errorf("both usable: translations %v, want none", tr)
	}
	s = withPrefixes(twoUplinks(), false)
	if plan := s.RoutingPlan(routing.Settings{}.WithDefaults()).String(); strings.Contains(plan, "2001:db8:a1::/64") {
		t.Errorf("isp1 dead: its prefix still routed by it:\n%s", plan)
	}
	tr := s.Translations()
	if len(tr) != 1 || tr[0].Interface != "wan2" || tr[0].From.String() != "2001:db8:a1::/64" || tr[0].To.String() != "2001:db8:a2::/64" {
		t.Errorf("isp1 dead: translations %+v; want 2001:db8:a1::/64 to 2001:db8:a2::/64 out of wan2", tr)
	}
	s.IPv6.NPTv6 = false
	if tr := s.Translations(); len(tr) != 0 {
		t.Errorf("nptv6 off: translations %v", tr)
	}
}

func TestADeadPrefixsFlowsAreFlushedOnce(t *testing.T) {
	d, r, _ := newTest()
	d.Set(withPrefixes(twoUplinks(), true))
	dead := withPrefixes(twoUplinks(), false)
	d.Set(dead)
	d.Set(dead)
	if len(r.flushedPrefixes) != 1 || r.flushedPrefixes[0].String() != "2001:db8:a1::/64" {
		t.Errorf("flushed %v; want isp1's prefix once", r.flushedPrefixes)
	}
}
