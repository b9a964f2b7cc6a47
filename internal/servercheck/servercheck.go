// Package servercheck checks the servers behind the published names ([[dns.name]] servers)
// from the gateway, and the other sites' addresses for them ([[site]]): each every [dns.check]
// interval with the probe package's tcp, http and https methods. A server here is checked
// unpinned (the LAN's own route); another site's address through this site's live uplinks,
// pinned with their marks as probes are, which is what a customer sees. Each outcome goes to
// the run loop, which judges it (uplink.ServerHealth).
package servercheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// Target is one thing to check: a server of a name here (Site ""), or another site's address
// for it.
type Target struct {
	Name   string // the published name
	Site   string // "": this site's server; else the other site whose address Server is
	Server uplink.Server
}

// Targets are what the configuration checks: every checked name's servers here, and for
// each other site that serves it, that site's addresses for it with the name's check.
func Targets(d uplink.DNS) []Target {
	if !d.Enabled() {
		return nil
	}
	var out []Target
	for _, n := range d.Names {
		for _, s := range n.Servers {
			out = append(out, Target{Name: n.Name, Server: s})
		}
		if !d.Multisite() {
			continue
		}
		for _, name := range d.SitesOf(n) {
			m, checked := d.CheckAt(n, name)
			if name == d.Site || !checked {
				continue
			}
			site, _ := d.SiteNamed(name)
			for _, a := range site.AddressesFor(n.Name) {
				out = append(out, Target{Name: n.Name, Site: name, Server: uplink.Server{Addr: a, Method: m}})
			}
		}
	}
	return out
}

// Result is one check's outcome, for every target it answers (the names that share it).
type Result struct {
	Targets []Target
	OK      bool
	Reason  string // "passed in 1.2ms", or why it failed: "connection refused"
	At      time.Time
}

// newProber makes a check's prober (a fake in tests).
var newProber = probe.New

// Pins returns the pins of this site's live uplinks, best first, for checks of another site.
type Pins func() []probe.Pin

// Start checks every target until ctx ends or stop is called, sending each outcome to out
// (blocking: the run loop takes them promptly). Targets that check the same server the same
// way (another site's address shared by many names) are checked once per interval, in one
// outcome for all of them. A check whose previous one still runs is skipped, so a server that
// never answers costs one goroutine at most, for at most the timeout per live uplink.
func Start(ctx context.Context, targets []Target, c uplink.ServerCheck, pins Pins, out chan<- Result) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	type key struct {
		remote bool // through the live uplinks
		server uplink.Server
	}
	type job struct {
		key
		targets []Target // every name's target that this check answers
		prober  probe.Prober
		busy    chan struct{} // holds a token while a check runs
	}
	var jobs []*job
	byKey := map[key]*job{}
	for _, t := range targets {
		k := key{t.Site != "", t.Server}
		if j := byKey[k]; j != nil {
			j.targets = append(j.targets, t)
			continue
		}
		p, err := newProber(t.Server.Method)
		if err != nil {
			continue // the config allows tcp, http and https only
		}
		j := &job{key: k, targets: []Target{t}, prober: p, busy: make(chan struct{}, 1)}
		byKey[k] = j
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 || c.Interval <= 0 {
		cancel()
		return func() {}
	}
	wg.Go(func() {
		t := time.NewTicker(c.Interval)
		defer t.Stop()
		for {
			for _, j := range jobs {
				select {
				case j.busy <- struct{}{}:
				default:
					continue // still checking
				}
				wg.Go(func() {
					defer func() { <-j.busy }()
					ok, reason := check(ctx, j.prober, j.remote, j.server, c.Timeout, pins)
					select {
					case out <- Result{Targets: j.targets, OK: ok, Reason: reason, At: time.Now()}:
					case <-ctx.Done():
					}
				})
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// check checks server once: unpinned here, or (remote) through each live uplink in turn until
// one passes.
func check(ctx context.Context, p probe.Prober, remote bool, server uplink.Server, timeout time.Duration, pins Pins) (bool, string) {
	if !remote {
		return outcome(p.Probe(ctx, probe.Pin{}, server.Addr, timeout), "")
	}
	var why []string
	for _, pin := range usable(pins, server.Addr) {
		ok, reason := outcome(p.Probe(ctx, pin, server.Addr, timeout), fmt.Sprintf(" via mark %#x", pin.Mark))
		if ok {
			return true, reason
		}
		why = append(why, reason)
	}
	if len(why) == 0 {
		return false, "no live uplink of this site to check it through"
	}
	return false, strings.Join(why, "; ")
}

// usable are the pins that can reach addr: a source of its family.
func usable(pins Pins, addr netip.Addr) []probe.Pin {
	if pins == nil {
		return nil
	}
	var out []probe.Pin
	for _, p := range pins() {
		src := p.Source4
		if addr.Is6() {
			src = p.Source6
		}
		if src.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

func outcome(r probe.Result, via string) (bool, string) {
	if r.OK {
		return true, fmt.Sprintf("passed in %s%s", r.RTT.Round(10*time.Microsecond), via)
	}
	return false, Why(r.Err) + via
}

// Why is a failed check's reason without the probe's prefix: "connection refused", "status
// 503 Service Unavailable", "no reply within 500ms".
func Why(err error) string {
	if err == nil {
		return "no reply"
	}
	if errors.Is(err, context.Canceled) {
		return "stopped"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// Once checks every target once, all at once (uplinkd --check --probe), and returns the
// outcomes in the order of targets.
func Once(ctx context.Context, targets []Target, timeout time.Duration, pins Pins) []Result {
	out := make([]Result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		p, err := newProber(t.Server.Method)
		if err != nil {
			out[i] = Result{Targets: []Target{t}, Reason: err.Error()}
			continue
		}
		wg.Go(func() {
			ok, reason := check(ctx, p, t.Site != "", t.Server, timeout, pins)
			out[i] = Result{Targets: []Target{t}, OK: ok, Reason: reason, At: time.Now()}
		})
	}
	wg.Wait()
	return out
}
