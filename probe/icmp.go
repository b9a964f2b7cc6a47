package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	probing "github.com/prometheus-community/pro-bing"
	"github.com/uplinkd/uplinkd/uplink"
)

// icmpProber sends one echo request per probe from a privileged (raw) socket. A pro-bing Pinger
// is single-use and its Timeout bounds the whole run, so each probe gets its own Pinger with
// Count 1 and Timeout = the probe timeout, and its own echo identifier (see ids).
type icmpProber struct{}

func newICMP(uplink.Method) Prober { return icmpProber{} }

func (icmpProber) Probe(ctx context.Context, pin Pin, target netip.Addr, timeout time.Duration) Result {
	res := Result{Target: target}
	if res.Err = check("icmp", pin, target, timeout); res.Err != nil {
		return res
	}
	fail := func(err error) Result {
		res.Err = fmt.Errorf("probe: icmp %s %s: %w", target, pin.describe(target), err)
		return res
	}
	id, err := ids.acquire()
	if err != nil {
		return fail(err)
	}
	defer ids.release(id)

	p := probing.New(target.String())
	p.SetIPAddr(&net.IPAddr{IP: target.AsSlice(), Zone: target.Zone()}) // no resolving
	p.SetPrivileged(true)
	p.SetLogger(probing.NoopLogger{}) // the default logger prints "FATAL" lines and carries on
	// Raw sockets see every echo reply in the namespace; the kernel filter pro-bing installs
	// passes only replies with our identifier, so concurrent probes never see each other's.
	p.SetID(id)
	p.Count = 1
	p.Interval = timeout
	p.Timeout = timeout
	p.RecordRtts = false
	p.RecordTTLs = false
	if pin.Mark != 0 {
		p.SetMark(uint(pin.Mark))
	}
	if s := pin.source(target); s.IsValid() {
		p.Source = s.String() // binds the socket and sets the packets' source
	}
	var (
		mu  sync.Mutex
		rtt time.Duration
		got bool
	)
	p.OnRecv = func(pkt *probing.Packet) {
		mu.Lock()
		defer mu.Unlock()
		rtt, got = pkt.Rtt, true
	}
	if err := p.RunWithContext(ctx); err != nil {
		return fail(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Timeouts are exact: a reply that came (or was read) after the timeout is a loss.
	if !got || rtt > timeout {
		res.Err = noReply("icmp", target, pin, timeout)
		return res
	}
	res.OK, res.RTT = true, rtt
	return res
}

// ids hands out ICMP echo identifiers so that no two probes running at the same time in this
// process share one: the identifier is what keeps their replies apart.
var ids = newIDPool(uint16(os.Getpid()))

type idPool struct {
	mu   sync.Mutex
	used map[uint16]bool
	next uint16
}

func newIDPool(start uint16) *idPool { return &idPool{used: map[uint16]bool{}, next: start} }

// acquire returns a free identifier (never 0), or an error when all 65535 are in use.
func (p *idPool) acquire() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range 1 << 16 { // bounded: one lap of the identifier space
		id := p.next
		p.next++
		if id == 0 || p.used[id] {
			continue
		}
		p.used[id] = true
		return int(id), nil
	}
	return 0, fmt.Errorf("all %d ICMP echo identifiers are in use", len(p.used))
}

func (p *idPool) release(id int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, uint16(id))
}
