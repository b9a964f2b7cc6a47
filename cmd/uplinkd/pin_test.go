package main

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink"
)

// chatVia asks on a long-lived connection and returns the uplink address the server saw.
func chatVia(t *testing.T, c *netlab.Chat) string {
	t.Helper()
	src, err := c.Ask(5 * time.Second)
	if err != nil {
		t.Fatalf("the long-lived TCP connection broke: %v", err)
	}
	host, _, _ := strings.Cut(src, ":")
	return host
}

func chatLab(t *testing.T) *netlab.Lab {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	if err := lab.StartChat(); err != nil {
		t.Fatal(err)
	}
	return lab
}

func TestAConnectionOpenedOnTheBackupSurvivesFailback(t *testing.T) {
	lab := chatLab(t)
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	chat, err := lab.DialChat(context.Background(), netlab.RoleLAN)
	if err != nil {
		t.Fatal(err)
	}
	if via := chatVia(t, chat); via != netlab.GWWAN2Addr4.String() {
		t.Fatalf("opened via %s, want isp2", via)
	}
	if err := lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp1")
	if via := viaTCP(t, lab); via != netlab.GWWAN1Addr4.String() {
		t.Errorf("new connections after failback leave via %s, want isp1", via)
	}
	for range 5 {
		if via := chatVia(t, chat); via != netlab.GWWAN2Addr4.String() {
			t.Fatalf("the connection moved to %s after failback; it should stay on isp2", via)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Counts are taken at most every 2 s, whatever the number of readers: wait for a fresh one.
	d.waitFor("isp2 to count the chat", 5*time.Second, func(st api.Status) bool { return st.Uplinks[1].Connections >= 1 })
}

func TestAConnectionOnAHealthyUplinkSurvivesAReloadAndTheOtherUplinksFailure(t *testing.T) {
	lab := chatLab(t)
	cfg := fastConfig()
	cfg.SameTier = true
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1", "isp2")
	// Open connections until one lands on isp2 (1:1 balancing: a handful of tries).
	var chat *netlab.Chat
	for range 40 {
		c, err := lab.DialChat(context.Background(), netlab.RoleLAN)
		if err != nil {
			t.Fatal(err)
		}
		if chatVia(t, c) == netlab.GWWAN2Addr4.String() {
			chat = c
			break
		}
		c.Close()
	}
	if chat == nil {
		t.Fatal("40 connections in a row took isp1: balancing does not work")
	}
	if err := d.client.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if via := chatVia(t, chat); via != netlab.GWWAN2Addr4.String() {
		t.Fatalf("after a reload the connection left via %s", via)
	}
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	if via := chatVia(t, chat); via != netlab.GWWAN2Addr4.String() {
		t.Fatalf("after isp1 failed the connection left via %s", via)
	}
}

func TestWeightsThreeToOneSplitNewConnectionsAndNoneChangesUplink(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	cfg := fastConfig()
	cfg.SameTier = true
	cfg.Weights = [2]int{3, 1}
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1", "isp2")
	by, changed, err := lab.SpreadUDP(netlab.RoleLAN, 1000)
	if err != nil {
		t.Fatal(err)
	}
	isp1, isp2 := by[netlab.GWWAN1Addr4.String()], by[netlab.GWWAN2Addr4.String()]
	t.Logf("1000 connections: isp1 %d, isp2 %d, changed uplink %d", isp1, isp2, changed)
	if isp1+isp2 != 1000 {
		t.Errorf("only %d of 1000 connections left through an uplink: %v", isp1+isp2, by)
	}
	if math.Abs(float64(isp1)-750) > 50 {
		t.Errorf("isp1 took %d of 1000, want 750 ± 50", isp1)
	}
	if changed != 0 {
		t.Errorf("%d connections changed uplink mid-life", changed)
	}
}

func TestAServiceRuleSendsItsTrafficWhereItSaysAndFailsOverAlongItsList(t *testing.T) {
	lab := chatLab(t)
	cfg := fastConfig()
	cfg.Extra = `
[[service]]
name = "chat-via-isp2"
proto = "tcp"
ports = [9]
uplinks = ["isp2", "isp1"]
`
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	chat, err := lab.DialChat(context.Background(), netlab.RoleLAN)
	if err != nil {
		t.Fatal(err)
	}
	if via := chatVia(t, chat); via != netlab.GWWAN2Addr4.String() {
		t.Errorf("the service's traffic left via %s, want isp2 (first in its list)", via)
	}
	if via := viaTCP(t, lab); via != netlab.GWWAN1Addr4.String() {
		t.Errorf("other traffic left via %s, want the active isp1", via)
	}
	if err := lab.Break(2, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitFor("isp2 down", 10*time.Second, func(st api.Status) bool { return st.Uplinks[1].State == uplink.Down })
	chat2, err := lab.DialChat(context.Background(), netlab.RoleLAN)
	if err != nil {
		t.Fatal(err)
	}
	if via := chatVia(t, chat2); via != netlab.GWWAN1Addr4.String() {
		t.Errorf("with isp2 down the service's new connections left via %s, want isp1 (next in its list)", via)
	}
}

func TestAServiceWithoutFallbackIsRefusedWhenItsUplinksAreDown(t *testing.T) {
	lab := chatLab(t)
	cfg := fastConfig()
	cfg.Extra = `
[[service]]
name = "only-isp2"
proto = "tcp"
ports = [9]
uplinks = ["isp2"]
fallback = false
`
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	if err := lab.Break(2, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitFor("isp2 down", 10*time.Second, func(st api.Status) bool { return st.Uplinks[1].State == uplink.Down })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if c, err := lab.DialChat(ctx, netlab.RoleLAN); err == nil {
		via := chatVia(t, c)
		t.Errorf("a service that may only use isp2 got through via %s while isp2 is down", via)
	}
}

func TestGracefulDrainLetsAConnectionFinishWhileNewOnesGoElsewhere(t *testing.T) {
	lab := chatLab(t)
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	chat, err := lab.DialChat(context.Background(), netlab.RoleLAN)
	if err != nil {
		t.Fatal(err)
	}
	if via := chatVia(t, chat); via != netlab.GWWAN1Addr4.String() {
		t.Fatalf("opened via %s, want isp1", via)
	}
	if err := d.client.Drain(context.Background(), "isp1", false); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	if via := viaTCP(t, lab); via != netlab.GWWAN2Addr4.String() {
		t.Errorf("new connections during the drain leave via %s, want isp2", via)
	}
	for range 3 {
		if via := chatVia(t, chat); via != netlab.GWWAN1Addr4.String() {
			t.Fatalf("the draining connection moved to %s; it should finish on isp1", via)
		}
	}
	// drain --now moves it: the NAT state on isp1 is deleted, and the connection, whose
	// address the server knows, cannot survive the move (TCP ends; that is the point of --now).
	if err := d.client.Drain(context.Background(), "isp1", true); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the connection to break after drain --now", func() bool {
		_, err := chat.Ask(300 * time.Millisecond)
		return err != nil
	})
}
