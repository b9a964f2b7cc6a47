// Package diagnose is uplinkd --check: a summary of a valid configuration, what in it may not
// do what is meant (warnings), its hooks' programs, and with --probe every target once through
// each uplink. It reads the kernel and sends probes; it changes nothing.
package diagnose

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/ha"
	"github.com/uplinkd/uplinkd/internal/hooks"
	"github.com/uplinkd/uplinkd/internal/servercheck"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
	"github.com/vishvananda/netlink"
)

// Summary is what --check prints about a valid configuration.
func Summary(w io.Writer, cfg *uplink.Config) {
	fmt.Fprintf(w, "%s: ok, %d uplinks\n", cfg.Path, len(cfg.Uplinks))
	for _, u := range cfg.Uplinks {
		gw := "gateway from the kernel"
		if u.Gateway.IsValid() || u.Gateway6.IsValid() {
			var gws []string
			for _, g := range []interface{ IsValid() bool }{u.Gateway, u.Gateway6} {
				if g.IsValid() {
					gws = append(gws, fmt.Sprint(g))
				}
			}
			gw = "gateway " + strings.Join(gws, ", ")
		}
		p := u.Probe
		targets := make([]string, len(p.Targets))
		for i, t := range p.Targets {
			targets[i] = t.String()
			if m, ok := p.TargetMethods[t]; ok {
				targets[i] = m.String() + "://" + t.String()
			}
		}
		fmt.Fprintf(w, "  %-10s %-10s tier %d weight %-3d table %d mark %#x  %s\n", u.Name, u.Interface, u.Priority, u.Weight, u.Table(cfg.Daemon), u.Mark(), gw)
		fmt.Fprintf(w, "  %-10s %s every %s, timeout %s, quorum %d of %s; down after %d, up after %d\n", "", p.Method, p.Interval, p.Timeout, p.Quorum, strings.Join(targets, " "), p.DownAfter, p.UpAfter)
	}
	for _, s := range cfg.Services {
		fallback := "then balanced like the rest"
		if !s.Fallback {
			fallback = "else refused"
		}
		fmt.Fprintf(w, "  service %-10s → %s, %s\n", s.Name, strings.Join(s.Uplinks, " then "), fallback)
	}
	if cfg.Daemon.Pinning {
		fmt.Fprintf(w, "  connections pinned to their uplink (nftables table inet uplinkd)\n")
	}
	if cfg.HA.TrackFile != "" {
		fmt.Fprintf(w, "  gateway pair: keepalived's priority steered through %s\n", cfg.HA.TrackFile)
	}
	if d := cfg.DNS; d.DNSSEC != "" {
		if k, err := config.LoadDNSSECKey(d.DNSSEC, d.Zone); err == nil { // Load judged it already
			fmt.Fprintf(w, "  DNSSEC: %s signed with key tag %d; the DS for the registrar:\n  %s\n", d.Zone, k.KeyTag(), k.DS())
		}
		if n, err := config.LoadDNSSECKey(d.DNSSECNext, d.Zone); d.DNSSECNext != "" && err == nil {
			fmt.Fprintf(w, "  DNSSEC rollover: key tag %d published and signing the DNSKEY set. Replace the DS at the registrar with\n  %s\n"+
				"  then, once the parent's DS TTL has passed, set dnssec = %q and remove dnssec_next\n", n.KeyTag(), n.DS(), d.DNSSECNext)
		}
	}
	if cfg.IPv6Enabled() {
		v := cfg.IPv6
		for _, u := range cfg.Uplinks {
			for _, p := range u.Prefixes {
				kind := "static"
				if p.Bits() < uplink.PrefixLen {
					kind = "delegation, its /64s followed"
				}
				fmt.Fprintf(w, "  LAN prefix %s of %s (%s) on %s\n", p, u.Name, kind, strings.Join(v.Interfaces, ", "))
			}
		}
		fmt.Fprintf(w, "  IPv6: advertise %s, NPTv6 %s\n", v.Advertise, map[bool]string{true: "on", false: "off"}[v.NPTv6])
	}
}

// nptv6Kernel is the first kernel release whose nftables NAT maps a whole prefix ("snat ip6
// prefix to", NF_NAT_RANGE_NETMAP).
var nptv6Kernel = [2]int{5, 8}

