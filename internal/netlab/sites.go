package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
)

// Two sites for the several-sites tests, bench and demo (StartSites): site paris is the lab's
// gateway with its two ISPs, its web server on the LAN client published by DNAT on port
// WebPort; site lyon is AddSite's gateway, one uplink on the Internet, its web server on the
// gateway itself. Each runs uplinkd serving the zone; customers resolve through an Unbound on
// the Internet (Server4) that knows every site's name servers.
const (
	WebPort   = 8080
	SiteA     = "paris"
	SiteB     = "lyon"
	SitesZone = "lb.example.com"
)

// WebServer is a site's web server: its health page (/healthz) says "ok", or "maintenance"
// while Sick; every page names the site.
type WebServer struct {
	Sick atomic.Bool
	site string
	srv  *http.Server
}

// StartWebServer starts a web server for site in role's namespace on at.
func (l *Lab) StartWebServer(role, site string, at netip.AddrPort) (*WebServer, error) {
	var ln net.Listener
	if err := l.InNS(role, func() error {
		var err error
		ln, err = net.Listen("tcp", at.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("netlab: web server of %s: %w", site, err)
	}
	w := &WebServer{site: site}
	w.srv = &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && w.Sick.Load() {
			fmt.Fprintln(rw, "maintenance")
			return
		}
		if r.URL.Path == "/healthz" {
			fmt.Fprintln(rw, "ok")
			return
		}
		fmt.Fprintf(rw, "the shop at %s\n", site)
	})}
	go w.srv.Serve(ln)
	l.track(func() { w.Stop() })
	return w, nil
}

// Stop stops the server: connections are refused.
func (w *WebServer) Stop() { w.srv.Close() }

// SitesOptions shape StartSites.
type SitesOptions struct {
	Binary string
	// Probe is the probing of both sites' uplinks (the lab's DaemonConfig fields Interval,
	// Timeout, DownAfter, UpAfter); the server checks are [dns.check]'s shipped defaults.
	Probe DaemonConfig
	TTL   time.Duration // of the answers; 0: the shipped 30 s
	// Policy is www's: failover (paris, then lyon) or spread.
	Policy string
	// InfoLogs: the daemons log at info.
	InfoLogs bool
	// OnEvent, if set, sees each site's uplinkd's events as they arrive.
	OnEvent func(site string, ev api.Event)
}

// Sites is the running two-site setup.
type Sites struct {
	lab        *Lab
	opts       SitesOptions
	A, B       *Daemon
	WebA, WebB *WebServer
	Resolver   *Proc
	dir        string
}

// SiteAddrs are the addresses customers use at each site: paris's two uplinks, lyon's one.
var SiteAddrs = map[string][]netip.Addr{SiteA: {GWWAN1Addr4, GWWAN2Addr4}, SiteB: {SiteBAddr4}}

