package inbound

import (
	"net/netip"
	"testing"
	"time"
)

func TestTheRateLimiterSlipsEverySecondResponseBeyondTheRate(t *testing.T) {
	l := newLimiter(20)
	src := netip.MustParseAddr("203.0.113.7")
	neighbour := netip.MustParseAddr("203.0.113.200") // the same /24
	other := netip.MustParseAddr("198.51.100.9")
	count := func(from netip.Addr, n int, now time.Time) map[verdict]int {
		out := map[verdict]int{}
		for range n {
			out[l.check(from, now)]++
		}
		return out
	}
	got := count(src, 1000, t0)
	if got[send] != 20 || got[slip] != 490 || got[drop] != 490 {
		t.Errorf("1000 queries in one instant: %v, want 20 sent, then half slipped, half dropped", got)
	}
	if got := count(neighbour, 10, t0); got[send] != 0 {
		t.Errorf("a neighbour in the same /24 got %d responses: the network shares the budget", got[send])
	}
	if got := count(other, 10, t0); got[send] != 10 {
		t.Errorf("another network got %v, want all 10 sent", got)
	}
	if got := count(src, 10, t0.Add(500*time.Millisecond)); got[send] != 10 {
		t.Errorf("after half a second: %v, want 10 sent (the rate refills)", got)
	}
	if l := newLimiter(0); l.check(src, t0) != send {
		t.Error("rate 0 limited")
	}
	v6 := netip.MustParseAddr("2001:db8:1:ff00::1")
	count(v6, 20, t0)
	if got := count(netip.MustParseAddr("2001:db8:1:ffaa::2"), 4, t0); got[send] != 0 {
		t.Errorf("IPv6: the same /56 got %v", got)
	}
}

func TestTheRateLimiterHoldsMemoryFixedUnderAFloodOfSources(t *testing.T) {
	l := newLimiter(5)
	sent := 0
	for i := range 1 << 20 { // a million spoofed /24s in one second
		a := netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 1})
		if l.check(a, t0.Add(time.Duration(i)*time.Microsecond)) == send {
			sent++
		}
	}
	// Networks that collide share a bucket: no more than rate per bucket per second.
	if limit := len(l.buckets) * 5 * 2; sent > limit {
		t.Errorf("%d responses sent, want at most %d", sent, limit)
	}
}
