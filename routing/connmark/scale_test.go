package connmark

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/testkit"
)

// clocks returns the wall time and the process's CPU time (user + system,
// all threads), for reporting what an Apply costs.
func clocks() (time.Time, time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Now(), time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// since says how much wall and CPU time passed since clocks returned them.
func since(wall time.Time, cpu time.Duration) string {
	w, c := clocks()
	return fmt.Sprintf("%v wall, %v CPU", w.Sub(wall).Round(time.Millisecond), (c - cpu).Round(time.Millisecond))
}

// manyUplinks is a plan with uplink ids 1..n, every one live, most eligible,
// each with an IPv4 and an IPv6 address, and a service per tenth uplink.
func manyUplinks(n int) Plan {
	p := Plan{LANInterfaces: []string{"lan0"}}
	for id := 1; id <= n; id++ {
		u := Uplink{
			Name:      fmt.Sprintf("isp%d", id),
			Interface: fmt.Sprintf("wan%d", id),
			Mark:      uint32(id) << 8,
			Weight:    1 + id%5,
			Live:      id%7 != 0,
			Addrs: []netip.Addr{
				netip.AddrFrom4([4]byte{198, 51, 100, byte(id)}),
				netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::2", id)),
			},
		}
		u.Eligible = u.Live && id%3 != 0
		p.Uplinks = append(p.Uplinks, u)
		if id%10 == 0 {
			p.Services = append(p.Services, Service{Name: fmt.Sprintf("svc%d", id), Proto: "tcp",
				DPorts: []PortRange{{uint16(1000 + id), uint16(1000 + id)}}, Mark: u.Mark})
		}
	}
	return p
}

// A table for the documented range of uplink ids (1..250) goes into the
// kernel in one transaction, and the kernel then holds what Render prints.
func TestApplyManyUplinks(t *testing.T) {
	testkit.NeedRoot(t)
	for _, n := range []int{32, 63, 250} {
		t.Run(fmt.Sprintf("%d uplinks", n), func(t *testing.T) {
			p := manyUplinks(n)
			viaGo, viaNft := newNS(t, "g"), newNS(t, "n")
			tb := NewTable(nsHandle(t, viaGo), nil)
			wall, cpu := clocks()
			if err := tb.Replace(p); err != nil {
				t.Fatalf("Replace: %v", err)
			}
			t.Logf("first apply of %d uplinks: %s", n, since(wall, cpu))
			p.Uplinks[0].Weight++ // a change: the table is replaced while it exists
			wall, cpu = clocks()
			if err := tb.Replace(p); err != nil {
				t.Fatalf("second Apply: %v", err)
			}
			t.Logf("replace of %d uplinks: %s", n, since(wall, cpu))
			nft(t, viaNft, Render(p))
			got := nftList(t, viaGo, "list", "table", "inet", "uplinkd")
			want := strings.ReplaceAll(nftList(t, viaNft, "list", "table", "inet", "uplinkd"),
				"typeof fib daddr oifname", "type ifname")
			if got != want {
				t.Errorf("table built by Apply differs from the one nft loaded from Render:\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

// The socket is sized from the batch: the send buffer holds the whole batch
// and the receive buffer an acknowledgement for every message and an echo
// for every rule, and both grow with the number of uplinks.
func TestBatchSizeGrowsWithUplinks(t *testing.T) {
	var last batchSize
	for _, n := range []int{1, 32, 63, 250} {
		s, err := measure(build(manyUplinks(n)))
		if err != nil {
			t.Fatalf("%d uplinks: measure: %v", n, err)
		}
		if s.messages <= last.messages || s.rules <= last.rules || s.bytes <= last.bytes {
			t.Errorf("%d uplinks: %+v does not exceed %+v", n, s, last)
		}
		if s.sendBuffer() < s.bytes+32 {
			t.Errorf("%d uplinks: send buffer %d does not hold a batch of %d bytes", n, s.sendBuffer(), s.bytes)
		}
		if s.recvBuffer() < s.messages*ackCost+s.rules*echoCost {
			t.Errorf("%d uplinks: receive buffer %d too small for %+v", n, s.recvBuffer(), s)
		}
		last = s
	}
	if last.rules < 1000 {
		t.Errorf("250 uplinks make only %d rules; the plan is not what the test means", last.rules)
	}
}
