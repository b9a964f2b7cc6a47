package netlab

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPairScripts(t *testing.T) {
	a, b := newBoxPaths("/run/x/gw-a"), newBoxPaths("/run/x/gw-b")
	ka := pairKeepalivedConf(a, true)
	if !strings.Contains(ka, "/run/x/gw-a/vrrp-priority") || !strings.Contains(ka, `"/run/x/gw-a/notify.sh primary"`) {
		t.Errorf("keepalived.conf paths not substituted:\n%s", ka)
	}
	if strings.Contains(pairKeepalivedConf(a, false), "notify_") {
		t.Error("notify scripts kept without conntrackd")
	}
	cb := pairConntrackdConf(b, BoxB)
	if !strings.Contains(cb, "IPv4_address 192.0.2.138\n") || !strings.Contains(cb, "IPv4_Destination_Address 192.0.2.137\n") {
		t.Errorf("gw-b's sync addresses not swapped:\n%s", cb)
	}
	if !strings.Contains(cb, "/run/x/gw-b/conntrackd.ctl") || !strings.Contains(cb, "LogFile /run/x/gw-b/conntrackd.log") {
		t.Errorf("conntrackd paths:\n%s", cb)
	}
	n := pairNotify(a)
	if strings.Contains(n, "systemctl") && !strings.Contains(n, `RESTART_CONNTRACKD=""`) {
		t.Errorf("the lab's notify script may restart the machine's conntrackd:\n%s", n)
	}
	if all := pairNft(PairNATAll); !strings.Contains(all, `oifname "wan1" snat ip to 198.51.100.10`) || strings.Contains(all, `iifname "lan0" oifname "wan1" ip saddr`) {
		t.Errorf("NAT-all variant:\n%s", all)
	}
	if !strings.Contains(pairLinkScript(BoxA, func(r string) string { return "p-" + r }), "link add sync") {
		t.Error("no sync link from gw-a")
	}
}

// TestPairBasics: the pair comes up with gw-a as master and the LAN reaches the internet
// through the VIPs.
func TestPairBasics(t *testing.T) {
	p := PairForTest(t, PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if m, ok := p.Master(); !ok || m != BoxA {
		t.Fatalf("master: %v %v (%s)", m, ok, p.describeVIPs())
	}
	seen, err := p.CheckTCP(ctx, RoleLAN, netip.AddrPortFrom(Server4, TCPPort))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(seen, PairVIPWAN[0].String()+":") {
		t.Errorf("server saw %s, want the isp1 VIP", seen)
	}
}

func logObservation(t *testing.T, name string, ob Observation) {
	t.Helper()
	t.Logf("%s: master %s → %s, LAN outage %v, udp %v (same mapping %v), tcp %v, push %v, split brain %v; %v",
		name, ob.Before, ob.After, ob.LANOutage.Round(time.Millisecond), ob.UDPSurvived, ob.UDPSameMapping,
		ob.TCPSurvived, ob.PushSurvived, ob.SplitBrain, ob.Details)
}

// TestPairBoxLost: the master loses power; the backup takes the VIPs, and the connections
// conntrackd copied survive: UDP (same NAT mapping), TCP echo and a server-pushed stream.
func TestPairBoxLost(t *testing.T) {
	p := PairForTest(t, PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, ObserveOptions{SrcPort: 42001,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, BoxB, 5*time.Second) },
	}, func() error { return p.PowerCut(BoxA) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "box lost", ob)
	if !ob.VIPMoved || ob.After != BoxB {
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
	p := PairForTest(t, PairOptions{NoConntrackd: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, ObserveOptions{SrcPort: 42002, Limit: 3 * time.Second,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, BoxB, 5*time.Second) },
	}, func() error { return p.PowerCut(BoxA) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "box lost without conntrackd", ob)
	if ob.After != BoxB {
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
	p := PairForTest(t, PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, ObserveOptions{SrcPort: 42003, Quiet: 2 * time.Second}, func() error { return p.SetSync(false) })
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
	p := PairForTest(t, PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.PowerCut(BoxA); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitMaster(ctx, BoxB, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ob, err := p.Observe(ctx, ObserveOptions{SrcPort: 42004, Quiet: 3 * time.Second}, func() error { return p.StartBox(ctx, BoxA) })
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
	ob, err = p.Observe(ctx, ObserveOptions{SrcPort: 42005,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, BoxA, 5*time.Second) },
	}, func() error { return p.PowerCut(BoxB) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "then gw-b lost", ob)
	if ob.After != BoxA || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSameMapping {
		t.Errorf("gw-a did not take over cleanly: %v", ob.Details)
	}
}

// TestPairStandby: the master's track file gets the standby value (what uplinkctl standby will
// do through internal/ha): the peer takes over, connections survive, and the standby box stays
// a hot backup (BACKUP, not FAULT): when the new master dies it takes over again.
func TestPairStandby(t *testing.T) {
	p := PairForTest(t, PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, ObserveOptions{SrcPort: 42006,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, BoxB, 5*time.Second) },
	}, func() error { return p.Standby(BoxA, true) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "standby", ob)
	if ob.After != BoxB || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSameMapping {
		t.Errorf("standby handover: %v", ob.Details)
	}
	if err := p.PowerCut(BoxB); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitMaster(ctx, BoxA, 5*time.Second); err != nil {
		t.Errorf("the box in standby did not take over when its peer died: %v", err)
	}
}

// TestPairMasterLANPortDown: the master's LAN port dies; its lan instance goes FAULT, the sync
// group follows, and gw-b takes every VIP with the connections.
func TestPairMasterLANPortDown(t *testing.T) {
	p := PairForTest(t, PairOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, ObserveOptions{SrcPort: 42007,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, BoxB, 5*time.Second) },
	}, func() error { return p.SetLink(BoxA, IfLAN, false) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "master LAN port down", ob)
	if ob.After != BoxB || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSameMapping {
		t.Errorf("takeover: %v", ob.Details)
	}
}
