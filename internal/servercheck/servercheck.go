// Package servercheck checks the servers behind the published names ([[dns.name]] servers)
// from the gateway: each server every [dns.check] interval with the probe package's tcp, http
// and https methods, unpinned (the LAN's own route: the server is on the LAN, or is the
// gateway), and hands each outcome to the run loop, which judges it (uplink.ServerHealth).
package servercheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// Result is one check's outcome.
type Result struct {
	Name   string // the published name
	Server uplink.Server
	OK     bool
	Reason string // "200 OK in 1.2ms" style: "passed in 1.2ms", or why it failed
	At     time.Time
}

// Start checks every checked name's servers until ctx ends or stop is called, sending each
// outcome to out (blocking: the run loop takes them promptly). A server whose previous check
// is still running is not checked again, so a server that never answers costs one goroutine
// at most, for at most the timeout.
func Start(ctx context.Context, names []uplink.DNSName, c uplink.ServerCheck, out chan<- Result) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	type job struct {
		name   string
		server uplink.Server
		prober probe.Prober
		busy   chan struct{} // holds a token while a check runs
	}
	var jobs []*job
	for _, n := range names {
		for _, s := range n.Servers {
			p, err := probe.New(s.Method)
			if err != nil {
				continue // the config allows tcp, http and https only
			}
			jobs = append(jobs, &job{name: n.Name, server: s, prober: p, busy: make(chan struct{}, 1)})
		}
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
					r := j.prober.Probe(ctx, probe.Pin{}, j.server.Addr, c.Timeout)
					res := Result{Name: j.name, Server: j.server, OK: r.OK, At: time.Now()}
					if r.OK {
						res.Reason = fmt.Sprintf("passed in %s", r.RTT.Round(10*time.Microsecond))
					} else {
						res.Reason = Why(r.Err)
					}
					select {
					case out <- res:
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

// Why is a failed check's reason without the probe's prefix: "connection refused", "status
// 503 Service Unavailable", "no reply within 500ms".
func Why(err error) string {
	if err == nil {
		return "no reply"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if errors.Is(err, context.Canceled) {
		return "stopped"
	}
	return s
}