// kernelWarning says when the running kernel is too old for NPTv6; release is uname -r.
func kernelWarning(cfg *uplink.Config, release string) string {
	if !cfg.IPv6Enabled() || !cfg.IPv6.NPTv6 {
		return ""
	}
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		return fmt.Sprintf("kernel release %q unreadable: NPTv6 needs Linux %d.%d or later", release, nptv6Kernel[0], nptv6Kernel[1])
	}
	if major < nptv6Kernel[0] || major == nptv6Kernel[0] && minor < nptv6Kernel[1] {
		return fmt.Sprintf("kernel %s is older than %d.%d: its nftables cannot translate prefixes, so NPTv6 fails to load; set [ipv6] nptv6 = false", release, nptv6Kernel[0], nptv6Kernel[1])
	}
	return ""
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Warnings are what --check says about a valid configuration that may not do what is meant.
func Warnings(cfg *uplink.Config) []string {
	var out []string
	if err := control.CheckGroup(cfg.Daemon.SocketGroup); err != nil {
		out = append(out, err.Error())
	}
	if cfg.HA.TrackFile != "" {
		ws, err := ha.Check(cfg.HA.TrackFile)
		out = append(out, ws...)
		if err != nil {
			out = append(out, err.Error())
		}
	}
	for _, u := range cfg.Uplinks {
		if len(u.Probe.Targets) == 1 {
			out = append(out, fmt.Sprintf("uplink %s has a single probe target: when that one host stops answering, the uplink is judged down; give it two or more", u.Name))
		}
	}
	if w := metricsWarning(cfg); w != "" {
		out = append(out, w)
	}
	if w := kernelWarning(cfg, kernelRelease()); w != "" {
		out = append(out, w)
	}
	return out
}

