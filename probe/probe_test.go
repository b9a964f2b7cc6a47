package probe

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

func TestNewFindsEachMethodAndRefusesUnknownOnes(t *testing.T) {
	if _, err := New(uplink.Method{Name: "icmp"}); err != nil {
		t.Errorf("icmp: %v", err)
	}
	if p, err := New(uplink.Method{Name: "tcp", Port: 443}); err != nil || p.(tcpProber).port != 443 {
		t.Errorf("tcp:443 = %v, %v", p, err)
	}
	if _, err := New(uplink.Method{Name: "http3"}); err == nil || !strings.Contains(err.Error(), `unknown method "http3": want one of dns, http, https, icmp, tcp`) {
		t.Errorf("an unknown method: %v", err)
	}
}

func TestProbesRefuseWhatCannotBeProbedWithoutSendingAnything(t *testing.T) {
	v4 := netip.MustParseAddr("203.0.113.1")
	v6 := netip.MustParseAddr("2001:db8:ff::1")
	tests := []struct {
		name    string
		pin     Pin
		target  netip.Addr
		timeout time.Duration
		wantErr string
	}{
		{"a missing target", Pin{}, netip.Addr{}, time.Second, "no target address"},
		{"a zero timeout", Pin{}, v4, 0, "timeout 0s is not positive"},
		{"an IPv6 source for an IPv4 target", Pin{Source4: v6}, v4, time.Second, "other address family"},
		{"an IPv4 source for an IPv6 target", Pin{Source6: v4}, v6, time.Second, "other address family"},
	}
	for _, method := range []string{"icmp", "tcp", "http", "https", "dns"} {
		p, err := New(uplink.Method{Name: method, Port: 80})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(method+" refuses "+tt.name, func(t *testing.T) {
				r := p.Probe(context.Background(), tt.pin, tt.target, tt.timeout)
				if r.OK || r.Err == nil || !strings.Contains(r.Err.Error(), tt.wantErr) {
					t.Fatalf("got %+v, want an error containing %q", r, tt.wantErr)
				}
			})
		}
	}
}

// fakeProber waits until `all` probes are running at once (so a sequential Round fails
// instead of passing slowly), then answers IPv4 targets and fails IPv6 ones.
type fakeProber struct {
	all     int
	mu      sync.Mutex
	running int
	ready   chan struct{}
	slow    netip.Addr // answers a little later than the others
}

func (f *fakeProber) Probe(ctx context.Context, pin Pin, target netip.Addr, timeout time.Duration) Result {
	f.mu.Lock()
	f.running++
	if f.running == f.all {
		close(f.ready)
	}
	f.mu.Unlock()
	select {
	case <-f.ready:
	case <-ctx.Done():
		return Result{Target: target, Err: errors.New("the probes of a round did not run concurrently")}
	}
	if target == f.slow {
		time.Sleep(20 * time.Millisecond)
	}
	if target.Is6() {
		return Result{Target: target, Err: errors.New("no reply")}
	}
	return Result{Target: target, OK: true, RTT: time.Millisecond}
}

func TestRoundProbesAllTargetsAtOnceAndKeepsTargetOrder(t *testing.T) {
	targets := []netip.Addr{
		netip.MustParseAddr("203.0.113.1"),
		netip.MustParseAddr("2001:db8:ff::1"),
		netip.MustParseAddr("203.0.113.3"),
	}
	// The first target answers last: order must not follow completion.
	f := &fakeProber{all: len(targets), ready: make(chan struct{}), slow: targets[0]}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := round(ctx, func(netip.Addr) Prober { return f }, Pin{Mark: 0x100}, targets, time.Second)
	if len(res) != len(targets) {
		t.Fatalf("got %d results for %d targets", len(res), len(targets))
	}
	for i, r := range res {
		if r.Target != targets[i] {
			t.Errorf("result %d is for %s, want %s", i, r.Target, targets[i])
		}
		if r.OK != targets[i].Is4() {
			t.Errorf("result %d: %+v", i, r)
		}
	}
}

func TestRoundOfNoTargetsIsEmpty(t *testing.T) {
	if res := round(context.Background(), func(netip.Addr) Prober { return &fakeProber{ready: make(chan struct{})} }, Pin{}, nil, time.Second); len(res) != 0 {
		t.Fatalf("got %v", res)
	}
}

func TestIDPoolNeverHandsOutAnIdentifierInUse(t *testing.T) {
	p := newIDPool(65534) // wraps past 0, which is skipped
	seen := map[int]bool{}
	for range 5 {
		id, err := p.acquire()
		if err != nil {
			t.Fatal(err)
		}
		if id == 0 || seen[id] {
			t.Fatalf("acquire gave %d (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
	p.release(65534)
	p.next = 65534
	if id, _ := p.acquire(); id != 65534 {
		t.Fatalf("a released identifier should be reusable, got %d", id)
	}
}

func TestIDPoolReportsExhaustion(t *testing.T) {
	p := newIDPool(1)
	for i := 1; i < 1<<16; i++ {
		p.used[uint16(i)] = true
	}
	if _, err := p.acquire(); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("want an exhaustion error, got %v", err)
	}
}

func TestPinDescribesItselfForErrors(t *testing.T) {
	v4 := netip.MustParseAddr("203.0.113.1")
	tests := []struct {
		name string
		pin  Pin
		want string
	}{
		{"mark and source", Pin{Mark: 0x100, Source4: netip.MustParseAddr("198.51.100.2")}, "mark 0x100 from 198.51.100.2"},
		{"mark only", Pin{Mark: 0x200}, "mark 0x200"},
		{"nothing", Pin{}, "unpinned"},
	}
	for _, tt := range tests {
		if got := tt.pin.describe(v4); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
