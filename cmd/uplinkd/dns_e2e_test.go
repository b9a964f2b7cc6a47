package main

import (
	"context"
	"encoding/base64"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

const labZone = "lb.example.com"

// dnsConfig publishes www in lb.example.com with a short TTL, so a test sees a resolver move
// within seconds; the shipped default (30 s) is what `uplinklab bench -inbound` measures.
func dnsConfig(extra string) netlab.DaemonConfig {
	c := fastConfig()
	c.Extra = "\n[dns]\nzone = \"" + labZone + "\"\nttl = \"2s\"\n" + extra + "\n[[dns.name]]\nname = \"www\"\n"
	return c
}

func needTool(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s is not installed (apt install bind9-dnsutils unbound)", b)
		}
	}
}

func dig(t *testing.T, lab *netlab.Lab, args ...string) netlab.DigAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := lab.Dig(ctx, netlab.RoleInet, args...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestTheAuthoritativeServerAnswersAsTheRFCsSayThroughBothUplinks asks uplinkd's server from
// the Internet side with BIND's dig, at each uplink's address.
func TestTheAuthoritativeServerAnswersAsTheRFCsSayThroughBothUplinks(t *testing.T) {
	needTool(t, "dig")
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, dnsConfig(""))
	d.waitActive(5*time.Second, "isp1")
	ns1, ns2 := "@"+netlab.GWWAN1Addr4.String(), "@"+netlab.GWWAN2Addr4.String()

	a := dig(t, lab, ns1, "www."+labZone, "A")
	if a.Status != "NOERROR" || !a.Has("aa") || a.Has("ra") || !slices.Equal(a.Data(), []string{netlab.GWWAN1Addr4.String()}) {
		t.Fatalf("www A: %s %v %v, want NOERROR, aa, no ra, isp1's address\n%s", a.Status, a.Flags, a.Data(), a.Output)
	}
	before, _ := lab.Counters(1)
	a = dig(t, lab, ns2, "www."+labZone, "AAAA")
	if a.Status != "NOERROR" || !slices.Equal(a.Data(), []string{netlab.GWWAN1Addr6.String()}) {
		t.Errorf("www AAAA asked through isp2: %s %v\n%s", a.Status, a.Data(), a.Output)
	}
	if after, _ := lab.Counters(1); after.Sub(before).Spoofed != 0 {
		t.Errorf("the answer to a query that came through isp2 left through isp1")
	}
	a = dig(t, lab, "@"+netlab.GWWAN2Addr6.String(), "ns-isp2."+labZone, "AAAA", "+tcp")
	if a.Status != "NOERROR" || !slices.Equal(a.Data(), []string{netlab.GWWAN2Addr6.String()}) {
		t.Errorf("ns-isp2 AAAA over TCP and IPv6: %s %v\n%s", a.Status, a.Data(), a.Output)
	}
	for _, c := range []struct {
		what   string
		args   []string
		status string
		aa     bool
	}{
		{"out of zone", []string{"www.example.org", "A"}, "REFUSED", false},
		{"unknown type: NODATA", []string{"www." + labZone, "MX"}, "NOERROR", true},
		{"no such name", []string{"nope." + labZone, "A"}, "NXDOMAIN", true},
		{"EDNS version 1", []string{"www." + labZone, "A", "+edns=1", "+noednsnegotiation"}, "BADVERS", false},
		{"recursion for others", []string{"example.net", "A", "+rec"}, "REFUSED", false},
	} {
		a := dig(t, lab, append([]string{ns1}, c.args...)...)
		if a.Status != c.status || a.Has("aa") != c.aa || a.Has("ra") || len(a.Answer) != 0 {
			t.Errorf("%s: %s %v %d answers, want %s aa=%v, no ra, no answer\n%s", c.what, a.Status, a.Flags, len(a.Answer), c.status, c.aa, a.Output)
		}
	}
	if a := dig(t, lab, ns1, labZone, "AXFR"); !strings.Contains(a.Output, "Transfer failed") || len(a.Answer) != 0 {
		t.Errorf("AXFR was not refused:\n%s", a.Output)
	}
	a = dig(t, lab, ns1, "WwW.Lb.ExAmPlE.CoM", "A")
	if len(a.Answer) != 1 || a.Answer[0][0] != "WwW.Lb.ExAmPlE.CoM." {
		t.Errorf("0x20: the answer is owned by %v, want the name as asked\n%s", a.Answer, a.Output)
	}
	a = dig(t, lab, ns1, labZone, "NS")
	if len(a.Answer) != 2 || !slices.Contains(a.Data(), "ns-isp1."+labZone+".") || !slices.Contains(a.Data(), "ns-isp2."+labZone+".") {
		t.Errorf("NS: %v", a.Data())
	}
}

