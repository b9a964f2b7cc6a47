package servercheck

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// fakeProber passes for the marks in pass (0: unpinned) and counts its probes.
type fakeProber struct {
	mu    sync.Mutex
	pass  map[uint32]bool
	calls []uint32
}

func (f *fakeProber) Probe(_ context.Context, pin probe.Pin, target netip.Addr, _ time.Duration) probe.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, pin.Mark)
	if f.pass[pin.Mark] {
		return probe.Result{Target: target, OK: true, RTT: time.Millisecond}
	}
	return probe.Result{Target: target, Err: errors.New("probe: http x unpinned: connection refused")}
}

func withFake(t *testing.T, f *fakeProber) {
	old := newProber
	newProber = func(uplink.Method) (probe.Prober, error) { return f, nil }
	t.Cleanup(func() { newProber = old })
}

// The same server of several names is checked once per interval and its outcome handed to
// every name; another site's address is checked through the live uplinks in order until one
// passes.
func TestChecksAreSharedAndAnotherSiteIsCheckedThroughTheLiveUplinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{pass: map[uint32]bool{0: true, 0x200: true}}
		withFake(t, f)
		lan := uplink.Server{Addr: netip.MustParseAddr("192.0.2.10"), Method: uplink.Method{Name: uplink.MethodHTTP, Port: 80}}
		far := uplink.Server{Addr: netip.MustParseAddr("203.0.113.20"), Method: uplink.Method{Name: uplink.MethodHTTP, Port: 80}}
		targets := []Target{{Name: "www.", Server: lan}, {Name: "shop.", Server: lan}, {Name: "www.", Site: "lyon", Server: far}, {Name: "shop.", Site: "lyon", Server: far}}
		pins := func() []probe.Pin {
			return []probe.Pin{{Mark: 0x100, Source4: netip.MustParseAddr("198.51.100.2")}, {Mark: 0x200, Source4: netip.MustParseAddr("198.51.100.66")},
				{Mark: 0x300, Source6: netip.MustParseAddr("2001:db8::2")}} // no IPv4 source: never used for an IPv4 address
		}
		out := make(chan Result, 16)
		stop := Start(context.Background(), targets, uplink.DefaultServerCheck, pins, out)
		synctest.Wait()
		stop()
		close(out)
		var got []Result
		for r := range out {
			got = append(got, r)
		}
		if len(got) != 2 || len(got[0].Targets) != 2 || len(got[1].Targets) != 2 {
			t.Fatalf("%+v: want one result per server, each for both names", got)
		}
		for _, r := range got {
			if !r.OK {
				t.Errorf("%+v: want passed", r)
			}
			if r.Targets[0].Site == "lyon" && r.Reason != "passed in 1ms via mark 0x200" {
				t.Errorf("lyon's reason %q: want it passed through isp2 after isp1 failed", r.Reason)
			}
		}
		if want := []uint32{0, 0x100, 0x200}; len(f.calls) != 3 || !sameSet(f.calls, want) {
			t.Errorf("probes %v, want one unpinned and lyon through 0x100 then 0x200: one check per server", f.calls)
		}
	})
}

func TestWithoutALiveUplinkAnotherSiteFailsItsCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		withFake(t, &fakeProber{pass: map[uint32]bool{}})
		far := uplink.Server{Addr: netip.MustParseAddr("203.0.113.20"), Method: uplink.Method{Name: uplink.MethodTCP, Port: 443}}
		out := make(chan Result, 1)
		stop := Start(context.Background(), []Target{{Name: "www.", Site: "lyon", Server: far}}, uplink.DefaultServerCheck, func() []probe.Pin { return nil }, out)
		synctest.Wait()
		stop()
		if r := <-out; r.OK || r.Reason != "no live uplink of this site to check it through" {
			t.Errorf("%+v", r)
		}
	})
}

func sameSet(a, b []uint32) bool {
	m := map[uint32]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
