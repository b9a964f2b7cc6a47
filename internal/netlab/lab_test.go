package netlab_test

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

// The lab's own tests share one lab (building one takes a moment) and run in order.
func TestLab(t *testing.T) {
	l := testkit.Lab(t, netlab.Options{Servers: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	web4 := netip.AddrPortFrom(netlab.Server4, netlab.TCPPort)
	web6 := netip.AddrPortFrom(netlab.Server6, netlab.TCPPort)

	viaISP := func(t *testing.T, dst netip.AddrPort, wantPrefix string) {
		t.Helper()
		seen, err := l.CheckTCP(ctx, netlab.RoleLAN, dst)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(seen, wantPrefix) {
			t.Fatalf("server saw the client as %s, want %s…", seen, wantPrefix)
		}
	}
	unreachable := func(t *testing.T, dst netip.AddrPort) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if seen, err := l.CheckTCP(short, netlab.RoleLAN, dst); err == nil {
			t.Fatalf("new connection to %s worked (server saw %s), want it to fail", dst, seen)
		}
	}
	setDefault := func(t *testing.T, isp int) {
		t.Helper()
		u := netlab.Uplinks[isp-1]
		for _, via := range []netip.Addr{u.ISP4, u.ISP6} {
			if _, err := l.Exec(ctx, netlab.RoleGW, "ip", "route", "replace", "default", "via", via.String(), "dev", u.GWIf); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("the client reaches the server through isp1", func(t *testing.T) {
		viaISP(t, web4, netlab.GWWAN1Addr4.String()+":")
		viaISP(t, web6, "["+netlab.GWWAN1Addr6.String()+"]:")
	})

	t.Run("isp1 drops a packet whose source belongs to isp2", func(t *testing.T) {
		before, err := l.Counters(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Ping(ctx, netlab.RoleGW, netlab.Targets4[0], "-I", netlab.GWWAN2Addr4.String()); err == nil {
			t.Fatal("a ping from isp2's address out through isp1 was answered")
		}
		if err := l.Ping(ctx, netlab.RoleGW, netlab.Targets6[0], "-I", netlab.GWWAN2Addr6.String()); err == nil {
			t.Fatal("an IPv6 ping from isp2's address out through isp1 was answered")
		}
		after, err := l.Counters(1)
		if err != nil {
			t.Fatal(err)
		}
		if d := after.Sub(before); d.Spoofed != 2 {
			t.Fatalf("isp1 counted %d spoofed packets, want 2", d.Spoofed)
		}
	})

	t.Run("a silent failure of isp1 is a real outage until the gateway routes through isp2", func(t *testing.T) {
		if err := l.Break(1, netlab.SilentFailure); err != nil {
			t.Fatal(err)
		}
		unreachable(t, web4)
		if err := l.Ping(ctx, netlab.RoleGW, netlab.ISP1Addr4); err != nil {
			t.Fatalf("isp1's router should still answer on the wire: %v", err)
		}
		setDefault(t, 2)
		viaISP(t, web4, netlab.GWWAN2Addr4.String()+":")
		viaISP(t, web6, "["+netlab.GWWAN2Addr6.String()+"]:")
		setDefault(t, 1)
		unreachable(t, web4)
		if err := l.Heal(1); err != nil {
			t.Fatal(err)
		}
		viaISP(t, web4, netlab.GWWAN1Addr4.String()+":")
	})

	t.Run("carrier loss takes the gateway's wan1 down until healed", func(t *testing.T) {
		if err := l.Break(1, netlab.CarrierLoss); err != nil {
			t.Fatal(err)
		}
		out, err := l.Exec(ctx, netlab.RoleGW, "ip", "link", "show", netlab.IfWAN1)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "NO-CARRIER") {
			t.Fatalf("wan1 should have lost carrier: %s", out)
		}
		if err := l.Heal(1); err != nil {
			t.Fatal(err)
		}
		viaISP(t, web4, netlab.GWWAN1Addr4.String()+":")
	})

	t.Run("a target that drops pings fails while the others answer", func(t *testing.T) {
		if err := l.DropICMP(netlab.Targets4[1], netlab.Targets6[1]); err != nil {
			t.Fatal(err)
		}
		for i, dst := range []netip.Addr{netlab.Targets4[0], netlab.Targets4[1], netlab.Targets6[0], netlab.Targets6[1]} {
			err := l.Ping(ctx, netlab.RoleLAN, dst)
			if drops := i%2 == 1; drops != (err != nil) {
				t.Errorf("ping %s: %v (want it to fail: %v)", dst, err, drops)
			}
		}
		if err := l.DropICMP(); err != nil {
			t.Fatal(err)
		}
		if err := l.Ping(ctx, netlab.RoleLAN, netlab.Targets4[1]); err != nil {
			t.Fatalf("after clearing the drop list: %v", err)
		}
	})

	t.Run("a UDP flow records the outage of a silent failure and its recovery", func(t *testing.T) {
		f, err := l.StartFlow(netlab.FlowOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Stop()
		wait := func(since time.Time) {
			t.Helper()
			w, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := f.WaitReply(w, since); err != nil {
				t.Fatal(err)
			}
		}
		wait(time.Now())
		if err := l.Break(1, netlab.SilentFailure); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // let a few datagrams be lost
		if err := l.Heal(1); err != nil {
			t.Fatal(err)
		}
		wait(time.Now())
		r := f.Stop()
		if len(r.Outages) != 1 || r.Outages[0].Lost == 0 || r.Outages[0].Ongoing {
			t.Fatalf("want one finished outage, got %+v", r.Outages)
		}
		if r.Via != netlab.GWWAN1Addr4.String()+":40000" {
			t.Errorf("the server saw the flow from %s, want %s:40000 (masquerade keeps the port)", r.Via, netlab.GWWAN1Addr4)
		}
		t.Logf("sent %d, received %d, outage %v (%d lost)", r.Sent, r.Received, r.Longest(), r.Outages[0].Lost)
	})

	t.Run("30 % loss on isp1 loses some datagrams but not all", func(t *testing.T) {
		if err := l.Break(1, netlab.Loss30); err != nil {
			t.Fatal(err)
		}
		f, err := l.StartFlow(netlab.FlowOptions{SrcPort: 40001, Interval: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		r := f.Stop()
		if err := l.Heal(1); err != nil {
			t.Fatal(err)
		}
		if r.Received == 0 || r.Received == r.Sent {
			t.Fatalf("received %d of %d datagrams, want some but not all", r.Received, r.Sent)
		}
		t.Logf("received %d of %d datagrams (%.0f %% loss)", r.Received, r.Sent, 100*float64(r.Sent-r.Received)/float64(r.Sent))
	})
}

func TestSNATModeTranslatesToTheFixedAddresses(t *testing.T) {
	l := testkit.Lab(t, netlab.Options{NAT: netlab.NATSNAT, Servers: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen, err := l.CheckTCP(ctx, netlab.RoleLAN, netip.AddrPortFrom(netlab.Server4, netlab.TCPPort))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(seen, netlab.GWWAN1SNAT4.String()+":") {
		t.Fatalf("server saw %s, want %s:…", seen, netlab.GWWAN1SNAT4)
	}
}

func TestCloseRemovesEveryNamespace(t *testing.T) {
	testkit.NeedRoot(t)
	l, err := netlab.New(netlab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), l.Prefix()+"-") {
		t.Fatalf("namespaces of %s left behind:\n%s", l.Prefix(), out)
	}
}