// TestARateLimitedClientIsSlippedToTCP floods uplinkd from one address over UDP: beyond the
// rate, answers come truncated or not at all, and TCP still answers.
func TestARateLimitedClientIsSlippedToTCP(t *testing.T) {
	needTool(t, "dig")
	lab := testkit.Lab(t, netlab.Options{})
	c := dnsConfig("rate_limit = 1\n")
	c.DaemonKeys = "metrics_listen = \"127.0.0.1:9847\"\n"
	d := startDaemon(t, lab, c)
	d.waitActive(5*time.Second, "isp1")
	ns1 := "@" + netlab.GWWAN1Addr4.String()
	var tc, silent int
	for range 6 {
		a := dig(t, lab, ns1, "www."+labZone, "A", "+ignore")
		switch {
		case a.Status == "":
			silent++
		case a.Has("tc"):
			tc++
			if len(a.Answer) != 0 {
				t.Errorf("a slipped answer carries records: %v", a.Answer)
			}
		}
	}
	if tc == 0 || silent == 0 {
		t.Errorf("6 queries at once with rate_limit 1: %d truncated, %d unanswered; want both", tc, silent)
	}
	if a := dig(t, lab, ns1, "www."+labZone, "A", "+tcp"); a.Status != "NOERROR" || len(a.Answer) != 1 {
		t.Errorf("over TCP: %s %v\n%s", a.Status, a.Data(), a.Output)
	}
	body, err := netlab.HTTPGetInNS(lab.NS(netlab.RoleGW), "127.0.0.1:9847", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"uplinkd_dns_queries_total 7", `uplinkd_dns_responses_total{result="slipped"} ` + strconv.Itoa(tc),
		`uplinkd_dns_responses_total{result="dropped"} ` + strconv.Itoa(silent)} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the metrics lack %q", want)
		}
	}
}

// TestAResolverFollowsTheLiveUplink is the mission's inbound half: Unbound, delegated to both
// of uplinkd's name servers, answers isp1's address; isp1 dies silently and, within detection
// plus the TTL, customers resolve isp2's; after the heal, isp1's again.
func TestAResolverFollowsTheLiveUplink(t *testing.T) {
	needTool(t, "dig", "unbound")
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, dnsConfig(""))
	d.waitActive(5*time.Second, "isp1")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resolver := netlab.Server4
	p, err := lab.StartUnbound(ctx, netlab.RoleInet, resolver, labZone, []netip.Addr{netlab.GWWAN1Addr4, netlab.GWWAN2Addr4}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(2 * time.Second)
	resolve := func() []string { return dig(t, lab, "@"+resolver.String(), "www."+labZone, "A").Data() }
	var got []string
	defer func() {
		if t.Failed() {
			t.Logf("the resolver's last answer: %v\nunbound: %s", got, p.Output())
		}
	}()
	waitFor := func(want netip.Addr, limit time.Duration) time.Duration {
		t.Helper()
		return waitUntil(t, limit, "the resolver to answer "+want.String(), func() bool {
			got = resolve()
			return slices.Equal(got, []string{want.String()})
		})
	}
	waitFor(netlab.GWWAN1Addr4, 5*time.Second)

	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	// Detection (~0.5 s tuned) + TTL 2 s + the resolver's retry of the dead server.
	took := waitFor(netlab.GWWAN2Addr4, 15*time.Second)
	t.Logf("customers resolve isp2's address %s after the cut", took.Round(time.Millisecond))
	if st := d.status(); st.DNS == nil || len(st.DNS.Names) != 1 || !slices.Contains(st.DNS.Names[0].Addrs, netlab.GWWAN2Addr4.String()) ||
		slices.Contains(st.DNS.Names[0].Addrs, netlab.GWWAN1Addr4.String()) {
		t.Errorf("the status publishes %+v, want www with isp2's address only", st.DNS)
	}
	if err := lab.Heal(1); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp1")
	waitFor(netlab.GWWAN1Addr4, 15*time.Second)
}

