package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

var (
	prefix1 = netlab.LANPrefixISP1
	prefix2 = netlab.LANPrefixISP2
	server6 = netip.AddrPortFrom(netlab.Server6, netlab.TCPPort)
)

func clientAddrs(t *testing.T, lab *netlab.Lab) []netlab.HostAddr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	a, err := lab.ClientAddrs6(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// waitPrefixes waits until the client holds an address in each prefix, those in deprecated
// deprecated and the others preferred.
func waitPrefixes(t *testing.T, lab *netlab.Lab, limit time.Duration, preferred, deprecated netip.Prefix) time.Duration {
	t.Helper()
	var last []netlab.HostAddr
	took := waitUntilOr(limit, func() bool {
		last = clientAddrs(t, lab)
		h1, d1 := netlab.PrefixState(last, preferred)
		h2, d2 := netlab.PrefixState(last, deprecated)
		return h1 && !d1 && h2 && d2
	})
	if took < 0 {
		t.Fatalf("after %s the client holds %+v; want %s preferred and %s deprecated", limit, last, preferred, deprecated)
	}
	return took
}

func waitUntilOr(limit time.Duration, ok func() bool) time.Duration {
	start := time.Now()
	for time.Since(start) < limit {
		if ok() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1
}

// connect6 opens a new IPv6 connection from the client (from src when valid) and returns its
// own source address and the one the server saw.
func connect6(t *testing.T, lab *netlab.Lab, src netip.Addr) (local, seen netip.Addr) {
	t.Helper()
	var lastErr error
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		l, s, err := lab.CheckTCPFrom(ctx, netlab.RoleLAN, src, server6)
		cancel()
		if err == nil {
			ap, perr := netip.ParseAddrPort(s)
			if perr != nil {
				t.Fatalf("server saw %q", s)
			}
			return l.Addr(), ap.Addr()
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return
}

func sameIID(a, b netip.Addr) bool {
	x, y := a.As16(), b.As16()
	return [8]byte(x[8:]) == [8]byte(y[8:])
}

// TestIPv6ClientsMoveToTheLivePrefixAndBack: each ISP delegates its own /64 (no NAT66, BCP 38
// at both ISPs); the client configures itself by SLAAC from uplinkd's RAs. When isp1 dies its
// prefix is deprecated, new connections take isp2's prefix, and a socket bound to the old
// address is translated (NPTv6); after the heal everything is back on isp1's prefix and a
// connection opened on isp2's prefix meanwhile survives.
func TestIPv6ClientsMoveToTheLivePrefixAndBack(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true, IPv6Prefixes: true})
	if err := lab.StartChat(); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig()
	cfg.IPv6Prefixes = true
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")

	// The backup's prefix is advertised deprecated from the start: hosts hold an address in it
	// before they need it.
	waitPrefixes(t, lab, 10*time.Second, prefix1, prefix2)
	local, seen := connect6(t, lab, netip.Addr{})
	if !prefix1.Contains(local) || seen != local {
		t.Fatalf("a new connection left from %s and arrived from %s; want isp1's prefix, untranslated", local, seen)
	}
	old := local

	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(5*time.Second, "isp2")
	// A socket bound to the old address still gets through: translated into isp2's prefix with
	// its interface identifier.
	_, seen = connect6(t, lab, old)
	if !prefix2.Contains(seen) || !sameIID(seen, old) {
		t.Errorf("a connection bound to %s arrived from %s; want isp2's prefix with the same interface identifier", old, seen)
	}
	took := waitPrefixes(t, lab, 5*time.Second, prefix2, prefix1)
	t.Logf("isp1's prefix deprecated on the client %s after isp2 took over", took)
	local, seen = connect6(t, lab, netip.Addr{})
	if !prefix2.Contains(local) || seen != local {
		t.Errorf("after the deprecation a new connection left from %s and arrived from %s; want isp2's prefix, untranslated", local, seen)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	chat, err := lab.DialChatTo(ctx, netlab.RoleLAN, netlab.Server6)
	if err != nil {
		t.Fatal(err)
	}
	defer chat.Close()
	before, err := chat.Ask(2 * time.Second)
	if err != nil || !strings.Contains(before, "2001:db8:a2:") {
		t.Fatalf("a long-lived connection during the outage: %q %v; want it on isp2's prefix", before, err)
	}

	if err := lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp1")
	waitPrefixes(t, lab, 5*time.Second, prefix1, prefix2)
	local, _ = connect6(t, lab, netip.Addr{})
	if !prefix1.Contains(local) {
		t.Errorf("after the heal a new connection left from %s; want isp1's prefix", local)
	}
	after, err := chat.Ask(2 * time.Second)
	if err != nil || after != before {
		t.Errorf("the connection opened on isp2's prefix after the heal: %q %v; want it alive as %q", after, err, before)
	}
}