// SitesConfig is the [dns] and [[site]] part of site's configuration: the same text at both
// sites but for [dns] site (each [[site]] names its own web server).
func SitesConfig(site, policy string, ttl time.Duration) string {
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	if policy == "" {
		policy = "failover"
	}
	q := func(as []netip.Addr) string {
		var s []string
		for _, a := range as {
			s = append(s, fmt.Sprintf("%q", a))
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf(`
[dns]
zone = %q
ttl = %q
site = %q

[[dns.name]]
name = "www"
expect = "ok"
policy = %q
fallback = ["203.0.113.80"]

[[site]]
name = %q
nameservers = [%s]
addresses = [%s]
[site.servers]
www = ["http://%s/healthz"]

[[site]]
name = %q
nameservers = [%s]
addresses = [%s]
[site.servers]
www = ["http://%s/healthz"]
`, SitesZone, ttl, site, policy, SiteA, q(SiteAddrs[SiteA]), q(SiteAddrs[SiteA]), netip.AddrPortFrom(Client4, WebPort),
		SiteB, q(SiteAddrs[SiteB]), q(SiteAddrs[SiteB]), netip.AddrPortFrom(SiteBAddr4, WebPort))
}

// StartSites builds the second site, publishes paris's web server by DNAT, starts both web
// servers, both uplinkd and the customers' resolver, and waits until the resolver answers
// www. Everything stops with the lab.
func (l *Lab) StartSites(ctx context.Context, opts SitesOptions) (s *Sites, err error) {
	if err := l.AddSite(); err != nil {
		return nil, err
	}
	if err := l.nft(RoleGW, fmt.Sprintf("table ip labdnat {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tiifname { %q, %q } tcp dport %d dnat to %s\n\t}\n}\n",
		IfWAN1, IfWAN2, WebPort, netip.AddrPortFrom(Client4, WebPort))); err != nil {
		return nil, err
	}
	s = &Sites{lab: l, opts: opts}
	if s.WebA, err = l.StartWebServer(RoleLAN, SiteA, netip.AddrPortFrom(Client4, WebPort)); err != nil {
		return nil, err
	}
	if s.WebB, err = l.StartWebServer(RoleSiteB, SiteB, netip.AddrPortFrom(SiteBAddr4, WebPort)); err != nil {
		return nil, err
	}
	if err := s.StartDaemon(ctx, SiteA); err != nil {
		return nil, err
	}
	if err := s.StartDaemon(ctx, SiteB); err != nil {
		return nil, err
	}
	if s.dir, err = os.MkdirTemp("", "uplinklab-sites"); err != nil {
		return nil, err
	}
	l.track(func() { os.RemoveAll(s.dir) })
	servers := append(append([]netip.Addr{}, SiteAddrs[SiteA]...), SiteAddrs[SiteB]...)
	// Not ctx: the resolver lives as long as the lab (its readiness wait is bounded).
	if s.Resolver, err = l.StartUnbound(context.Background(), RoleInet, Server4, SitesZone, servers, s.dir); err != nil {
		return nil, err
	}
	// Settled: both sites have checked each other and answer paris (failover's first).
	for start := time.Now(); !s.Agree(ctx, SiteA); time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 30*time.Second || ctx.Err() != nil {
			return nil, fmt.Errorf("netlab: sites: they never agreed on paris: paris answers %v, lyon %v", s.Answers(ctx, SiteA), s.Answers(ctx, SiteB))
		}
	}
	if _, ok := s.WaitVisit(ctx, 20*time.Second, func(site string) bool { return site == SiteA }); !ok {
		return nil, errors.New("netlab: sites: no customer reached paris")
	}
	return s, nil
}

// Agree says whether both sites' name servers answer www with addresses of site only.
func (s *Sites) Agree(ctx context.Context, site string) bool {
	return OnlyOf(s.Answers(ctx, SiteA), site) && OnlyOf(s.Answers(ctx, SiteB), site)
}

// OnlyOf says whether answers holds addresses of site only (and some).
func OnlyOf(answers []string, site string) bool {
	for _, a := range answers {
		if !slices.ContainsFunc(SiteAddrs[site], func(x netip.Addr) bool { return x.String() == a }) {
			return false
		}
	}
	return len(answers) > 0
}

// StartDaemon (re)starts site's uplinkd.
func (s *Sites) StartDaemon(ctx context.Context, site string) error {
	cfg := s.opts.Probe
	cfg.Extra = SitesConfig(site, s.opts.Policy, s.opts.TTL)
	role := RoleGW
	if site == SiteB {
		role = RoleSiteB
		def := cfg
		var targets []string
		for _, t := range Targets4 {
			targets = append(targets, fmt.Sprintf("%q", t))
		}
		text := fmt.Sprintf("\n[defaults]\ntargets = [%s]\n", strings.Join(targets, ", "))
		for _, kv := range []struct {
			key string
			val time.Duration
		}{{"interval", def.Interval}, {"timeout", def.Timeout}} {
			if kv.val > 0 {
				text += fmt.Sprintf("%s = %q\n", kv.key, kv.val)
			}
		}
		if def.DownAfter > 0 {
			text += fmt.Sprintf("down_after = %d\n", def.DownAfter)
		}
		if def.UpAfter > 0 {
			text += fmt.Sprintf("up_after = %d\n", def.UpAfter)
		}
		text += fmt.Sprintf("\n[[uplink]]\nname = \"isp1\"\ninterface = %q\ngateway = %q\n", IfWAN1, SiteBInet4)
		cfg = DaemonConfig{Text: text + cfg.Extra}
	}
	var onEvent func(api.Event)
	if f := s.opts.OnEvent; f != nil {
		onEvent = func(ev api.Event) { f(site, ev) }
	}
	d, err := s.lab.StartDaemon(ctx, DaemonOptions{Binary: s.opts.Binary, Config: cfg, Role: role, InfoLogs: s.opts.InfoLogs, ReadyLimit: 20 * time.Second, OnEvent: onEvent})
	if err != nil {
		return fmt.Errorf("netlab: uplinkd of %s: %w", site, err)
	}
	if site == SiteA {
		s.A = d
	} else {
		s.B = d
	}
	return nil
}

// Visit is one customer visit: resolve www through the resolver, connect to the answer's web
// server and say which site answered ("" when the visit failed), and the address resolved.
func (s *Sites) Visit(ctx context.Context) (site string, addr netip.Addr) {
	a, err := s.lab.Dig(ctx, RoleInet, "@"+Server4.String(), "www."+SitesZone, "A")
	if err != nil || len(a.Answer) == 0 {
		return "", netip.Addr{}
	}
	addr, err = netip.ParseAddr(a.Answer[0][1])
	if err != nil {
		return "", netip.Addr{}
	}
	page := s.lab.Get(ctx, RoleInet, netip.AddrPortFrom(addr, WebPort))
	for _, name := range []string{SiteA, SiteB} {
		if strings.Contains(page, "the shop at "+name) {
			return name, addr
		}
	}
	return "", addr
}

// Get fetches / from the web server at from role's namespace (a customer's visit), bounded
// by a second, and returns the response ("" when it failed).
func (l *Lab) Get(ctx context.Context, role string, at netip.AddrPort) string {
	var page string
	l.InNS(role, func() error {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", at.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
		b := make([]byte, 512)
		n, _ := c.Read(b)
		page = string(b[:n])
		return nil
	})
	return page
}

// WaitVisit visits every 100 ms until ok(site) or limit, and returns the seconds it took.
func (s *Sites) WaitVisit(ctx context.Context, limit time.Duration, ok func(site string) bool) (float64, bool) {
	start := time.Now()
	for time.Since(start) < limit && ctx.Err() == nil {
		if site, _ := s.Visit(ctx); ok(site) {
			return time.Since(start).Seconds(), true
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return time.Since(start).Seconds(), false
}

// Answers are what site's own name servers answer for www now (asked directly, as the
// resolver would).
func (s *Sites) Answers(ctx context.Context, site string) []string {
	a, err := s.lab.Dig(ctx, RoleInet, "@"+SiteAddrs[site][len(SiteAddrs[site])-1].String(), "www."+SitesZone, "A")
	if err != nil {
		return nil
	}
	return a.Data()
}
