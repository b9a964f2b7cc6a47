package netlab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Observation is what the LAN felt across one event in a pair.
type Observation struct {
	Before, After Box // master before the event and once it settled (After is Before if none)
	VIPMoved      bool
	// LANOutage is the longest run of unanswered datagrams of a 100 pps UDP flow from the LAN
	// that overlaps the event (from the first unanswered datagram to the first answered one).
	LANOutage time.Duration
	// UDPSurvived: the flow is answered again after the event; UDPSameMapping: and the server
	// still sees it from the same address and port (its NAT mapping survived).
	UDPSurvived, UDPSameMapping bool
	// TCPSurvived: a TCP connection opened before the event still echoes after it.
	TCPSurvived bool
	// PushSurvived: a server-pushed stream (client silent) opened before still delivers after.
	PushSurvived bool
	// SplitBrain: after the event both boxes held the LAN VIP for longer than splitBrainAfter
	// in a row, or still at the end. A takeover's own overlap (the old master lets go when it
	// hears the new one, RFC 5798 §6.4.3; a loaded machine stretches that) is Overlap.
	SplitBrain bool
	// Overlap is the longest time both boxes held the LAN VIP at once.
	Overlap time.Duration
	// Takeover is from the event until the LAN VIP appeared on the other box (0: it never did):
	// VRRP's part, which depends on where the cut fell between two advertisements (up to one
	// advert_int). Recovery is from then until the LAN's flow was answered again: the part of
	// conntrackd, the notify script and uplinkd.
	Takeover, Recovery time.Duration
	Details            []string // why something did not survive
}

// splitBrainAfter is how long both boxes may hold the LAN VIP during a takeover before it is
// called split brain: ten advert intervals of the example's advert_int 0.1.
const splitBrainAfter = time.Second

// ObserveOptions shape Observe.
type ObserveOptions struct {
	SrcPort uint16 // the UDP flow's source port (one per run, so runs never share an entry)
	// Settled waits for the event's effect (e.g. the VIPs on the other box); nil: none.
	Settled func(ctx context.Context) error
	// Quiet is how long the flows keep running after Settled before the verdicts (default 1 s).
	Quiet time.Duration
	// Limit bounds each wait for a recovery (default 10 s).
	Limit time.Duration
	// Phase, if set, delays the event by a random time in [0, Phase): with Phase the VRRP
	// advert_int, the cut falls anywhere between two advertisements, as a real one would
	// (otherwise the lab's fixed waits can lock it to one phase).
	Phase time.Duration
}

