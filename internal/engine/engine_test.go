package engine

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/internal/servercheck"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
)

var (
	isp1Addr = netip.MustParseAddr("198.51.100.1")
	isp2Addr = netip.MustParseAddr("198.51.100.2")
)

func TestStartupWaitsForTheFirstRoundsThenRoutesThroughThePrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.wantActive("isp1")
		if r.state("isp1") != uplink.Up || r.state("isp2") != uplink.Up {
			t.Errorf("states %s %s, want both up", r.state("isp1"), r.state("isp2"))
		}
		if r.notify.ready != 1 {
			t.Errorf("READY sent %d times, want once", r.notify.ready)
		}
		// The table (and with it the probes' own source address) is in place before the first
		// verdict: the first plan had nothing eligible yet.
		states := r.dp.States()
		if first := states[0]; len(states) < 2 || !first.Provisional || slices.ContainsFunc(first.Uplinks, func(u dataplane.Uplink) bool { return u.Active || u.Live }) {
			t.Errorf("the first state was not the provisional one of the start: %+v", first)
		}
		if err := r.close(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.logs.String(), "routing stays as it is") || r.dp.Cleanups() != 0 {
			t.Errorf("a stop must leave routing in place (fail static); cleanups %d", r.dp.Cleanups())
		}
	})
}

func TestASilentFailureMovesTrafficAndFlushesTheDeadUplinksNAT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.rounds("isp1", false, 3)
		r.wantActive("isp2")
		if r.state("isp1") != uplink.Down {
			t.Fatalf("isp1 is %s, want down", r.state("isp1"))
		}
		if got := r.dp.Flushed(); !slices.Equal(got, []netip.Addr{isp1Addr}) {
			t.Errorf("NAT flushed for %v, want isp1's address only", got)
		}
		if !slices.Contains(r.kinds(), "state isp1 → down") || !slices.Contains(r.kinds(), "active → isp2") {
			t.Errorf("events %v, want isp1's state change and the active change", r.kinds())
		}
		r.close()
	})
}

func TestFailbackKeepsPinnedConnectionsOnTheBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.rounds("isp1", false, 3)
		r.rounds("isp1", true, 3)
		r.wantActive("isp1")
		if got := r.dp.Flushed(); slices.Contains(got, isp2Addr) {
			t.Errorf("failback flushed isp2's NAT (%v): its pinned connections work and must stay", got)
		}
		var isp2 bool
		pins, _ := r.dp.Pins()
		for _, u := range pins.Uplinks {
			isp2 = isp2 || (u.Name == "isp2" && u.Live && !u.Eligible)
		}
		if !isp2 {
			t.Errorf("isp2 must stay live (its connections restored) but take no new ones: %+v", pins.Uplinks)
		}
		r.close()
	})
}

func TestWithoutPinningFailbackMovesTheBackupsConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, strings.Replace(twoISPs, "[daemon]\n", "[daemon]\npin_connections = false\n", 1))
		r.rounds("isp1", false, 3)
		r.rounds("isp1", true, 3)
		r.wantActive("isp1")
		if got := r.dp.Flushed(); !slices.Equal(got, []netip.Addr{isp1Addr, isp2Addr}) {
			t.Errorf("flushes %v, want isp1's at the failover and isp2's at the failback", got)
		}
		if _, on := r.dp.Pins(); on {
			t.Errorf("pinning is off but the state asks for the connection-mark table")
		}
		r.close()
	})
}

func TestAGracefulDrainMovesNewTrafficAndKeepsConnectionsButDrainNowMovesThemToo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		if err := r.e.Drain("isp1", true, false); err != nil {
			t.Fatal(err)
		}
		r.wantActive("isp2")
		if len(r.dp.Flushed()) != 0 {
			t.Errorf("a graceful drain flushed NAT: %v", r.dp.Flushed())
		}
		if err := r.e.Drain("isp1", true, true); err != nil {
			t.Fatal(err)
		}
		if got := r.dp.Flushed(); !slices.Equal(got, []netip.Addr{isp1Addr}) {
			t.Errorf("drain --now flushed %v, want isp1's address", got)
		}
		if err := r.e.Drain("isp1", false, false); err != nil {
			t.Fatal(err)
		}
		r.wantActive("isp1")
		if err := r.e.Drain("nope", true, false); !errors.Is(err, api.ErrUnknownUplink) {
			t.Errorf("draining an unknown uplink: %v", err)
		}
		want := []string{"active → isp1", "drain isp1", "active → isp2", "drain isp1", "undrain isp1", "active → isp1"}
		got := slices.DeleteFunc(r.kinds(), func(s string) bool { return strings.HasPrefix(s, "state") })
		if !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
		r.close()
	})
}