// TestUpdatesFollowTheLiveUplinkAndSurviveABadKey: the business's DNS lives on a Knot primary
// on the Internet; uplinkd sends RFC 2136 updates signed with TSIG. A wrong key is refused and
// retried; once the key is right the primary holds isp1's address, and after a silent failure
// of isp1 it holds isp2's, sent through isp2 (isp1 drops everything).
func TestUpdatesFollowTheLiveUplinkAndSurviveABadKey(t *testing.T) {
	needTool(t, "dig", "knotd")
	lab := testkit.Lab(t, netlab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	primary := netlab.Server4
	knot, err := lab.StartKnot(ctx, netlab.RoleInet, primary, labZone, "uplinkd", secret, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer knot.Stop(2 * time.Second)
	keyFile := filepath.Join(t.TempDir(), "tsig.key")
	writeKey := func(secret string, mode os.FileMode) {
		if err := os.WriteFile(keyFile, []byte("key \"uplinkd\" {\n\talgorithm hmac-sha256;\n\tsecret \""+secret+"\";\n};\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(keyFile, mode); err != nil {
			t.Fatal(err)
		}
	}
	writeKey(base64.StdEncoding.EncodeToString([]byte("not the key, not the key, not it")), 0o600)
	c := fastConfig()
	c.Extra = "\n[dns]\nzone = \"" + labZone + "\"\nttl = \"2s\"\nserve = false\n\n[dns.update]\nserver = \"" + primary.String() +
		"\"\nkey_file = \"" + keyFile + "\"\n\n[[dns.name]]\nname = \"www\"\n"
	d := startDaemon(t, lab, c)
	d.waitActive(5*time.Second, "isp1")
	held := func() []string { return dig(t, lab, "@"+primary.String(), "www."+labZone, "A").Data() }
	waitLog := func(what string, limit time.Duration) {
		t.Helper()
		waitUntil(t, limit, "uplinkd to log "+what, func() bool { return strings.Contains(string(d.proc.Output()), what) })
	}
	waitLog("dns update failed", 5*time.Second)
	if out := string(d.proc.Output()); !strings.Contains(out, "NOTAUTH") {
		t.Errorf("the refusal does not say NOTAUTH:\n%s", out)
	}
	if got := held(); len(got) != 0 {
		t.Fatalf("the primary took an update with a wrong key: %v", got)
	}
	writeKey(secret, 0o644) // right, but readable by all: uplinkd refuses it
	waitLog("chmod 600", 10*time.Second)
	// A reload judges the key file as the config is judged: refused, naming file, line and
	// key, and the running configuration stays.
	if err := d.client.Reload(ctx); err == nil || !strings.Contains(err.Error(), d.config+":") ||
		!strings.Contains(err.Error(), "dns.update.key_file: tsig key: "+keyFile+": mode 0644") {
		t.Errorf("reload with a key others can read: %v, want a refusal naming the file, line and key", err)
	}
	writeKey(secret, 0o600)
	var got []string
	defer func() {
		if t.Failed() {
			t.Logf("the primary's last answer: %v\nknot: %s", got, knot.Output())
		}
	}()
	waitFor := func(want netip.Addr, limit time.Duration) time.Duration {
		t.Helper()
		return waitUntil(t, limit, "the primary to hold "+want.String(), func() bool {
			got = held()
			return slices.Equal(got, []string{want.String()})
		})
	}
	waitFor(netlab.GWWAN1Addr4, 40*time.Second) // the retry backs off: 1, 2, 4, 8, 16 s

	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	took := waitFor(netlab.GWWAN2Addr4, 10*time.Second)
	t.Logf("the primary holds isp2's address %s after uplinkd switched (polled every 20 ms)", took.Round(time.Millisecond))
	waitLog("via=isp2", 5*time.Second)
}
