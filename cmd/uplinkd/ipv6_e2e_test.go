package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"

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

// ipv6Lab is a lab in which each ISP delegates its own LAN /64, with uplinkd on fastConfig
// naming them and ipv6Extra added to its [ipv6]; it returns once isp1 carries the traffic.
func ipv6Lab(t *testing.T, servers bool, ipv6Extra string) (*netlab.Lab, *labDaemon) {
	t.Helper()
	lab := testkit.Lab(t, netlab.Options{Servers: servers, IPv6Prefixes: true})
	cfg := fastConfig()
	cfg.IPv6Prefixes = true
	cfg.Extra = ipv6Extra
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	return lab, d
}

// waitPrefixes waits until the client holds an address in each prefix, those in deprecated
// deprecated and the others preferred.
func waitPrefixes(t *testing.T, lab *netlab.Lab, limit time.Duration, preferred, deprecated netip.Prefix) time.Duration {
	t.Helper()
	var last []netlab.HostAddr
	defer func() {
		if t.Failed() {
			t.Logf("the client held %+v", last)
		}
	}()
	return waitUntil(t, limit, fmt.Sprintf("the client to hold %s preferred and %s deprecated", preferred, deprecated), func() bool {
		last = clientAddrs(t, lab)
		h1, d1 := netlab.PrefixState(last, preferred)
		h2, d2 := netlab.PrefixState(last, deprecated)
		return h1 && !d1 && h2 && d2
	})
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
	lab, d := ipv6Lab(t, true, "")
	if err := lab.StartChat(); err != nil {
		t.Fatal(err)
	}

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
	st := d.status()
	if v := st.IPv6; v == nil || len(v.Prefixes) != 2 || v.Prefixes[0].Preferred || !v.Prefixes[1].Preferred ||
		len(v.Translations) != 1 || v.Translations[0] != "2001:db8:a1::/64 -> 2001:db8:a2::/64 via wan2" || len(v.LastRA) != 1 {
		t.Errorf("status during the outage: %+v; want isp1's prefix deprecated, isp2's preferred, one translation, the last RA", v)
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

func solicit(t *testing.T, lab *netlab.Lab) netlab.Advert {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, took, err := lab.Solicit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("solicitation answered in %s (rdisc6's start included)", took)
	return a
}

// wantPIO checks one prefix of an advert.
func wantPIO(t *testing.T, a netlab.Advert, p netip.Prefix, preferred, valid int) {
	t.Helper()
	got, ok := a.Prefix(p)
	if !ok || got.Preferred != preferred || got.Valid != valid {
		t.Errorf("advert for %s: %+v (found %v); want preferred %d s, valid %d s\nadvert: %+v", p, got, ok, preferred, valid, a)
	}
}

// TestRouterAdvertisementsFollowTheUplinks asks the gateway with rdisc6 (package ndisc6), as a
// host's kernel would: one PIO per uplink prefix, the backup's and then the dead one's
// deprecated without touching its valid lifetime, the RDNSS from the config, and the router
// kept when every uplink is judged down.
func TestRouterAdvertisementsFollowTheUplinks(t *testing.T) {
	needTool(t, "rdisc6")
	lab, d := ipv6Lab(t, false, "rdnss = [\"2001:db8:a1::53\"]\n")

	a := solicit(t, lab)
	if a.RouterLifetime != 1800 || len(a.Prefixes) != 2 || len(a.RDNSS) != 1 || a.RDNSS[0].String() != "2001:db8:a1::53" {
		t.Errorf("advert %+v: want router lifetime 1800 s, two prefixes, RDNSS 2001:db8:a1::53", a)
	}
	wantPIO(t, a, prefix1, 2700, 7200) // RFC 9096's preferred cap; the 2 h valid floor
	wantPIO(t, a, prefix2, 0, 7200)    // the backup: deprecated before it is needed

	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(5*time.Second, "isp2")
	a = solicit(t, lab)
	wantPIO(t, a, prefix1, 0, 7200) // deprecated, never withdrawn, valid lifetime untouched
	wantPIO(t, a, prefix2, 2700, 7200)

	if err := lab.Break(2, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitFor("both uplinks down", 5*time.Second, func(st api.Status) bool {
		return st.Uplinks[0].State == uplink.Down && st.Uplinks[1].State == uplink.Down
	})
	// Fail static, as the routes: the probes may be what failed.
	if a = solicit(t, lab); a.RouterLifetime != 1800 {
		t.Errorf("with both uplinks judged down the router lifetime is %d s; want 1800 (fail static)", a.RouterLifetime)
	}
}

// TestFollowedPrefixesAndAForeignRouter: a delegation (a /48) is followed on the LAN as a PD
// client renumbers it, the RA carrying the new /64 with the delegation's shorter lifetimes and
// the old one dead;
// and a second router advertising on the LAN (radvd) is warned about.
func TestFollowedPrefixesAndAForeignRouter(t *testing.T) {
	needTool(t, "rdisc6", "radvd")
	lab := testkit.Lab(t, netlab.Options{IPv6Prefixes: true})
	cfg := fastConfig()
	cfg.Extra = `
[ipv6]
interfaces = ["lan0"]
`
	cfg.DaemonKeys = ""
	cfg.IPv6Prefixes = false // the prefixes are written here: isp1's is a delegation to follow
	cfg.UplinkKeys = [2]string{`prefixes = ["2001:db8:a1::/48"]`, `prefixes = ["2001:db8:a2::/64"]`}
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	wantPIO(t, solicit(t, lab), prefix1, 2700, 7200) // the gateway's ::1 on lan0 is forever: config lifetimes

	// The PD client renumbers: a new /64 with the lease's lifetimes, the old one goes.
	renumbered := netip.MustParsePrefix("2001:db8:a1:7::/64")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"ip", "-6", "addr", "add", "2001:db8:a1:7::1/64", "dev", "lan0", "valid_lft", "3000", "preferred_lft", "1500"},
		{"ip", "-6", "addr", "del", "2001:db8:a1::1/64", "dev", "lan0"},
	} {
		if _, err := lab.Exec(ctx, netlab.RoleGW, args...); err != nil {
			t.Fatal(err)
		}
	}
	// The RAs change in the same Set as the desired state the status shows.
	d.waitFor("the renumbered prefix followed", 5*time.Second, func(st api.Status) bool {
		return st.IPv6 != nil && slices.ContainsFunc(st.IPv6.Prefixes, func(p api.PrefixStatus) bool { return p.Prefix == renumbered.String() })
	})
	a := solicit(t, lab)
	if _, has := a.Prefix(renumbered); !has {
		t.Fatalf("advert %+v: want the renumbered prefix %s", a, renumbered)
	}
	// The old prefix is gone from the LAN: advertised with lifetimes 0, so hosts stop using it
	// for new connections at once (RFC 9096 §3.5).
	wantPIO(t, a, prefix1, 0, 0)
	p, _ := a.Prefix(renumbered)
	if p.Preferred > 1500 || p.Preferred < 1400 || p.Valid > 3000 || p.Valid < 2900 {
		t.Errorf("renumbered prefix %+v: want the lease's remaining lifetimes (≤ 1500 s, ≤ 3000 s)", p)
	}
	// The lease counts down and so do the RAs: each carries no more than the lease has left
	// when it is sent (RFC 9096), read from the kernel just before soliciting it.
	lease := func() (pref, valid int) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		addrs, err := lab.Addrs6(ctx, netlab.RoleGW, netlab.IfLAN)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if renumbered.Contains(a.Addr) {
				return a.Preferred, a.Valid
			}
		}
		t.Fatalf("the gateway holds no address in %s: %+v", renumbered, addrs)
		return 0, 0
	}
	waitUntil(t, 15*time.Second, "the lease to count down 3 s", func() bool { pref, _ := lease(); return pref <= 1497 })
	leftPref, leftValid := lease()
	p, _ = solicit(t, lab).Prefix(renumbered)
	if p.Preferred > leftPref || p.Valid > leftValid || p.Preferred < leftPref-60 {
		t.Errorf("renumbered prefix %+v with the lease at %d / %d s: want what the lease has left", p, leftPref, leftValid)
	}
	// A restart (an upgrade) within the two hours still advertises the old prefix dead: a
	// laptop that slept through the first RAs must not keep using it.
	if err := d.d.Stop(); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, lab, cfg)
	a = solicit(t, lab)
	wantPIO(t, a, prefix1, 0, 0)
	if _, has := a.Prefix(renumbered); !has {
		t.Errorf("after the restart: advert %+v lacks the renumbered prefix %s", a, renumbered)
	}

	conf := t.TempDir() + "/radvd.conf"
	if err := os.WriteFile(conf, []byte("interface eth0 {\n\tAdvSendAdvert on;\n\tMinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 4;\n\tprefix 2001:db8:bad::/64 { };\n};\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	radvd, err := lab.Start(context.Background(), netlab.RoleLAN, "radvd", "-n", "-m", "stderr", "-C", conf, "-p", t.TempDir()+"/radvd.pid")
	if err != nil {
		t.Fatal(err)
	}
	defer radvd.Stop(2 * time.Second)
	waitUntil(t, 10*time.Second, "a warning about radvd", func() bool {
		return strings.Contains(string(d.proc.Output()), "another router advertises on this LAN")
	})
}

// TestDrivenLifetimesDeprecateTheGatewaysOwnLANAddress: with advertise = "lifetimes" another
// program sends the RAs (odhcpd copies the lifetimes of the gateway's LAN addresses), and
// uplinkd sets the preferred lifetime of the dead uplink's address to 0, then gives it back.
func TestDrivenLifetimesDeprecateTheGatewaysOwnLANAddress(t *testing.T) {
	lab, d := ipv6Lab(t, false, "advertise = \"lifetimes\"\n")
	gwState := func(p netip.Prefix) (has, deprecated bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		addrs, err := lab.Addrs6(ctx, netlab.RoleGW, netlab.IfLAN)
		if err != nil {
			t.Fatal(err)
		}
		return netlab.PrefixState(addrs, p)
	}
	waitUntil(t, 10*time.Second, "isp2's LAN address deprecated, isp1's preferred", func() bool {
		_, d1 := gwState(prefix1)
		_, d2 := gwState(prefix2)
		return !d1 && d2
	})
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(5*time.Second, "isp2")
	waitUntil(t, 10*time.Second, "isp1's LAN address deprecated, isp2's preferred", func() bool {
		_, d1 := gwState(prefix1)
		_, d2 := gwState(prefix2)
		return d1 && !d2
	})
	if err := lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp1")
	waitUntil(t, 10*time.Second, "isp1's LAN address preferred again", func() bool {
		h1, d1 := gwState(prefix1)
		return h1 && !d1
	})
}
