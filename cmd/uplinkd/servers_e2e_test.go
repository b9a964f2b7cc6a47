package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

// startShopServer starts the shop's web server (netlab.WebServer: /healthz says "ok", or
// "maintenance" while Sick) in role's namespace on at: on the LAN client, the DNAT's target on a
// real site; on the Internet, another site's.
func startShopServer(t *testing.T, lab *netlab.Lab, role string, at netip.AddrPort) *netlab.WebServer {
	t.Helper()
	w, err := lab.StartWebServer(role, "the shop", at)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// TestANamesAnswerFollowsItsServer: www is published while its LAN web server's health page
// says "ok"; the server stopped (connection refused) or saying something else makes uplinkd
// answer the fallback, with its short TTL, as real dig sees it through both ISPs; the server
// back makes it answer the live uplink's address again.
func TestANamesAnswerFollowsItsServer(t *testing.T) {
	needTool(t, "dig")
	lab := testkit.Lab(t, netlab.Options{})
	server := netip.AddrPortFrom(netlab.Client4, 8080)
	shop := startShopServer(t, lab, netlab.RoleLAN, server)
	c := fastConfig()
	c.Extra = fmt.Sprintf(`
[dns]
zone = %q
ttl = "2s"

[[dns.name]]
name = "www"
servers = ["http://%s/healthz"]
expect = "ok"
fallback = ["203.0.113.80"]
`, labZone, server)
	d := startDaemon(t, lab, c)
	d.waitActive(5*time.Second, "isp1")
	answer := func(ns netip.Addr) netlab.DigAnswer { return dig(t, lab, "@"+ns.String(), "www."+labZone, "A") }
	answers := func(want string) func() bool {
		return func() bool {
			a1, a2 := answer(netlab.GWWAN1Addr4), answer(netlab.GWWAN2Addr4)
			return slices.Equal(a1.Data(), []string{want}) && slices.Equal(a2.Data(), []string{want})
		}
	}
	waitUntil(t, 10*time.Second, "www to answer isp1's address", answers(netlab.GWWAN1Addr4.String()))

	shop.Sick.Store(true) // 200, but the page lacks "ok"
	took := waitUntil(t, 10*time.Second, "the fallback once the health page lacks ok", answers("203.0.113.80"))
	t.Logf("a sick server was withdrawn %s after it turned (checks every 500 ms, down after 3)", took.Round(10*time.Millisecond))
	if a := answer(netlab.GWWAN1Addr4); !strings.Contains(a.Output, "10\tIN\tA\t203.0.113.80") {
		t.Errorf("the fallback's TTL is not fallback_ttl (10 s):\n%s", a.Output)
	}
	st := d.status()
	if n := st.DNS.Names[0]; !n.Fallback || len(n.Servers) != 1 || n.Servers[0].State != "down" || !strings.Contains(n.Servers[0].Reason, `lacks "ok"`) {
		t.Errorf("status %+v: want the fallback in force and the server down for its body", n)
	}
	shop.Sick.Store(false)
	waitUntil(t, 10*time.Second, "isp1's address again once the page says ok", answers(netlab.GWWAN1Addr4.String()))

	shop.Stop() // connection refused
	took = waitUntil(t, 10*time.Second, "the fallback once the server is gone", answers("203.0.113.80"))
	t.Logf("a stopped server was withdrawn %s after it stopped", took.Round(10*time.Millisecond))
	if !slices.ContainsFunc(d.events.All(), func(ev api.Event) bool { return ev.Kind == api.KindServer && ev.To == "down" }) {
		t.Errorf("no server event: %v", d.events.All())
	}
	// uplinkd --check --probe runs every server check once too.
	out, err := lab.Exec(context.Background(), netlab.RoleGW, uplinkdBinary(t), "--check", "--probe", "--config", d.config)
	if text := string(out); err == nil || !strings.Contains(text, "checking every published name's servers once") ||
		!strings.Contains(text, "connection refused") || !strings.Contains(text, "it would answer its fallback") {
		t.Errorf("uplinkd --check --probe with the server stopped (exit %v):\n%s", err, text)
	}
	startShopServer(t, lab, netlab.RoleLAN, server)
	waitUntil(t, 10*time.Second, "isp1's address once the server is back", answers(netlab.GWWAN1Addr4.String()))
	out, _ = lab.Exec(context.Background(), netlab.RoleGW, uplinkdBinary(t), "--check", "--probe", "--config", d.config)
	if text := string(out); !strings.Contains(text, "http://"+server.String()+"/healthz  passed in") {
		t.Errorf("uplinkd --check --probe with the server back:\n%s", text)
	}
}

// TestAnotherSiteIsCheckedThroughTheLiveUplinksAndFollowed: the gateway is site paris; site
// lyon's address for www (on the Internet side) is checked with www's check through paris's
// live uplinks, as a customer would reach it. isp1 dying does not make lyon look dead (the
// checks go through isp2); lyon's server stopping takes its address out of the answer; paris's
// server stopping too leaves the fallback. Real dig through both ISPs, and the NS set names
// both sites' name servers.
func TestAnotherSiteIsCheckedThroughTheLiveUplinksAndFollowed(t *testing.T) {
	needTool(t, "dig")
	lab := testkit.Lab(t, netlab.Options{})
	here, there := netip.AddrPortFrom(netlab.Client4, 8080), netip.AddrPortFrom(netlab.Server4, 8080)
	shop := startShopServer(t, lab, netlab.RoleLAN, here)
	lyon := startShopServer(t, lab, netlab.RoleInet, there)
	c := fastConfig()
	c.Extra = fmt.Sprintf(`
[dns]
zone = %q
ttl = "2s"
site = "paris"

[[dns.name]]
name = "www"
servers = ["http://%s/healthz"]
expect = "ok"
policy = "spread"
fallback = ["192.0.2.200"]

[[site]]
name = "paris"
nameservers = [%q, %q]
addresses = [%q, %q]

[[site]]
name = "lyon"
nameservers = [%q]
addresses = [%q]
`, labZone, here, netlab.GWWAN1Addr4, netlab.GWWAN2Addr4, netlab.GWWAN1Addr4, netlab.GWWAN2Addr4, netlab.Server4, netlab.Server4)
	d := startDaemon(t, lab, c)
	d.waitActive(5*time.Second, "isp1")
	var last []string
	answers := func(want ...string) func() bool {
		return func() bool {
			a1, a2 := dig(t, lab, "@"+netlab.GWWAN1Addr4.String(), "www."+labZone, "A"), dig(t, lab, "@"+netlab.GWWAN2Addr4.String(), "www."+labZone, "A")
			last = a2.Data()
			if len(a1.Data()) > 0 { // isp1 may be the dead one
				last = a1.Data()
			}
			return slices.Equal(last, want) && (len(a2.Data()) == 0 || slices.Equal(a2.Data(), want))
		}
	}
	defer func() {
		if t.Failed() {
			t.Logf("the last answer: %v", last)
		}
	}()
	waitUntil(t, 10*time.Second, "www spread over paris (isp1) and lyon", answers(netlab.GWWAN1Addr4.String(), netlab.Server4.String()))
	ns := dig(t, lab, "@"+netlab.GWWAN2Addr4.String(), labZone, "NS").Data()
	slices.Sort(ns)
	if want := []string{"ns1.lyon." + labZone + ".", "ns1.paris." + labZone + ".", "ns2.paris." + labZone + "."}; !slices.Equal(ns, want) {
		t.Errorf("NS %v, want %v", ns, want)
	}

	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	waitUntil(t, 10*time.Second, "www spread over paris (isp2) and lyon", answers(netlab.GWWAN2Addr4.String(), netlab.Server4.String()))
	// Checks of lyon went on through isp2: it was never judged down.
	lyonDown := func(ev api.Event) bool { return ev.Kind == api.KindServer && ev.Site == "lyon" && ev.To == "down" }
	if slices.ContainsFunc(d.events.All(), lyonDown) {
		t.Errorf("isp1's death made lyon look dead: %v", d.events.All())
	}

	lyon.Stop()
	took := waitUntil(t, 10*time.Second, "lyon out of the answer", answers(netlab.GWWAN2Addr4.String()))
	t.Logf("lyon's dead server left the answer %s after it stopped", took.Round(10*time.Millisecond))
	shop.Stop()
	waitUntil(t, 10*time.Second, "the fallback", answers("192.0.2.200"))
	st := d.status()
	if n := st.DNS.Names[0]; !n.Fallback || len(n.Servers) != 2 || n.Servers[1].Site != "lyon" || n.Servers[1].State != "down" {
		t.Errorf("status %+v", n)
	}
	startShopServer(t, lab, netlab.RoleInet, there)
	waitUntil(t, 10*time.Second, "lyon back, alone", answers(netlab.Server4.String()))
}

// TestNearestAnswersTheClientsSite: www under the nearest policy, lyon nearest to the lab's
// Internet (its core links, 192.0.2.128/26, where dig's queries come from), paris to
// 198.51.100.0/24. Real dig from the Internet side gets
// lyon for its own address, paris for an EDNS Client Subnet in paris's network, with the scope
// set, and FORMERR for a malformed subnet.
func TestNearestAnswersTheClientsSite(t *testing.T) {
	needTool(t, "dig")
	lab := testkit.Lab(t, netlab.Options{})
	c := fastConfig()
	c.Extra = fmt.Sprintf(`
[dns]
zone = %q
site = "paris"

[[dns.name]]
name = "www"
policy = "nearest"

[[site]]
name = "paris"
nameservers = [%q]
networks = ["198.51.100.0/24"]

[[site]]
name = "lyon"
nameservers = ["203.0.113.130"]
addresses = ["203.0.113.140"]
networks = ["192.0.2.128/26", "203.0.113.0/24"]
`, labZone, netlab.GWWAN1Addr4)
	d := startDaemon(t, lab, c)
	d.waitActive(5*time.Second, "isp1")
	ns := "@" + netlab.GWWAN1Addr4.String()
	if a := dig(t, lab, ns, "www."+labZone, "A"); !slices.Equal(a.Data(), []string{"203.0.113.140"}) {
		t.Errorf("a resolver in lyon's network: %v, want lyon's address\n%s", a.Data(), a.Output)
	}
	a := dig(t, lab, ns, "www."+labZone, "A", "+subnet=198.51.100.0/24")
	if !slices.Equal(a.Data(), []string{netlab.GWWAN1Addr4.String()}) || !strings.Contains(a.Output, "CLIENT-SUBNET: 198.51.100.0/24/24") {
		t.Errorf("a client subnet in paris's network: %v, want paris's address and scope 24\n%s", a.Data(), a.Output)
	}
	a = dig(t, lab, ns, "www."+labZone, "A", "+subnet=192.0.2.0/24")
	if !slices.Equal(a.Data(), []string{netlab.GWWAN1Addr4.String()}) || !strings.Contains(a.Output, "CLIENT-SUBNET: 192.0.2.0/24/24") {
		t.Errorf("a client subnet in no site's network: %v, want the first site (paris) scoped to the subnet\n%s", a.Data(), a.Output)
	}
	a = dig(t, lab, ns, "www."+labZone, "A", "+ednsopt=8:00011800cb007101") // 203.0.113.1 as a /24
	if a.Status != "FORMERR" {
		t.Errorf("a malformed client subnet: %s, want FORMERR\n%s", a.Status, a.Output)
	}
}