const withServices = twoISPs + `
[[service]]
name = "voip"
proto = "udp"
ports = [5060]
uplinks = ["isp2", "isp1"]
[[service]]
name = "backup"
dst = ["203.0.113.0/24"]
uplinks = ["isp2"]
fallback = false
`

func TestServicesFollowTheirListAndOneWithoutFallbackIsBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, withServices)
		svc := func() (voip, backup string) {
			pins, _ := r.dp.Pins()
			for _, s := range pins.Services {
				v := "balanced"
				switch {
				case s.Block:
					v = "blocked"
				case s.Mark == 0x100:
					v = "isp1"
				case s.Mark == 0x200:
					v = "isp2"
				}
				if s.Name == "voip" {
					voip = v
				} else {
					backup = v
				}
			}
			return
		}
		if v, b := svc(); v != "isp2" || b != "isp2" {
			t.Errorf("with both up: voip %s, backup %s; want both on isp2", v, b)
		}
		r.rounds("isp2", false, 3)
		if v, b := svc(); v != "isp1" || b != "blocked" {
			t.Errorf("with isp2 down: voip %s, backup %s; want voip on isp1 and backup blocked", v, b)
		}
		r.close()
	})
}

func TestAFailedApplyIsRetriedAndLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.dp.FailNext(5)
		r.rounds("isp1", false, 3)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		r.wantActive("isp2")
		if n := strings.Count(r.logs.String(), "applying the desired state failed"); n != 1 {
			t.Errorf("the same failure was logged %d times, want once", n)
		}
		if n := strings.Count(strings.Join(r.kinds(), "\n"), "error"); n != 1 {
			t.Errorf("%d error events, want 1", n)
		}
		if strings.Contains(r.logs.String(), "routing: routing:") {
			t.Errorf("doubled prefix in the log")
		}
		if !strings.Contains(r.logs.String(), "problem resolved") {
			t.Errorf("the recovery was not logged")
		}
		r.close()
	})
}

func TestAMissingInterfaceIsOneLineAndADownStateNotAFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.dp.SetLink("wan1", 1, false)
		r.kernel <- routing.Event{Kind: routing.LinkDown, Interface: "wan1"}
		synctest.Wait()
		for range 100 {
			r.rounds("isp1", false, 1)
		}
		if r.state("isp1") != uplink.Down {
			t.Fatalf("isp1 is %s, want down", r.state("isp1"))
		}
		if reason := r.e.Status().Uplinks[0].Reason; !strings.Contains(reason, "wan1") {
			t.Errorf("reason %q does not name the interface", reason)
		}
		if n := strings.Count(r.logs.String(), "level=ERROR") + strings.Count(r.logs.String(), "level=WARN"); n > 2 {
			t.Errorf("%d warnings and errors for one missing interface over 100 rounds:\n%s", n, r.logs.String())
		}
		r.close()
	})
}

func TestCarrierLossMovesTrafficWithoutWaitingForProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.dp.EditLink("wan1", func(l *routing.LinkInfo) { l.Carrier = false })
		r.kernel <- routing.Event{Kind: routing.CarrierLost, Interface: "wan1"}
		synctest.Wait()
		r.wantActive("isp2")
		if reason := r.e.Status().Uplinks[0].Reason; reason != "carrier lost on wan1" {
			t.Errorf("reason %q", reason)
		}
		r.close()
	})
}

func TestABurstOfDeletionsIsOneRepairAndOurOwnEchoesDoNotWarn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		before := r.dp.Sets()
		for range 50 {
			r.kernel <- routing.Event{Kind: routing.OwnedDeleted, Detail: "rule 1010"}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := r.dp.Sets() - before; n != 1 {
			t.Errorf("50 deletion events made %d applies, want 1", n)
		}
		if strings.Contains(r.logs.String(), "level=WARN") {
			t.Errorf("nothing was missing (our own deletions), yet it warned:\n%s", r.logs.String())
		}
		r.close()
	})
}

