package netlab_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestPairBasics(t *testing.T) {
	p := testkit.Pair(t, netlab.PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if m, ok := p.Master(); !ok || m != netlab.BoxA {
		t.Fatalf("master: %v %v (%s)", m, ok, p.DescribeVIPs())
	}
	seen, err := p.CheckTCP(ctx, netlab.RoleLAN, netip.AddrPortFrom(netlab.Server4, netlab.TCPPort))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(seen, netlab.PairVIPWAN[0].String()+":") {
		t.Errorf("server saw %s, want the isp1 VIP", seen)
	}
}

func logObservation(t *testing.T, name string, ob netlab.Observation) {
	t.Helper()
	t.Logf("%s: master %s → %s, LAN outage %v, udp %v (same mapping %v), tcp %v, push %v, split brain %v (longest overlap %v); %v",
		name, ob.Before, ob.After, ob.LANOutage.Round(time.Millisecond), ob.UDPSurvived, ob.UDPSameMapping,
		ob.TCPSurvived, ob.PushSurvived, ob.SplitBrain, ob.Overlap.Round(time.Millisecond), ob.Details)
}

// TestPairBoxLost: the master loses power; the backup takes the VIPs, and the connections
// conntrackd copied survive: UDP (same NAT mapping), TCP echo and a server-pushed stream.
func TestPairBoxLost(t *testing.T) {
	p := testkit.Pair(t, netlab.PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42001,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, netlab.BoxB, 5*time.Second) },
	}, func() error { return p.PowerCut(netlab.BoxA) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "box lost", ob)
	if !ob.VIPMoved || ob.After != netlab.BoxB {
		t.Errorf("VIPs did not move to gw-b")
	}
	if !ob.UDPSurvived || !ob.UDPSameMapping || !ob.TCPSurvived || !ob.PushSurvived {
		t.Errorf("connections lost: %v", ob.Details)
	}
	if ob.LANOutage > 1500*time.Millisecond {
		t.Errorf("LAN outage %v", ob.LANOutage)
	}
}

// TestPairNoConntrackd is the control: without conntrackd the backup's stateful filter drops
// the server's packets of a connection it never saw, so the pushed stream (client silent) dies
// at a takeover.
func TestPairNoConntrackd(t *testing.T) {
	p := testkit.Pair(t, netlab.PairOptions{NoConntrackd: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42002, Limit: 3 * time.Second,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, netlab.BoxB, 5*time.Second) },
	}, func() error { return p.PowerCut(netlab.BoxA) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "box lost without conntrackd", ob)
	if ob.After != netlab.BoxB {
		t.Errorf("VIPs did not move to gw-b")
	}
	// UDP and the TCP echo come back without conntrackd: the client's next packet creates a
	// new entry on gw-b with the same mapping. Only the pushed stream needs the synced state.
	if ob.PushSurvived {
		t.Errorf("the pushed stream survived without conntrackd: the test does not test what it claims")
	}
}

// TestPairSyncLinkDown: the sync link dies. VRRP runs on the LAN and ISP segments, so each box
// keeps its role and exactly one holds the LAN VIP; the LAN notices nothing.
func TestPairSyncLinkDown(t *testing.T) {
	p := testkit.Pair(t, netlab.PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42003, Quiet: 2 * time.Second}, func() error { return p.SetSync(false) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "sync link down", ob)
	if ob.VIPMoved || ob.SplitBrain || p.LANVIPHolders() != 1 {
		t.Errorf("roles changed: moved %v, split brain %v, LAN VIP holders %d", ob.VIPMoved, ob.SplitBrain, p.LANVIPHolders())
	}
	if ob.LANOutage > 0 || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSameMapping {
		t.Errorf("the LAN noticed: outage %v, %v", ob.LANOutage, ob.Details)
	}
}

// TestPairBoxReturns: gw-a loses power, gw-b takes over, gw-a comes back. Policy (see
// packaging/examples/keepalived.conf): equal priorities, so the returning box stays backup —
// the VIPs do not bounce back and the LAN sees no second outage.
func TestPairBoxReturns(t *testing.T) {
	p := testkit.Pair(t, netlab.PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.PowerCut(netlab.BoxA); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitMaster(ctx, netlab.BoxB, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42004, Quiet: 3 * time.Second}, func() error { return p.StartBox(ctx, netlab.BoxA) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "box returns", ob)
	if ob.VIPMoved || ob.SplitBrain {
		t.Errorf("VIPs bounced: moved %v, split brain %v", ob.VIPMoved, ob.SplitBrain)
	}
	if ob.LANOutage > 0 || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSameMapping {
		t.Errorf("second outage: %v, %v", ob.LANOutage, ob.Details)
	}
	// And the returned box is a real backup again: it has the connections (conntrackd -n resync
	// or the live updates) and takes over when gw-b now dies.
	ob, err = p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42005,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, netlab.BoxA, 5*time.Second) },
	}, func() error { return p.PowerCut(netlab.BoxB) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "then gw-b lost", ob)
	if ob.After != netlab.BoxA || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSameMapping {
		t.Errorf("gw-a did not take over cleanly: %v", ob.Details)
	}
}

// TestPairStandby: the master's track file gets the standby value (what uplinkctl standby will
// do through internal/ha): the peer takes over, connections survive, and the standby box stays
// a hot backup (BACKUP, not FAULT): when the new master dies it takes over again.
func TestPairStandby(t *testing.T) {
	p := testkit.Pair(t, netlab.PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42006,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, netlab.BoxB, 5*time.Second) },
	}, func() error { return p.Standby(netlab.BoxA, true) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "standby", ob)
	if ob.After != netlab.BoxB || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSameMapping {
		t.Errorf("standby handover: %v", ob.Details)
	}
	if err := p.PowerCut(netlab.BoxB); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitMaster(ctx, netlab.BoxA, 5*time.Second); err != nil {
		t.Errorf("the box in standby did not take over when its peer died: %v", err)
	}
}

// TestPairMasterLANPortDown: the master's LAN port dies; its lan instance goes FAULT, the sync
// group follows, and gw-b takes every VIP with the connections.
func TestPairMasterLANPortDown(t *testing.T) {
	p := testkit.Pair(t, netlab.PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42007,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, netlab.BoxB, 5*time.Second) },
	}, func() error { return p.SetLink(netlab.BoxA, netlab.IfLAN, false) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "master LAN port down", ob)
	if ob.After != netlab.BoxB || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSameMapping {
		t.Errorf("takeover: %v", ob.Details)
	}
}
