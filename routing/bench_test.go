package routing

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/uplinkd/uplinkd/internal/testkit"
)

// Benchmarks of a failover (active set change) and a full resync (apply onto an empty
// namespace), against the in-memory fake (anywhere) and the real kernel (root, in a namespace).
// They report netlink change messages per operation as msgs/op.

// benchUplinks are n dual-stack uplinks on wan0..wan<n-1>, with gateways in 198.51.100.0/24
// (one /28 each) and 2001:db8:<i+1>::/64.
func benchUplinks(n int) []Uplink {
	ups := make([]Uplink, n)
	for i := range ups {
		ups[i] = Uplink{
			Name: fmt.Sprintf("isp%d", i), Interface: fmt.Sprintf("wan%d", i),
			Table: 201 + i, Mark: uint32(i+1) << 8, Weight: 1,
			Gateway4: netip.AddrFrom4([4]byte{198, 51, 100, byte(16*i + 1)}),
			Gateway6: netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", i+1)),
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{198, 51, 100, byte(16*i + 2)}),
				netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::2", i+1))},
		}
	}
	return ups
}

// benchLab builds a namespace with n veth uplinks (both ends inside it) addressed as benchUplinks.
func benchLab(b *testing.B, n int) *Router {
	ns := newNS(b, "x")
	for i := range n {
		wan, peer := fmt.Sprintf("wan%d", i), fmt.Sprintf("peer%d", i)
		ipn(b, ns, "link", "add", wan, "type", "veth", "peer", "name", peer)
		ipn(b, ns, "link", "set", wan, "up")
		ipn(b, ns, "link", "set", peer, "up")
		ipn(b, ns, "addr", "add", fmt.Sprintf("198.51.100.%d/28", 16*i+2), "dev", wan)
		ipn(b, ns, "addr", "add", fmt.Sprintf("2001:db8:%x::2/64", i+1), "dev", wan, "nodad")
	}
	_, h := nsHandles(b, ns)
	return NewRouter(h, Settings{}, nil)
}

func fakeRouter(n int) (*Router, *fakeKernel) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("wan%d", i)
	}
	k := newFakeKernel(names...)
	return newRouter(k, Settings{}, nil), k
}

func benchFailover(b *testing.B, r *Router, n int) {
	ups := benchUplinks(n)
	plans := []Plan{NewPlan(Settings{}, ups, []string{"isp0"}), NewPlan(Settings{}, ups, []string{"isp1"})}
	if _, err := r.Apply(plans[0]); err != nil {
		b.Fatal(err)
	}
	msgs := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ch, err := r.Apply(plans[(i+1)%2])
		if err != nil {
			b.Fatal(err)
		}
		msgs += ch.Messages
	}
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
}

func benchResync(b *testing.B, r *Router, n int) {
	p := NewPlan(Settings{}, benchUplinks(n), []string{"isp0"})
	msgs := 0
	for b.Loop() {
		b.StopTimer()
		if _, err := r.Cleanup(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		ch, err := r.Apply(p)
		if err != nil {
			b.Fatal(err)
		}
		msgs += ch.Messages
	}
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
}

func BenchmarkFailover(b *testing.B) {
	for _, n := range []int{2, 16} {
		b.Run(fmt.Sprintf("fake/uplinks=%d", n), func(b *testing.B) {
			r, _ := fakeRouter(n)
			benchFailover(b, r, n)
		})
		b.Run(fmt.Sprintf("kernel/uplinks=%d", n), func(b *testing.B) {
			testkit.NeedRoot(b)
			benchFailover(b, benchLab(b, n), n)
		})
	}
}

func BenchmarkResync(b *testing.B) {
	for _, n := range []int{2, 16} {
		b.Run(fmt.Sprintf("fake/uplinks=%d", n), func(b *testing.B) {
			r, _ := fakeRouter(n)
			benchResync(b, r, n)
		})
		b.Run(fmt.Sprintf("kernel/uplinks=%d", n), func(b *testing.B) {
			testkit.NeedRoot(b)
			benchResync(b, benchLab(b, n), n)
		})
	}
}

// BenchmarkPlan is the pure part alone.
func BenchmarkPlan(b *testing.B) {
	ups := benchUplinks(16)
	for b.Loop() {
		_ = NewPlan(Settings{}, ups, []string{"isp0", "isp1"})
	}
}