func TestAFightOverARuleIsRateLimitedAndNamed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		before := r.dp.Sets()
		for range 600 { // someone deletes a rule every 10 ms for 6 s
			r.dp.Damage() // the kernel lost something: the repair restores it
			r.kernel <- routing.Event{Kind: routing.OwnedDeleted, Detail: "rule 1010"}
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		n := r.dp.Sets() - before
		if n > 20 {
			t.Errorf("600 deletions in 6 s made %d repairs, want at most 20 (rate-limited)", n)
		}
		if !strings.Contains(r.logs.String(), "keeps deleting") {
			t.Errorf("the fight was not named in the log")
		}
		t.Logf("600 deletions in 6 s: %d repairs", n)
		r.close()
	})
}

func TestStatusCountsConnectionsAtABoundedRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		for range 100 {
			if c := r.e.Status().Uplinks[0].Connections; c != 7 {
				t.Fatalf("isp1 has %d connections, want 7", c)
			}
		}
		if w := r.dp.Walks(); w != 1 {
			t.Errorf("100 status requests walked conntrack %d times, want once", w)
		}
		time.Sleep(countsMaxAge)
		r.e.Status()
		synctest.Wait()
		if w := r.dp.Walks(); w != 2 {
			t.Errorf("after %s: %d walks, want 2", countsMaxAge, w)
		}
		r.close()
	})
}

func TestARenumberingIsNoFailureAndMovesTheProbesToTheNewAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		inFlight := time.Now()
		time.Sleep(50 * time.Millisecond)
		r.dp.EditLink("wan1", func(l *routing.LinkInfo) { l.Addrs = []netip.Addr{netip.MustParseAddr("198.51.100.77")} })
		r.kernel <- routing.Event{Kind: routing.AddrChanged, Interface: "wan1"}
		synctest.Wait()
		for range 3 { // probes sent from the old address before the change fail
			r.probes.roundAt("isp1", false, false, inFlight)
		}
		synctest.Wait()
		r.rounds("isp1", true, 3)
		r.wantActive("isp1")
		if r.state("isp1") != uplink.Up || r.e.Status().Uplinks[0].HoldDown != 0 {
			t.Errorf("after a renumbering isp1 is %s with hold-down %s, want up and no damping", r.state("isp1"), r.e.Status().Uplinks[0].HoldDown)
		}
		r.probes.mu.Lock()
		pin := r.probes.pins["isp1"]
		r.probes.mu.Unlock()
		if pin.Source4 != netip.MustParseAddr("198.51.100.77") {
			t.Errorf("probes still leave from %s", pin.Source4)
		}
		r.close()
	})
}

func TestAnUplinkNeverJudgedUsableHereNeverFlushesNATState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A backup box whose probes never worked: isp1 is kept as the primary tier while
		// everything is down, then isp2 comes up and isp1 leaves. Its connections were synced
		// from the peer: deleting them would reset every connection at the takeover.
		r := startRigAnswering(t, twoISPs, false)
		r.rounds("isp1", false, 3)
		r.rounds("isp2", false, 3)
		r.wantActive("isp1") // kept: every uplink down
		r.rounds("isp2", true, 3)
		r.wantActive("isp2")
		if got := r.dp.Flushed(); len(got) != 0 {
			t.Errorf("NAT state flushed for %v by a box that never saw isp1 work", got)
		}
		r.close()
	})
}

func TestAMonitorEndingWithTheStopIsNoFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan error, 1)
		r := startRigWith(t, twoISPs, func(r *rig) { r.kernelDone = done })
		done <- context.Canceled // the monitor saw the shared context end before the engine did
		synctest.Wait()
		if err := r.close(); err != nil {
			t.Errorf("Run returned %v for a monitor that stopped with the daemon", err)
		}
	})
}

