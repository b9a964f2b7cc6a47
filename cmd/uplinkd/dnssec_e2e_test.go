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

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// TestSignedAnswersValidate: the zone is signed with a key whose DS a real Unbound holds as its
// trust anchor. Through it, customers get validated answers (AD) for www before and after a
// failover, over UDP and TCP, and for a missing name and a missing type; delv agrees. The same
// answers through an Unbound that trusts another key are SERVFAIL, and so are an impostor's
// (a server that is not uplinkd, unsigned) through one that trusts the right key: the
// validation is real. A key
// rollover runs end to end, a resolver validating throughout.
func TestSignedAnswersValidate(t *testing.T) {
	needTool(t, "dig", "unbound", "delv")
	lab := testkit.Lab(t, netlab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "dnssec.key")
	key, err := config.GenerateDNSSECKey(keyFile, labZone)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, lab, dnsConfig(fmt.Sprintf("dnssec = %q\n", keyFile)))
	d.waitActive(5*time.Second, "isp1")
	ns := []netip.Addr{netlab.GWWAN1Addr4, netlab.GWWAN2Addr4}
	ds := key.DS()
	ds.Hdr.Name = dns.Fqdn(labZone)
	ub, err := lab.StartUnboundValidating(ctx, netlab.RoleInet, netlab.Server4, labZone, ns, t.TempDir(), ds.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ub.Stop(2 * time.Second)
	resolve := func(args ...string) netlab.DigAnswer {
		return dig(t, lab, append([]string{"@" + netlab.Server4.String(), "+dnssec"}, args...)...)
	}
	validated := func(a netlab.DigAnswer, what string) {
		t.Helper()
		if a.Status != "NOERROR" || !a.Has("ad") {
			t.Errorf("%s: %s %v, want NOERROR with AD (validated)\n%s\n%s", what, a.Status, a.Flags, a.Output, ub.Output())
		}
	}
	a := resolve("www."+labZone, "A")
	validated(a, "www A")
	if !slices.Contains(a.Data(), netlab.GWWAN1Addr4.String()) {
		t.Errorf("www A: %v", a.Data())
	}
	validated(resolve("www."+labZone, "A", "+tcp"), "www A over TCP")
	a6 := resolve("www."+labZone, "AAAA")
	validated(a6, "www AAAA")
	if !slices.Contains(a6.Data(), netlab.GWWAN1Addr6.String()) {
		t.Errorf("www AAAA: %v", a6.Data())
	}
	validated(resolve("nope."+labZone, "A"), "a missing name (compact denial)")
	validated(resolve("www."+labZone, "MX"), "a missing type")

	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	d.waitActive(10*time.Second, "isp2")
	waitUntil(t, 20*time.Second, "the resolver to answer isp2's address, validated", func() bool {
		a := resolve("www."+labZone, "A")
		return a.Has("ad") && slices.Contains(a.Data(), netlab.GWWAN2Addr4.String())
	})

	// delv, BIND's validating lookup, trusting the DS, asking uplinkd directly.
	anchors := filepath.Join(dir, "anchors")
	os.WriteFile(anchors, []byte(fmt.Sprintf("trust-anchors { %s static-ds %d %d %d \"%s\"; };\n", dns.Fqdn(labZone), ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)), 0o644)
	out, err := lab.Exec(ctx, netlab.RoleInet, "delv", "@"+netlab.GWWAN2Addr4.String(), "-a", anchors, "+root="+labZone, "www."+labZone, "A")
	if text := string(out); err != nil || !strings.Contains(text, "; fully validated") {
		t.Errorf("delv: %v\n%s", err, text)
	}

	// A key rollover, the resolver validating throughout: the next key is published and signs
	// the DNSKEY set (reload); a resolver holding the next key's DS (the parent's DS swapped)
	// validates too; then the next key signs alone (reload) and that resolver still validates.
	nextFile := filepath.Join(dir, "next.key")
	next, err := config.GenerateDNSSECKey(nextFile, labZone)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(d.config)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), from) {
			t.Fatalf("the config lacks %q", from)
		}
		if err := os.WriteFile(d.config, []byte(strings.Replace(string(b), from, to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.client.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	line := fmt.Sprintf("dnssec = %q\n", keyFile)
	rewrite(line, line+fmt.Sprintf("dnssec_next = %q\n", nextFile))
	nextDS := next.DS()
	nextDS.Hdr.Name = dns.Fqdn(labZone)
	swapped, err := lab.StartUnboundValidating(ctx, netlab.RoleInet, netlab.Targets4[1], labZone, ns, t.TempDir(), nextDS.String())
	if err != nil {
		t.Fatal(err)
	}
	defer swapped.Stop(2 * time.Second)
	resolveAt := func(at netip.Addr) netlab.DigAnswer {
		a, _ := lab.Dig(ctx, netlab.RoleInet, "@"+at.String(), "+dnssec", "www."+labZone, "A")
		return a
	}
	waitUntil(t, 20*time.Second, "both resolvers (the old DS and the new) to validate during the rollover", func() bool {
		return resolveAt(netlab.Server4).Has("ad") && resolveAt(netlab.Targets4[1]).Has("ad")
	})
	rewrite(line+fmt.Sprintf("dnssec_next = %q\n", nextFile), fmt.Sprintf("dnssec = %q\n", nextFile))
	waitUntil(t, 10*time.Second, "uplinkd to publish the next key alone", func() bool {
		a := dig(t, lab, "@"+netlab.GWWAN2Addr4.String(), labZone, "DNSKEY")
		return len(a.Answer) == 1 && strings.Contains(a.Output, next.DNSKEY.PublicKey[:16])
	})
	// A name never asked before: its denial is signed by the next key alone now.
	if a, _ := lab.Dig(ctx, netlab.RoleInet, "@"+netlab.Targets4[1].String(), "+dnssec", "fresh."+labZone, "A"); a.Status != "NOERROR" || !a.Has("ad") {
		t.Errorf("after the rollover: %s %v, want a validated denial\n%s", a.Status, a.Flags, a.Output)
	}

	// An Unbound that trusts another key: every answer is bogus, SERVFAIL.
	other, err := config.GenerateDNSSECKey(filepath.Join(dir, "other.key"), labZone)
	if err != nil {
		t.Fatal(err)
	}
	bad := other.DS()
	bad.Hdr.Name = dns.Fqdn(labZone)
	forged, err := lab.StartUnboundValidating(ctx, netlab.RoleInet, netlab.Targets4[0], labZone, ns, t.TempDir(), bad.String())
	if err != nil {
		t.Fatal(err)
	}
	defer forged.Stop(2 * time.Second)
	// Unbound tries every server before it calls the answer bogus; then SERVFAIL at once.
	var last netlab.DigAnswer
	testkit.WaitUntil(t, 30*time.Second, "SERVFAIL from the resolver that trusts another key", func() bool {
		last, _ = lab.Dig(ctx, netlab.RoleInet, "@"+netlab.Targets4[0].String(), "+dnssec", "www."+labZone, "A")
		if len(last.Data()) > 0 {
			t.Fatalf("a resolver that trusts another key answered %v", last.Data())
		}
		return last.Status == "SERVFAIL"
	})
	forged.Stop(2 * time.Second)

	// An impostor: a Knot that is not uplinkd serves the zone unsigned, and a resolver holding
	// the right DS is pointed at it (an on-path attacker's server): SERVFAIL, never its answers.
	knotDir := t.TempDir()
	impostor, err := lab.StartKnot(ctx, netlab.RoleInet, netlab.Targets4[2], labZone, "impostor", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", knotDir)
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Stop(2 * time.Second)
	fooled, err := lab.StartUnboundValidating(ctx, netlab.RoleInet, netlab.Targets4[0], labZone, []netip.Addr{netlab.Targets4[2]}, t.TempDir(), ds.String())
	if err != nil {
		t.Fatal(err)
	}
	defer fooled.Stop(2 * time.Second)
	testkit.WaitUntil(t, 30*time.Second, "SERVFAIL from the resolver pointed at an impostor", func() bool {
		last, _ = lab.Dig(ctx, netlab.RoleInet, "@"+netlab.Targets4[0].String(), "+dnssec", "ns."+labZone, "A")
		if len(last.Data()) > 0 {
			t.Fatalf("the impostor's answer got through: %v", last.Data())
		}
		return last.Status == "SERVFAIL"
	})
}
