package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// FlowOptions shape a long-lived UDP flow (a call, a VPN, a game) from the LAN to the echo server.
type FlowOptions struct {
	From         string         // role sending; default "lan"
	To           netip.AddrPort // default Server4 port EchoPort
	SrcPort      uint16         // default 40000: one fixed port, so the whole flow is one conntrack entry
	Interval     time.Duration  // between datagrams; default 10ms
	ReplyTimeout time.Duration  // a reply later than this is a loss; default 1s
}

// Flow sends a numbered datagram every Interval and records which ones were answered, so a test
// can see when replies stopped and resumed (the outage a failover caused) and which uplink
// address the server saw. Start it with StartFlow; Stop it (or Close the lab).
type Flow struct {
	opts   FlowOptions
	conn   *net.UDPConn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	sent     []time.Time // by sequence number
	replied  []time.Time // zero: no (timely) reply yet
	via      string
	switches []Switch
	stopped  bool
}

// Switch is a change of the source address the server saw: the flow moved uplink or NAT address.
type Switch struct {
	At       time.Time
	From, To string
}

// Outage is a run of consecutive datagrams that got no reply.
type Outage struct {
	Start   time.Time // when the first unanswered datagram was sent
	End     time.Time // when the first answered one after the run was sent (Ongoing: the last unanswered one)
	Lost    int
	Ongoing bool // no datagram was answered after it (yet)
}

// Duration is how long the flow was broken (End − Start).
func (o Outage) Duration() time.Duration { return o.End.Sub(o.Start) }

// FlowReport is what a flow saw.
type FlowReport struct {
	Sent, Received int
	Outages        []Outage
	Via            string // the source address the server saw in the latest reply
	Switches       []Switch
}

// Longest returns the longest outage's duration (0 if none).
func (r FlowReport) Longest() time.Duration {
	var d time.Duration
	for _, o := range r.Outages {
		d = max(d, o.Duration())
	}
	return d
}

const flowMagic = "ULF1"

// StartFlow opens the flow's socket in opts.From's namespace and starts sending.
func (l *Lab) StartFlow(opts FlowOptions) (*Flow, error) {
	if opts.From == "" {
		opts.From = RoleLAN
	}
	if !opts.To.IsValid() {
		opts.To = netip.AddrPortFrom(Server4, EchoPort)
	}
	if opts.SrcPort == 0 {
		opts.SrcPort = 40000
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Millisecond
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = time.Second
	}
	local := netip.AddrPortFrom(netip.IPv4Unspecified(), opts.SrcPort)
	network := "udp4"
	if opts.To.Addr().Is6() {
		local, network = netip.AddrPortFrom(netip.IPv6Unspecified(), opts.SrcPort), "udp6"
	}
	f := &Flow{opts: opts}
	err := l.InNS(opts.From, func() error {
		lc := net.ListenConfig{Control: inNSControl(l.NS(opts.From))}
		pc, err := lc.ListenPacket(context.Background(), network, local.String())
		if err != nil {
			return err
		}
		f.conn = pc.(*net.UDPConn)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: start flow from %s port %d to %s: %w", l.NS(opts.From), opts.SrcPort, opts.To, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Go(func() { f.send(ctx) })
	f.wg.Go(f.receive)
	if !l.track(func() { f.Stop() }) {
		f.Stop()
		return nil, errors.New("netlab: StartFlow on a closed lab")
	}
	return f, nil
}

func (f *Flow) send(ctx context.Context) {
	t := time.NewTicker(f.opts.Interval)
	defer t.Stop()
	buf := make([]byte, len(flowMagic)+8)
	copy(buf, flowMagic)
	for {
		f.mu.Lock()
		seq := uint64(len(f.sent))
		f.sent = append(f.sent, time.Now())
		f.replied = append(f.replied, time.Time{})
		f.mu.Unlock()
		binary.BigEndian.PutUint64(buf[len(flowMagic):], seq)
		_, _ = f.conn.WriteToUDPAddrPort(buf, f.opts.To) // a send error is a lost datagram
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *Flow) receive() {
	buf := make([]byte, 512)
	for {
		n, err := f.conn.Read(buf)
		now := time.Now()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < len(flowMagic)+8 || string(buf[:len(flowMagic)]) != flowMagic {
			continue // ICMP errors (ECONNREFUSED) and strays
		}
		seq := binary.BigEndian.Uint64(buf[len(flowMagic):])
		via := string(buf[len(flowMagic)+8 : n])
		f.mu.Lock()
		if seq < uint64(len(f.sent)) && f.replied[seq].IsZero() && now.Sub(f.sent[seq]) <= f.opts.ReplyTimeout {
			f.replied[seq] = now
			if via != f.via {
				if f.via != "" {
					f.switches = append(f.switches, Switch{At: now, From: f.via, To: via})
				}
				f.via = via
			}
		}
		f.mu.Unlock()
	}
}

// Report returns what the flow has seen so far; datagrams still within ReplyTimeout are left out.
func (f *Flow) Report() FlowReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.report(time.Now())
}

// report computes the report at now; datagrams sent after now−ReplyTimeout and unanswered are
// pending, unless the flow is stopped (then they are lost). Caller holds f.mu.
func (f *Flow) report(now time.Time) FlowReport {
	r := FlowReport{Via: f.via, Switches: append([]Switch(nil), f.switches...)}
	n := len(f.sent)
	if !f.stopped {
		for n > 0 && f.replied[n-1].IsZero() && now.Sub(f.sent[n-1]) < f.opts.ReplyTimeout {
			n--
		}
	}
	r.Sent = n
	var cur *Outage
	for i := 0; i < n; i++ {
		if !f.replied[i].IsZero() {
			r.Received++
			if cur != nil {
				cur.End = f.sent[i]
				r.Outages = append(r.Outages, *cur)
				cur = nil
			}
			continue
		}
		if cur == nil {
			cur = &Outage{Start: f.sent[i]}
		}
		cur.Lost++
		cur.End = f.sent[i]
	}
	if cur != nil {
		cur.Ongoing = true
		r.Outages = append(r.Outages, *cur)
	}
	return r
}

// WaitReply waits until a datagram sent at or after since is answered, or ctx ends: "has the
// flow recovered?".
func (f *Flow) WaitReply(ctx context.Context, since time.Time) error {
	t := time.NewTicker(f.opts.Interval)
	defer t.Stop()
	for {
		f.mu.Lock()
		for i := len(f.sent) - 1; i >= 0 && !f.sent[i].Before(since); i-- {
			if !f.replied[i].IsZero() {
				f.mu.Unlock()
				return nil
			}
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("netlab: flow to %s: no reply to a datagram sent since %s: %w", f.opts.To, since.Format("15:04:05.000"), ctx.Err())
		case <-t.C:
		}
	}
}

// Stop stops sending, waits up to ReplyTimeout for the last replies, closes the socket and
// returns the final report. Later calls return the same report.
func (f *Flow) Stop() FlowReport {
	f.once.Do(func() {
		f.cancel()
		deadline := time.Now().Add(f.opts.ReplyTimeout)
		for time.Now().Before(deadline) { // bounded by ReplyTimeout
			f.mu.Lock()
			n := len(f.sent)
			done := n == 0 || !f.replied[n-1].IsZero()
			f.mu.Unlock()
			if done {
				break
			}
			time.Sleep(f.opts.Interval)
		}
		f.conn.Close()
		f.wg.Wait()
		f.mu.Lock()
		f.stopped = true
		f.mu.Unlock()
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.report(time.Now())
}