// A flapping uplink held down by damping says so when the hold begins and when it ends: in the
// log, with its penalty and length, and as events (which hooks get too).
func TestAHoldDownIsLoggedAndPublishedWhenItBeginsAndEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.rounds("isp1", true, 3)
		for range 3 { // three quick flaps (hold_down 1s: half-life 3s)
			r.rounds("isp1", false, 3)
			r.rounds("isp1", true, 3)
		}
		if !slices.Contains(r.kinds(), "hold isp1 → held") {
			t.Fatalf("events %v, want isp1 held down", r.kinds())
		}
		if logs := r.logs.String(); !strings.Contains(logs, "uplink hold-down") || !strings.Contains(logs, "held=true penalty=") {
			t.Errorf("no log line when the hold began:\n%s", logs)
		}
		r.rounds("isp1", true, 200) // 20 s: the penalty decays
		if !slices.Contains(r.kinds(), "hold isp1 → down") || r.state("isp1") != uplink.Up {
			t.Errorf("events %v, isp1 %s: want the hold ended and isp1 up", r.kinds(), r.state("isp1"))
		}
		if logs := r.logs.String(); !strings.Contains(logs, "held=false") || !strings.Contains(logs, "the penalty decayed") {
			t.Errorf("no log line when the hold ended:\n%s", logs)
		}
		r.close()
	})
}

const checkedName = twoISPs + `
[dns]
zone = "lb.example.com"
[[dns.name]]
name = "www"
servers = ["http://192.0.2.10/healthz", "tcp://192.0.2.11:443"]
fallback = ["203.0.113.80"]
[[dns.name]]
name = "mail"
`

// A checked name carries the uplinks' addresses while one of its servers passes; when both
// are judged dead it answers its fallback, in the same Set as everything else, and comes back
// when a server does. An unchecked name is untouched.
func TestANameFollowsItsServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRigWith(t, checkedName, func(r *rig) {
			r.dp.EditLink("wan1", func(l *routing.LinkInfo) { l.Addrs = append(l.Addrs, isp1Addr) })
		})
		if len(r.checks.targets) != 2 || r.checks.targets[0].Name != "www.lb.example.com." {
			t.Fatalf("checks started for %+v, want www's two servers", r.checks.targets)
		}
		const www, a, b = "www.lb.example.com.", "http://192.0.2.10:80/healthz", "tcp://192.0.2.11:443"
		down := func() bool { return r.dp.Last().NamesDown[www] }
		for range 3 {
			r.checked(www, a, false)
		}
		if down() {
			t.Fatalf("one of two servers dead took the name down: %v", r.dp.Last().NamesDown)
		}
		for range 2 {
			r.checked(www, b, false)
		}
		if down() {
			t.Fatal("down after two failed checks of the second server, want down_after 3")
		}
		r.checked(www, b, false)
		if !down() || !r.dp.Last().Fallback(r.dp.Last().DNS.Names[0]) {
			t.Fatalf("both servers dead: NamesDown %v, want www down with its fallback", r.dp.Last().NamesDown)
		}
		st := r.e.Status()
		if n := st.DNS.Names[0]; !n.Fallback || len(n.Addrs) != 1 || n.Addrs[0] != "203.0.113.80" || n.Servers[1].State != "down" || n.Servers[1].Reason != "connection refused" {
			t.Errorf("status %+v", n)
		}
		if n := st.DNS.Names[1]; n.Down || n.Fallback || len(n.Servers) != 0 {
			t.Errorf("the unchecked name: %+v", n)
		}
		if !slices.Contains(r.kinds(), "server → down") || !strings.Contains(r.logs.String(), "server check") {
			t.Errorf("events %v: want the servers' verdicts", r.kinds())
		}
		r.checked(www, b, true) // up_after 3: one pass is not enough
		if !down() {
			t.Fatal("up after one passed check, want up_after 3")
		}
		r.checked(www, b, true)
		r.checked(www, b, true)
		if down() {
			t.Errorf("a server back for up_after checks: still down")
		}
		r.close()
	})
}

const twoSites = twoISPs + `
[dns]
zone = "lb.example.com"
site = "paris"
[[dns.name]]
name = "www"
servers = ["http://192.0.2.10/healthz"]
[[site]]
name = "paris"
nameservers = ["198.51.100.2"]
addresses = ["198.51.100.2"]
[[site]]
name = "lyon"
nameservers = ["203.0.113.2"]
addresses = ["203.0.113.20"]
`