// Probe is --check --probe: every target once through each uplink, pinned as the daemon
// pins its probes (the uplink's mark and address), all uplinks at once. It says when the mark
// is not routed (uplinkd not running: its rules are missing), since such probes follow the main
// table and may leave through another uplink. It changes nothing. It returns false when an
// uplink had no answering target or could not be probed.
func Probe(ctx context.Context, w io.Writer, cfg *uplink.Config) bool {
	h, err := netlink.NewHandle()
	if err != nil {
		fmt.Fprintf(w, "probe: netlink: %v\n", err)
		return false
	}
	defer h.Close()
	r := routing.NewRouter(h, routing.SettingsOf(cfg.Daemon), nil)
	type outcome struct {
		pin     probe.Pin
		linked  bool   // the interface is there: probe it
		note    string // how it was pinned, or why it could not be probed
		results []probe.Result
	}
	out := make([]outcome, len(cfg.Uplinks))
	for i, u := range cfg.Uplinks { // the kernel's view first, in the loop's goroutine
		info, err := r.Link(u.Interface)
		if err != nil {
			out[i].note = err.Error()
			continue
		}
		o := &out[i]
		o.linked, o.pin = true, pinOf(u, info.Addrs)
		o.note = fmt.Sprintf("mark %#x from %s", o.pin.Mark, sources(o.pin))
		switch routed, err := r.MarkRouted(u.Mark(), u.Table(cfg.Daemon)); {
		case err != nil:
			o.note += ", pinning unknown: " + err.Error()
		case !routed:
			o.note += fmt.Sprintf(", NOT PINNED: no rule `fwmark %#x lookup %d` (is uplinkd running?): these probes follow the main table and may leave through another uplink", u.Mark(), u.Table(cfg.Daemon))
		}
	}
	var wg sync.WaitGroup
	for i, u := range cfg.Uplinks {
		if !out[i].linked {
			continue
		}
		wg.Go(func() {
			res, err := probe.Once(ctx, u.Probe, out[i].pin)
			if err != nil {
				out[i].note += ": " + err.Error()
			}
			out[i].results = res
		})
	}
	wg.Wait()

	fmt.Fprintf(w, "\nprobing every target once through each uplink:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "UPLINK\tINTERFACE\tTARGET\tRESULT\n")
	ok := true
	var summaries []string
	for i, u := range cfg.Uplinks {
		answered := 0
		for _, res := range out[i].results {
			target := u.Probe.MethodOf(res.Target).String() + "://" + res.Target.String()
			result := errText(res.Err)
			if res.OK {
				answered++
				result = fmt.Sprintf("%.1f ms", float64(res.RTT.Microseconds())/1000)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Interface, target, result)
		}
		total := len(u.Probe.Targets)
		verdict := fmt.Sprintf("%d/%d answered (loss %.0f%%)", answered, total, 100*float64(total-answered)/float64(max(total, 1)))
		if answered == 0 {
			verdict = "NO TARGET ANSWERED"
			ok = false
		}
		summaries = append(summaries, fmt.Sprintf("%s: %s; %s", u.Name, verdict, out[i].note))
	}
	tw.Flush()
	for _, s := range summaries {
		fmt.Fprintln(w, s)
	}
	return ok
}

func sources(p probe.Pin) string {
	var s []string
	for _, a := range []interface{ IsValid() bool }{p.Source4, p.Source6} {
		if a.IsValid() {
			s = append(s, fmt.Sprint(a))
		}
	}
	if len(s) == 0 {
		return "no address"
	}
	return strings.Join(s, ", ")
}

// errText is a probe's error without the parts the table already shows.
func errText(err error) string {
	if err == nil {
		return "no reply"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && !strings.Contains(s[i:], "within") {
		return s[i+2:]
	}
	if i := strings.Index(s, "no reply"); i >= 0 {
		return s[i:]
	}
	return s
}

// Hooks is what --check says about hook programs: each problem is an error there (the
// daemon only warns, so that a reload is never refused for a hook).
func Hooks(w io.Writer, cfg *uplink.Config) (ok bool) {
	errs := hooks.Check(cfg.Hooks)
	for _, err := range errs {
		fmt.Fprintf(w, "error: %v\n", err)
	}
	return len(errs) == 0
}

// metricsWarning warns when metrics_listen is reachable from beyond the gateway.
func metricsWarning(cfg *uplink.Config) string {
	ap, err := netip.ParseAddrPort(cfg.Daemon.MetricsListen)
	if err != nil || ap.Addr().IsLoopback() {
		return ""
	}
	return fmt.Sprintf("metrics_listen %s is not a loopback address: anyone who reaches it sees your uplinks, targets and traffic counts; restrict it with your firewall", ap)
}

// Check is all of --check: the summary, the warnings, the hooks and, with probe, the probes.
// It returns false when something would not work (a hook's program, an uplink no target answers).
func Check(ctx context.Context, w io.Writer, cfg *uplink.Config, probe bool) bool {
	Summary(w, cfg)
	for _, warning := range Warnings(cfg) {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
	ok := Hooks(w, cfg)
	if probe {
		ok = Probe(ctx, w, cfg) && ok
		ok = Servers(ctx, w, cfg) && ok
	}
	return ok
}

// Servers checks every published name's servers once, as the daemon does (from the gateway,
// unpinned), and the other sites' addresses for them through each uplink (pinned with its mark
// and address, as the daemon checks them), all at once, and prints the outcomes. It returns
// false when a name has fewer passing servers here than its quorum: it would answer its
// fallback (another site that fails is reported, not a failure of this box).
func Servers(ctx context.Context, w io.Writer, cfg *uplink.Config) bool {
	targets := servercheck.Targets(cfg.DNS)
	if len(targets) == 0 {
		return true
	}
	pins := uplinkPins(cfg)
	results := servercheck.Once(ctx, targets, cfg.DNS.Check.Timeout, func() []probe.Pin { return pins })
	fmt.Fprintf(w, "\nchecking every published name's servers once (and the other sites' addresses, through each uplink):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tSITE\tSERVER\tRESULT\n")
	passing := map[string]int{}
	for i, r := range results {
		t := targets[i]
		if r.OK && t.Site == "" {
			passing[t.Name]++
		}
		site := t.Site
		if site == "" {
			site = "here"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, site, t.Server, r.Reason)
	}
	tw.Flush()
	ok := true
	for _, n := range cfg.DNS.Names {
		if n.Checked() && passing[n.Name] < n.NeedServers() {
			ok = false
			fmt.Fprintf(w, "%s: %d of %d servers pass, its quorum is %d: it would answer %s\n", n.Name, passing[n.Name], len(n.Servers), n.NeedServers(),
				map[bool]string{true: "its fallback", false: "as if unchecked (no fallback)"}[len(n.Fallback) > 0])
		}
	}
	return ok
}

// uplinkPins are the pins of the uplinks whose interfaces exist: their marks and addresses.
func uplinkPins(cfg *uplink.Config) []probe.Pin {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil
	}
	defer h.Close()
	r := routing.NewRouter(h, routing.SettingsOf(cfg.Daemon), nil)
	var pins []probe.Pin
	for _, u := range cfg.Uplinks {
		info, err := r.Link(u.Interface)
		if err != nil {
			continue
		}
		pins = append(pins, pinOf(u, info.Addrs))
	}
	return pins
}

// pinOf is u's pin with its first address of each family.
func pinOf(u uplink.Uplink, addrs []netip.Addr) probe.Pin {
	p := probe.Pin{Mark: u.Mark()}
	for _, a := range addrs {
		if a.Is4() && !p.Source4.IsValid() {
			p.Source4 = a
		}
		if a.Is6() && !p.Source6.IsValid() {
			p.Source6 = a
		}
	}
	return p
}
