package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DigAnswer is what `dig` printed for one query: the status, the header flags, and the
// answer section's records as owner and data.
type DigAnswer struct {
	Status string   // NOERROR, REFUSED, BADVERS…; "" when no answer came
	Flags  []string // qr aa rd tc…
	Answer [][2]string
	Output string
}

// Has says whether the header carries flag.
func (a DigAnswer) Has(flag string) bool {
	for _, f := range a.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// Data is the data of every answer record, in order.
func (a DigAnswer) Data() []string {
	var out []string
	for _, rr := range a.Answer {
		out = append(out, rr[1])
	}
	return out
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digFlags  = regexp.MustCompile(`;; flags:([a-z ]*);`)
)

// Dig runs BIND's dig (bind9-dnsutils) in role's namespace: one try, a 1 s wait, plus args
// ("@198.51.100.2", "www.lb.example.com", "A", "+tcp"…). A query that gets no answer is not
// an error: its Status is "".
func (l *Lab) Dig(ctx context.Context, role string, args ...string) (DigAnswer, error) {
	cmd, err := l.Command(ctx, role, append([]string{"dig", "+tries=1", "+time=1", "+nocookie"}, args...)...)
	if err != nil {
		return DigAnswer{}, err
	}
	out, err := cmd.CombinedOutput()
	a := DigAnswer{Output: string(out)}
	if m := digStatus.FindStringSubmatch(a.Output); m != nil {
		a.Status = m[1]
	} else if err != nil && !strings.Contains(a.Output, "timed out") && !strings.Contains(a.Output, "no servers could be reached") {
		return a, fmt.Errorf("netlab: dig %v: %w: %s", args, err, out)
	}
	if m := digFlags.FindStringSubmatch(a.Output); m != nil {
		a.Flags = strings.Fields(m[1])
	}
	in := false
	for _, line := range strings.Split(a.Output, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			in = true
		case in && (line == "" || strings.HasPrefix(line, ";")):
			in = false
		case in:
			if f := strings.Fields(line); len(f) >= 5 {
				a.Answer = append(a.Answer, [2]string{f[0], strings.Join(f[4:], " ")})
			}
		}
	}
	return a, nil
}

// StartUnbound starts Unbound in role's namespace as a resolver on listen:53 that knows the
// zone only through a stub to servers (uplinkd's name servers): what a customer's resolver
// does once the registrar delegates the zone. It honours the TTLs it gets; no DNSSEC.
func (l *Lab) StartUnbound(ctx context.Context, role string, listen netip.Addr, zone string, servers []netip.Addr, dir string) (*Proc, error) {
	return l.StartUnboundValidating(ctx, role, listen, zone, servers, dir, "")
}

// StartUnboundValidating is StartUnbound validating the zone with DNSSEC against trustAnchor,
// a DS record's text ("" validates nothing, as StartUnbound).
func (l *Lab) StartUnboundValidating(ctx context.Context, role string, listen netip.Addr, zone string, servers []netip.Addr, dir, trustAnchor string) (*Proc, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n\tinterface: %s\n\tport: 53\n\tdo-daemonize: no\n\tchroot: \"\"\n\tusername: \"\"\n", listen)
	fmt.Fprintf(&b, "\tdirectory: %q\n\tpidfile: \"\"\n\tuse-syslog: no\n\tlogfile: \"\"\n\tverbosity: 1\n", dir)
	b.WriteString("\taccess-control: 0.0.0.0/0 allow\n\taccess-control: ::/0 allow\n")
	if trustAnchor != "" {
		fmt.Fprintf(&b, "\tmodule-config: \"validator iterator\"\n\ttrust-anchor: \"%s\"\n\tval-log-level: 2\n", strings.Join(strings.Fields(trustAnchor), " "))
	} else {
		b.WriteString("\tmodule-config: \"iterator\"\n")
	}
	b.WriteString("\tqname-minimisation: no\n\tdo-ip6: no\n\tinfra-host-ttl: 60\n")
	fmt.Fprintf(&b, "stub-zone:\n\tname: %q\n", zone)
	for _, s := range servers {
		fmt.Fprintf(&b, "\tstub-addr: %s\n", s)
	}
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	// Ready when it answers (anything, even SERVFAIL) on its port.
	return l.startDNS(ctx, role, listen, []string{"unbound", "-d", "-c", conf}, []string{"version.server", "CH", "TXT"}, "")
}

// StartKnot starts Knot DNS in role's namespace as the primary of zone on listen:53, accepting
// RFC 2136 updates signed with the TSIG key keyName/secret (hmac-sha256): the DNS a business
// hosts elsewhere. The zone starts with only its SOA and NS. dir holds its files.
func (l *Lab) StartKnot(ctx context.Context, role string, listen netip.Addr, zone, keyName, secret, dir string) (*Proc, error) {
	zone = strings.TrimSuffix(zone, ".")
	zf := fmt.Sprintf("$ORIGIN %s.\n$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A %s\n", zone, listen)
	if err := os.WriteFile(filepath.Join(dir, zone+".zone"), []byte(zf), 0o644); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`server:
    rundir: %q
    listen: %s@53
log:
  - target: stderr
    any: info
database:
    storage: %q
key:
  - id: %s
    algorithm: hmac-sha256
    secret: %s
acl:
  - id: update
    key: %s
    action: update
zone:
  - domain: %s
    storage: %q
    file: "%%s.zone"
    acl: update
    zonefile-sync: -1
    journal-content: none
`, dir, listen, dir, keyName, secret, keyName, zone, dir)
	path := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return l.startDNS(ctx, role, listen, []string{"knotd", "-c", path}, []string{zone, "SOA"}, "NOERROR")
}

// startDNS starts a DNS server (argv) in role's namespace and waits up to 10 s until the query
// ask to listen gets an answer with status want ("": any).
func (l *Lab) startDNS(ctx context.Context, role string, listen netip.Addr, argv, ask []string, want string) (*Proc, error) {
	p, err := l.Start(ctx, role, argv...)
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-p.Done():
			return nil, fmt.Errorf("netlab: %s exited: %v: %s", argv[0], p.Err(), p.Output())
		default:
		}
		if a, err := l.Dig(ctx, role, append([]string{"@" + listen.String()}, ask...)...); err == nil && a.Status != "" && (want == "" || a.Status == want) {
			return p, nil
		}
	}
	p.Stop(time.Second)
	return nil, fmt.Errorf("netlab: %s did not answer within 10s: %s", argv[0], p.Output())
}