// The other site's address is checked through this site's live uplinks (the active one first)
// with www's check; judged dead it leaves www's answer, and this site's servers dying then
// leaves nothing but the unverified answer; lyon back, it answers alone.
func TestAnotherSitesAddressIsCheckedThroughTheLiveUplinksAndFollowed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRigWith(t, twoSites, func(r *rig) {
			r.dp.EditLink("wan1", func(l *routing.LinkInfo) { l.Addrs = append(l.Addrs, isp1Addr) })
		})
		want := servercheck.Target{Name: "www.lb.example.com.", Site: "lyon", Server: uplink.Server{Addr: netip.MustParseAddr("203.0.113.20"),
			Method: uplink.Method{Name: uplink.MethodHTTP, Port: 80, Path: "/healthz"}}}
		if len(r.checks.targets) != 2 || r.checks.targets[1] != want {
			t.Fatalf("targets %+v, want www's server here and lyon's address", r.checks.targets)
		}
		if pins := r.checks.pins(); len(pins) != 2 || pins[0].Mark != 0x100 || pins[0].Source4 != isp1Addr {
			t.Errorf("pins %+v: want isp1's (active) first, with its address", pins)
		}
		const www, lyon = "www.lb.example.com.", "http://203.0.113.20/healthz"
		answer := func() dataplane.Answer { s := r.dp.Last(); return s.Answer(s.DNS.Names[0]) }
		r.siteChecked(www, "lyon", lyon, true)
		if a := answer(); !slices.Equal(a.Sites, []string{"paris"}) {
			t.Fatalf("failover with paris healthy: %+v", a)
		}
		for range 3 {
			r.checked(www, "http://192.0.2.10/healthz", false)
		}
		if a := answer(); !slices.Equal(a.Sites, []string{"lyon"}) || a.Addrs[0].String() != "203.0.113.20" {
			t.Fatalf("paris's server dead: %+v, want lyon", a)
		}
		for range 3 {
			r.siteChecked(www, "lyon", lyon, false)
		}
		if a := answer(); !a.Unverified {
			t.Errorf("both dead, no fallback: %+v, want every listed address, unverified", a)
		}
		st := r.e.Status()
		if s := st.DNS.Names[0].Servers; len(s) != 2 || s[1].Site != "lyon" || s[1].State != "down" {
			t.Errorf("status servers %+v", s)
		}
		for range 3 {
			r.siteChecked(www, "lyon", lyon, true)
		}
		if a := answer(); !slices.Equal(a.Sites, []string{"lyon"}) {
			t.Errorf("lyon back: %+v", a)
		}
		r.close()
	})
}

// A site going dark leaves the answer in one change: once one of its addresses is judged down,
// its others whose last check failed go with it, not one check round later each.
func TestADarkSiteLeavesTheAnswerInOneChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := strings.Replace(twoSites, `addresses = ["203.0.113.20"]`, `addresses = ["203.0.113.20", "203.0.113.21"]`, 1)
		cfg = strings.Replace(cfg, `servers = ["http://192.0.2.10/healthz"]`, `servers = ["http://192.0.2.10/healthz"]`+"\npolicy = \"spread\"", 1)
		r := startRig(t, cfg)
		const www, a, b = "www.lb.example.com.", "http://203.0.113.20/healthz", "http://203.0.113.21/healthz"
		answer := func() []string {
			s := r.dp.Last()
			var out []string
			for _, x := range s.Answer(s.DNS.Names[0]).Addrs {
				out = append(out, x.String())
			}
			return out
		}
		r.siteChecked(www, "lyon", b, false) // b's first failure comes a round early
		for range 3 {
			r.siteChecked(www, "lyon", a, false)
		}
		if got := answer(); slices.Contains(got, "203.0.113.21") || slices.Contains(got, "203.0.113.20") {
			t.Errorf("answer %v: lyon's other failing address stayed after the first was judged down", got)
		}
		r.siteChecked(www, "lyon", b, true) // it answers again: back at once (never judged down)
		if got := answer(); !slices.Contains(got, "203.0.113.21") {
			t.Errorf("answer %v: want lyon's passing address back", got)
		}
		r.close()
	})
}
