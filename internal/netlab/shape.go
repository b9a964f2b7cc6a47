package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Shape limits uplink isp's upstream (the ISP's core wire towards the internet) to rate bits
// per second with a tbf queue of `queue` worth of delay: overfilled, it makes a busy line —
// queueing delay up to `queue` and tail drops — without any loss fault. Unshape removes it.
func (l *Lab) Shape(isp int, rate int64, queue time.Duration) error {
	u, err := uplink(isp)
	if err != nil {
		return err
	}
	if rate <= 0 || queue <= 0 {
		return fmt.Errorf("netlab: shape isp%d: rate %d and queue %s must be positive", isp, rate, queue)
	}
	ns := u.Role
	_, err = l.Exec(context.Background(), ns, "tc", "qdisc", "replace", "dev", ifISPToInet, "root", "tbf",
		"rate", fmt.Sprintf("%dbit", rate), "burst", "16kb", "latency", fmt.Sprintf("%dms", queue.Milliseconds()))
	return err
}

// Unshape removes Shape's limit (no limit is not an error).
func (l *Lab) Unshape(isp int) error {
	u, err := uplink(isp)
	if err != nil {
		return err
	}
	_, _ = l.Exec(context.Background(), u.Role, "tc", "qdisc", "del", "dev", ifISPToInet, "root")
	return nil
}

// DiscardPort is where Bulk traffic goes: a sink on Server4 that reads and drops it.
const DiscardPort = 9

// Bulk is a constant-rate UDP stream from the LAN client to the internet's discard sink.
type Bulk struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	sent   atomic.Int64 // bytes
}

// StartBulk sends rate bits per second of 1200-byte UDP datagrams from the LAN to
// Server4:DiscardPort (a new flow: its own source port) until Stop or the lab's Close.
func (l *Lab) StartBulk(rate int64) (*Bulk, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("netlab: bulk rate %d must be positive", rate)
	}
	var sink net.PacketConn
	err := l.InNS(RoleInet, func() error {
		lc := net.ListenConfig{Control: inNSControl(l.NS(RoleInet))}
		var err error
		sink, err = lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(Server4, DiscardPort).String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: discard sink: %w", err)
	}
	var conn net.Conn
	err = l.InNS(RoleLAN, func() error {
		d := net.Dialer{Control: inNSControl(l.NS(RoleLAN))}
		var err error
		conn, err = d.Dial("udp", netip.AddrPortFrom(Server4, DiscardPort).String())
		return err
	})
	if err != nil {
		sink.Close()
		return nil, fmt.Errorf("netlab: bulk sender: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bulk{cancel: cancel}
	b.done.Go(func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := sink.ReadFrom(buf); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	})
	b.done.Go(func() {
		defer conn.Close()
		defer sink.Close()
		const size = 1200
		const wire = size + 28 // UDP and IPv4 headers
		payload := make([]byte, size)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		var sentBits int64
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				due := int64(now.Sub(start).Seconds() * float64(rate))
				for n := 0; sentBits+wire*8 <= due && n < 1000; n++ { // bounded per tick
					_, _ = conn.Write(payload) // errors (e.g. a refused port) do not stop the stream
					sentBits += wire * 8
					b.sent.Add(wire)
				}
			}
		}
	})
	if !l.track(b.Stop) {
		b.Stop()
		return nil, errors.New("netlab: StartBulk on a closed lab")
	}
	return b, nil
}

// Stop ends the stream and waits for it; it is idempotent.
func (b *Bulk) Stop() {
	b.cancel()
	b.done.Wait()
}

// SentBytes is how much was sent so far, headers included.
func (b *Bulk) SentBytes() int64 { return b.sent.Load() }
