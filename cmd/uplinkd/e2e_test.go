package main

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink"
)

func TestSilentFailureMovesTheLANToISP2AndFailsBack(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	if via := viaTCP(t, lab); via != netlab.GWWAN1Addr4.String() {
		t.Fatalf("before the failure new connections leave via %s, want isp1's %s", via, netlab.GWWAN1Addr4)
	}
	flow, err := lab.StartFlow(netlab.FlowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer flow.Stop()

	cut := time.Now()
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := flow.WaitReply(ctx, cut); err != nil {
		t.Fatalf("the long-lived UDP flow did not recover: %v", err)
	}
	if via := viaTCP(t, lab); via != netlab.GWWAN2Addr4.String() {
		t.Errorf("after the failover new connections leave via %s, want isp2's %s", via, netlab.GWWAN2Addr4)
	}
	st := d.status()
	if st.Uplinks[0].State != uplink.Down || !strings.Contains(st.Uplinks[0].Reason, "rounds without quorum") {
		t.Errorf("isp1 is %s (%s), want down without quorum", st.Uplinks[0].State, st.Uplinks[0].Reason)
	}

	healed := time.Now()
	if err := lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp1")
	if via := viaTCP(t, lab); via != netlab.GWWAN1Addr4.String() {
		t.Errorf("after failback new connections leave via %s, want isp1's %s", via, netlab.GWWAN1Addr4)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := flow.WaitReply(ctx2, healed.Add(time.Second)); err != nil {
		t.Fatalf("the long-lived UDP flow did not survive the failback: %v", err)
	}
	rep := flow.Stop()
	t.Logf("flow: %d sent, %d answered, longest outage %s, switches %v", rep.Sent, rep.Received, rep.Longest(), rep.Switches)
}

func TestCarrierLossFailsOverWithoutWaitingForProbes(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	cfg := fastConfig()
	cfg.Interval, cfg.Timeout, cfg.DownAfter = time.Second, 2*time.Second, 10 // probes alone would take 10 s
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	if err := lab.Break(1, netlab.CarrierLoss); err != nil {
		t.Fatal(err)
	}
	st := d.waitActive(10*time.Second, "isp2")
	if r := st.Uplinks[0].Reason; !strings.Contains(r, "carrier") && !strings.Contains(r, "down") {
		t.Errorf("isp1's reason is %q, want the carrier loss", r)
	}
	if via := viaTCP(t, lab); via != netlab.GWWAN2Addr4.String() {
		t.Errorf("new connections leave via %s, want isp2", via)
	}
	if err := lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	d.waitActive(30*time.Second, "isp1")
}

func TestWhenBothISPsFailTheDaemonKeepsTheDefaultRoute(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	for isp := 1; isp <= 2; isp++ {
		if err := lab.Break(isp, netlab.SilentFailure); err != nil {
			t.Fatal(err)
		}
	}
	d.waitFor("both down", 10*time.Second, func(st api.Status) bool {
		return st.Uplinks[0].State == uplink.Down && st.Uplinks[1].State == uplink.Down
	})
	if st := d.status(); !slices.Equal(st.Active, []string{"isp1"}) {
		t.Errorf("active %v, want the primary tier isp1 kept", st.Active)
	}
	out, err := lab.Exec(context.Background(), netlab.RoleGW, "ip", "route", "show", "table", fmt.Sprint(uplink.DefaultTableBase))
	if err != nil || !strings.Contains(string(out), "default via "+netlab.ISP1Addr4.String()) {
		t.Errorf("the active table lost its default route: %s %v", out, err)
	}
	for isp := 1; isp <= 2; isp++ {
		if err := lab.Heal(isp); err != nil {
			t.Fatal(err)
		}
	}
	d.waitFor("both up", 10*time.Second, func(st api.Status) bool {
		return st.Uplinks[0].State == uplink.Up && st.Uplinks[1].State == uplink.Up
	})
}

func TestOneTargetDroppingICMPDoesNotCauseAFailover(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	if err := lab.DropICMP(netlab.Targets4[2]); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	st := d.waitFor("a full window of rounds", 10*time.Second, func(st api.Status) bool { return st.Uplinks[0].Targets[2].Samples >= 20 })
	if st.Uplinks[0].State != uplink.Up || !slices.Equal(st.Active, []string{"isp1"}) {
		t.Errorf("isp1 %s, active %v; want up and active", st.Uplinks[0].State, st.Active)
	}
	if tr := d.events.Transitions("isp1"); len(tr) != 0 {
		t.Errorf("isp1 changed state: %v", tr)
	}
	if loss := st.Uplinks[0].Targets[2].Loss; loss < 99 {
		t.Errorf("the filtering target shows %.0f%% loss, want 100%%", loss)
	}
}

func TestThirtyPercentLossDegradesWithoutFlapping(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	if err := lab.Break(1, netlab.Loss30); err != nil {
		t.Fatal(err)
	}
	d.waitFor("isp1 degraded", 15*time.Second, func(st api.Status) bool { return st.Uplinks[0].State == uplink.Degraded })
	d.waitActive(10*time.Second, "isp2")
	time.Sleep(5 * time.Second)
	tr := d.events.Transitions("isp1")
	if len(tr) > 2 {
		t.Errorf("isp1 flapped under 30%% loss: %v", tr)
	}
	t.Logf("isp1 transitions under 30%% loss: %v", tr)
}

func TestStaticSNATFlowRecoversAfterFailover(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true, NAT: netlab.NATSNAT})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	flow, err := lab.StartFlow(netlab.FlowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer flow.Stop()
	ctx0, cancel0 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel0()
	if err := flow.WaitReply(ctx0, time.Now()); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := flow.WaitReply(ctx, cut); err != nil {
		t.Fatalf("the SNATed long-lived flow stayed stuck on the dead uplink: %v", err)
	}
	rep := flow.Report()
	if !strings.HasPrefix(rep.Via, netlab.GWWAN2SNAT4.String()) {
		t.Errorf("the flow now comes from %s, want isp2's SNAT address %s", rep.Via, netlab.GWWAN2SNAT4)
	}
}

func TestProbesOfTheInactiveUplinkLeaveThroughIt(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	before, err := lab.Counters(2)
	if err != nil {
		t.Fatal(err)
	}
	// 20 echo requests leave through the inactive isp2 (about 30 a second: 3 targets every
	// 100 ms); waited for, not timed, so a busy machine cannot turn it red.
	var got netlab.Counters
	waitUntil(t, 10*time.Second, "20 echo requests through the inactive isp2", func() bool {
		after, err := lab.Counters(2)
		if err != nil {
			t.Fatal(err)
		}
		got = after.Sub(before)
		return got.UpICMP >= 20
	})
	if got.Spoofed != 0 {
		t.Errorf("%d packets left isp2 with a foreign source address", got.Spoofed)
	}
	if st := d.status(); st.Uplinks[1].State != uplink.Up {
		t.Errorf("isp2 is %s, want up: its probes answer through it", st.Uplinks[1].State)
	}
}

func TestIPv6FollowsTheFailoverLikeIPv4(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	via6 := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		src, err := lab.CheckTCP(ctx, netlab.RoleLAN, netip.AddrPortFrom(netlab.Server6, netlab.TCPPort))
		if err != nil {
			t.Fatalf("no IPv6 connection from the LAN: %v", err)
		}
		ap, err := netip.ParseAddrPort(src)
		if err != nil {
			t.Fatal(err)
		}
		return ap.Addr().String()
	}
	if got := via6(); got != netlab.GWWAN1Addr6.String() {
		t.Fatalf("IPv6 leaves via %s, want isp1's %s", got, netlab.GWWAN1Addr6)
	}
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	if got := via6(); got != netlab.GWWAN2Addr6.String() {
		t.Errorf("after the failover IPv6 leaves via %s, want isp2's %s", got, netlab.GWWAN2Addr6)
	}
}

