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