// Observe opens a UDP flow (10 ms), a chat (TCP echo) and a push stream from the LAN, checks
// they work, runs event, waits for opts.Settled, for the flow to be answered again and for the
// TCP connections to deliver, and reports.
func (p *Pair) Observe(ctx context.Context, opts ObserveOptions, event func() error) (Observation, error) {
	if opts.Quiet <= 0 {
		opts.Quiet = time.Second
	}
	if opts.Limit <= 0 {
		opts.Limit = 10 * time.Second
	}
	var ob Observation
	before, ok := p.Master()
	if !ok {
		return ob, fmt.Errorf("netlab: no single master before the event (%s)", p.DescribeVIPs())
	}
	ob.Before, ob.After = before, before
	flow, err := p.StartFlow(FlowOptions{SrcPort: opts.SrcPort, Interval: 10 * time.Millisecond, ReplyTimeout: 500 * time.Millisecond})
	if err != nil {
		return ob, err
	}
	defer flow.Stop()
	chat, err := p.DialChat(ctx, RoleLAN)
	if err != nil {
		return ob, err
	}
	defer chat.Close()
	chatVia, err := chat.Ask(3 * time.Second)
	if err != nil {
		return ob, fmt.Errorf("netlab: chat before the event: %w", err)
	}
	push, err := p.DialPush(ctx, RoleLAN)
	if err != nil {
		return ob, err
	}
	defer push.Close()
	start := time.Now()
	if err := waitReply(ctx, flow, start, 5*time.Second); err != nil {
		return ob, fmt.Errorf("netlab: flow before the event: %w", err)
	}
	if err := push.WaitData(ctx, start, 5*time.Second); err != nil {
		return ob, fmt.Errorf("netlab: push before the event: %w", err)
	}
	// Let conntrackd copy the new connections to the backup (FTFW sends at once; acks follow).
	time.Sleep(300 * time.Millisecond)
	viaBefore := flow.Report().Via

	// Watch for split brain while the event plays out.
	watchCtx, stopWatch := context.WithCancel(ctx)
	type overlap struct {
		longest time.Duration
		atEnd   bool
	}
	split := make(chan overlap, 1)
	go func() {
		var o overlap
		var since time.Time // both have held the VIP since
		for watchCtx.Err() == nil {
			now := time.Now()
			both := p.LANVIPHolders() > 1
			switch {
			case both && since.IsZero():
				since = now
			case !both:
				since = time.Time{}
			}
			if !since.IsZero() {
				o.longest = max(o.longest, now.Sub(since))
			}
			o.atEnd = both
			time.Sleep(20 * time.Millisecond)
		}
		split <- o
	}()

	vip, err := p.watchVIP(watchCtx, before.Other())
	if err != nil {
		stopWatch()
		<-split
		return ob, err
	}
	if opts.Phase > 0 {
		time.Sleep(rand.N(opts.Phase))
	}
	at := time.Now()
	if err := event(); err != nil {
		stopWatch()
		<-split
		return ob, fmt.Errorf("netlab: event: %w", err)
	}
	if opts.Settled != nil {
		if err := opts.Settled(ctx); err != nil {
			ob.Details = append(ob.Details, "not settled: "+err.Error())
		}
	}
	settled := time.Now()
	if err := waitReply(ctx, flow, settled, opts.Limit); err != nil {
		ob.Details = append(ob.Details, "udp: "+err.Error())
	} else {
		ob.UDPSurvived = true
	}
	if via, err := chat.Ask(opts.Limit); err != nil {
		ob.Details = append(ob.Details, "tcp echo: "+err.Error())
	} else if via != chatVia {
		ob.Details = append(ob.Details, fmt.Sprintf("tcp echo: the server now sees %s, was %s", via, chatVia))
	} else {
		ob.TCPSurvived = true
	}
	if err := push.WaitData(ctx, time.Now(), opts.Limit); err != nil {
		ob.Details = append(ob.Details, "push: "+err.Error())
	} else {
		ob.PushSurvived = true
	}
	time.Sleep(opts.Quiet)
	stopWatch()
	o := <-split
	ob.Overlap = o.longest
	ob.SplitBrain = o.atEnd || o.longest > splitBrainAfter
	if ob.SplitBrain {
		ob.Details = append(ob.Details, fmt.Sprintf("split brain: both boxes held the LAN VIP for %s (at the end: %v)", o.longest.Round(time.Millisecond), o.atEnd))
	}
	rep := flow.Stop()
	var end time.Time // of the longest outage
	for _, o := range rep.Outages {
		if o.End.Before(at.Add(-50 * time.Millisecond)) {
			continue // before the event
		}
		if o.Duration() > ob.LANOutage {
			ob.LANOutage, end = o.Duration(), o.End
		}
	}
	select {
	case t := <-vip:
		ob.Takeover = t.Sub(at)
		if !end.IsZero() {
			ob.Recovery = end.Sub(t)
		}
	default:
	}
	ob.UDPSameMapping = ob.UDPSurvived && rep.Via == viaBefore
	if ob.UDPSurvived && !ob.UDPSameMapping {
		ob.Details = append(ob.Details, fmt.Sprintf("udp: the server now sees %s, was %s", rep.Via, viaBefore))
	}
	if m, ok := p.Master(); ok {
		ob.After = m
	}
	ob.VIPMoved = ob.After != ob.Before
	return ob, nil
}

// waitReply is flow.WaitReply bounded by limit.
func waitReply(ctx context.Context, flow *Flow, since time.Time, limit time.Duration) error {
	c, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return flow.WaitReply(c, since)
}

// ConntrackCount counts box b's kernel conntrack entries (IPv4) of connections from the LAN
// whose reply goes to addr (an invalid addr: all of the LAN's).
func (p *Pair) ConntrackCount(b Box, addr netip.Addr) (int, error) {
	h, err := netns.GetFromPath(nsPath(p.NS(b.Role())))
	if err != nil {
		return 0, err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return 0, err
	}
	defer nh.Close()
	flows, err := nh.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range flows {
		src, _ := netip.AddrFromSlice(f.Forward.SrcIP)
		if !LANPrefix4.Contains(src.Unmap()) {
			continue
		}
		if ip, ok := netip.AddrFromSlice(f.Reverse.DstIP); !addr.IsValid() || (ok && ip.Unmap() == addr) {
			n++
		}
	}
	return n, nil
}

// watchVIP reports the first time the LAN VIP is added on box b, until ctx ends.
func (p *Pair) watchVIP(ctx context.Context, b Box) (<-chan time.Time, error) {
	ns, err := netns.GetFromPath(nsPath(p.NS(b.Role())))
	if err != nil {
		return nil, fmt.Errorf("netlab: namespace of %s: %w", b, err)
	}
	updates := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	if err := netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlab: watch the addresses of %s: %w", b, err)
	}
	at := make(chan time.Time, 1)
	go func() {
		defer ns.Close()
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				if a, ok := netip.AddrFromSlice(u.LinkAddress.IP); ok && u.NewAddr && a.Unmap() == PairVIPLAN {
					at <- time.Now()
					return
				}
			}
		}
	}()
	return at, nil
}
