package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

// TestTwoSites runs two sites, each with its own uplinkd, web server and name servers, and
// customers resolving through a real Unbound: paris serves www (failover), and when paris loses
// power (its gateway and server gone at once) lyon's answers exclude it and customers reach
// lyon; paris's web server stopping alone (gateway alive) moves www to lyon in both sites'
// answers; in a partition each site answers itself, steadily; paris's uplinks silent: lyon;
// both sites' servers down: the fallback.
func TestTwoSites(t *testing.T) {
	needTool(t, "dig", "unbound")
	lab := testkit.Lab(t, netlab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sites, err := lab.StartSites(ctx, netlab.SitesOptions{Binary: uplinkdBinary(t), Probe: fastConfig(), TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("paris's uplinkd:\n%s\nlyon's uplinkd:\n%s", sites.A.Proc().Output(), sites.B.Proc().Output())
		}
	}()
	at := func(site string) func(string) bool { return func(s string) bool { return s == site } }
	if _, ok := sites.WaitVisit(ctx, 10*time.Second, at(netlab.SiteA)); !ok {
		t.Fatal("customers do not reach paris first")
	}
	// answers says whether site's name servers answer only addresses of the site want (the
	// other site publishes every address of paris's that passes its checks; paris itself its
	// active uplink's), or exactly want's when want is an address.
	answers := func(site string, want string) func() bool {
		return func() bool {
			got := sites.Answers(ctx, site)
			if a, err := netip.ParseAddr(want); err == nil {
				return slices.Equal(got, []string{a.String()})
			}
			for _, g := range got {
				if !slices.ContainsFunc(netlab.SiteAddrs[want], func(a netip.Addr) bool { return a.String() == g }) {
					return false
				}
			}
			return len(got) > 0
		}
	}
	paris, lyon := netlab.SiteA, netlab.SiteB
	waitUntil(t, 10*time.Second, "both sites to answer paris", func() bool { return answers(netlab.SiteA, paris)() && answers(netlab.SiteB, paris)() })

	// uplinkd --check --probe checks lyon's address too, through paris's uplinks.
	out, _ := lab.Exec(ctx, netlab.RoleGW, uplinkdBinary(t), "--check", "--probe", "--config", sites.A.ConfigPath())
	if text := string(out); !strings.Contains(text, "lyon  http://"+netlab.SiteBAddr4.String()) || !strings.Contains(text, "via mark 0x100") {
		t.Errorf("uplinkd --check --probe at paris does not check lyon through its uplinks:\n%s", text)
	}

	// paris's web server stops; its gateway lives: both sites answer lyon.
	sites.WebA.Stop()
	took := waitUntil(t, 10*time.Second, "both sites to answer lyon", func() bool { return answers(netlab.SiteA, lyon)() && answers(netlab.SiteB, lyon)() })
	t.Logf("a dead server behind a live gateway left both sites' answers %s after it stopped", took.Round(10*time.Millisecond))
	if _, ok := sites.WaitVisit(ctx, 10*time.Second, at(netlab.SiteB)); !ok {
		t.Fatal("customers never reached lyon")
	}
	if _, err := lab.StartWebServer(netlab.RoleLAN, netlab.SiteA, netip.AddrPortFrom(netlab.Client4, netlab.WebPort)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "both sites to answer paris again", func() bool { return answers(netlab.SiteA, paris)() && answers(netlab.SiteB, paris)() })

	// A partition: the sites cannot see each other, customers reach both. Each answers what it
	// verified itself: paris itself, lyon itself once its checks of paris fail; one change each.
	if err := lab.Partition(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "lyon to answer itself in the partition", answers(netlab.SiteB, lyon))
	changes := map[string]int{}
	lastSeen := map[string]string{}
	for range 15 { // 3 s more of the partition, every 200 ms
		for _, site := range []string{paris, lyon} {
			got := fmt.Sprint(sites.Answers(ctx, site))
			if lastSeen[site] != "" && got != lastSeen[site] {
				changes[site]++
			}
			lastSeen[site] = got
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !answers(netlab.SiteA, paris)() || !answers(netlab.SiteB, lyon)() || changes[paris]+changes[lyon] != 0 {
		t.Errorf("in the partition: paris %v, lyon %v, changes %v: want each site to answer itself, steadily", sites.Answers(ctx, paris), sites.Answers(ctx, lyon), changes)
	}
	if err := lab.Unpartition(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "both sites to answer paris after the partition", func() bool { return answers(netlab.SiteA, paris)() && answers(netlab.SiteB, paris)() })

	// paris's isp1 goes silent: paris moves to isp2 (its own answer, in the same Set as the
	// route), and lyon's checks of paris's isp1 address fail: lyon drops that address only.
	both := []string{netlab.GWWAN1Addr4.String(), netlab.GWWAN2Addr4.String()}
	waitUntil(t, 10*time.Second, "lyon to answer both of paris's addresses", func() bool { return slices.Equal(sites.Answers(ctx, lyon), both) })
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	isp2Only := []string{netlab.GWWAN2Addr4.String()}
	took = waitUntil(t, 10*time.Second, "both sites to answer paris's isp2 only", func() bool {
		return slices.Equal(sites.Answers(ctx, paris), isp2Only) && slices.Equal(sites.Answers(ctx, lyon), isp2Only)
	})
	t.Logf("paris's isp1 silent: both sites answered its isp2 only %s after the cut", took.Round(10*time.Millisecond))
	if err := lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "both sites to answer paris once isp1 heals", func() bool { return answers(netlab.SiteA, paris)() && answers(netlab.SiteB, paris)() })

	// paris's uplinks both go silent (its gateway lives): lyon leaves it.
	for isp := 1; isp <= 2; isp++ {
		if err := lab.Break(isp, netlab.SilentFailure); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, "lyon to answer itself when paris's uplinks are silent", answers(netlab.SiteB, lyon))
	for isp := 1; isp <= 2; isp++ {
		if err := lab.Heal(isp); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 15*time.Second, "both sites to answer paris once its uplinks heal", func() bool { return answers(netlab.SiteA, paris)() && answers(netlab.SiteB, paris)() })

	// paris loses power: its gateway (uplinkd and DNS) and its server are gone at once.
	cut := time.Now()
	if err := sites.A.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := lab.PowerCut(netlab.RoleGW); err != nil {
		t.Fatal(err)
	}
	withdrawn := waitUntil(t, 10*time.Second, "lyon to answer lyon", answers(netlab.SiteB, lyon))
	if _, ok := sites.WaitVisit(ctx, 30*time.Second, at(netlab.SiteB)); !ok {
		t.Fatal("customers never reached lyon after paris lost power")
	}
	t.Logf("paris lost power: lyon's answers excluded it %s after the cut; customers were back (through Unbound, TTL 2 s) %.2f s after it",
		withdrawn.Round(10*time.Millisecond), time.Since(cut).Seconds())

	// lyon's server dies too: nothing can serve www, the fallback.
	sites.WebB.Stop()
	waitUntil(t, 10*time.Second, "lyon to answer the fallback", answers(netlab.SiteB, "203.0.113.80"))
}