// IPv6 dies at isp1 while its IPv4 works: only IPv6 moves to isp2.
func TestDeadIPv6AtTheActiveISPMovesOnlyIPv6(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	cfg := fastConfig()
	cfg.DualStack = true
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	if err := lab.Break(1, netlab.IPv6Silent); err != nil {
		t.Fatal(err)
	}
	st := d.waitFor("IPv6 on isp2", 10*time.Second, func(st api.Status) bool { return slices.Equal(st.Active6, []string{"isp2"}) })
	if !slices.Equal(st.Active, []string{"isp1"}) || st.Uplinks[0].State != uplink.Up {
		t.Errorf("IPv4: active %v, isp1 %s; want isp1 kept", st.Active, st.Uplinks[0].State)
	}
	for fam, want := range map[string]string{"-4": "dev " + netlab.IfWAN1, "-6": "dev " + netlab.IfWAN2} {
		out, err := lab.Exec(context.Background(), netlab.RoleGW, "ip", fam, "route", "show", "table", fmt.Sprint(uplink.DefaultTableBase))
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("ip %s active table: %s (%v), want %s", fam, out, err, want)
		}
	}
	// The status shows the routes the kernel holds, each family its own.
	for fam, shown := range map[string]string{"-4": st.Route4, "-6": st.Route6} {
		out, err := lab.Exec(context.Background(), netlab.RoleGW, "ip", fam, "route", "show", "table", fmt.Sprint(uplink.DefaultTableBase))
		if got := kernelRoute(string(out)); err != nil || got != shown {
			t.Errorf("ip %s: the kernel's active route is %q (%v), the status shows %q", fam, got, err, shown)
		}
	}
	if via := viaTCP(t, lab); via != netlab.GWWAN1Addr4.String() {
		t.Errorf("new IPv4 connections leave via %s, want isp1", via)
	}
	if err := lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	d.waitFor("IPv6 back on isp1", 10*time.Second, func(st api.Status) bool { return len(st.Active6) == 0 && slices.Equal(st.Active, []string{"isp1"}) })
}

// kernelRoute is a route as `ip route show` prints it, without the attributes the status
// leaves out (protocol, metric, preference).
func kernelRoute(out string) string {
	out = regexp.MustCompile(` (proto|metric|pref) \S+`).ReplaceAllString(out, "")
	return strings.TrimSpace(out)
}
