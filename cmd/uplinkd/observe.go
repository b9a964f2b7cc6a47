package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/engine"
	"github.com/uplinkd/uplinkd/internal/hooks"
	"github.com/uplinkd/uplinkd/internal/journal"
	"github.com/uplinkd/uplinkd/internal/metrics"
	"github.com/uplinkd/uplinkd/internal/version"
	"github.com/uplinkd/uplinkd/uplink"
)

// newLogHandler logs to the journal with native fields when systemd collects uplinkd's
// stderr (journalctl -u uplinkd UPLINK=isp1), else as text lines to stderr.
func newLogHandler(stderr io.Writer, level *slog.LevelVar) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if stderr == io.Writer(os.Stderr) && journal.Available(os.Getenv) {
		return journal.New(journal.Send, stderr, opts)
	}
	return slog.NewTextHandler(stderr, opts)
}

// observer is what uplinkd tells the outside: metrics (when metrics_listen is set) and hooks.
// Neither slows the engine's loop: metrics read the published snapshot, both follow the
// event stream in their own goroutines.
type observer struct {
	log     *slog.Logger
	metrics *metrics.Metrics // nil: metrics are off
	ln      net.Listener
	hooks   *hooks.Runner
	engine  *engine.Engine
}

// newObserver opens the metrics listener and starts the hooks' workers. A listener that cannot
// be opened is logged and metrics stay off: failover matters more than its figures.
func newObserver(ctx context.Context, cfg *uplink.Config, log *slog.Logger) *observer {
	o := &observer{log: log}
	var counters hooks.Counters
	if addr := cfg.Daemon.MetricsListen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("metrics listener failed; running without metrics", "listen", addr, "err", err)
		} else {
			o.ln = ln
			o.metrics = metrics.New(metrics.SourceFunc(func() api.Status { return o.engine.Status() }), version.Version)
			counters = o.metrics
		}
	}
	o.hooks = hooks.New(ctx, log, counters)
	o.hooks.Configure(cfg.Hooks)
	return o
}

// countDNS makes the metrics read the DNS server's counters.
func (o *observer) countDNS(read func() metrics.DNSCounts) {
	if o.metrics != nil {
		o.metrics.SetDNS(read)
	}
}

// countRA makes the metrics read the RA sender's counters.
func (o *observer) countRA(read func() metrics.RACounts) {
	if o.metrics != nil {
		o.metrics.SetRA(read)
	}
}

// onRound is the engine's OnRound: nil when metrics are off.
func (o *observer) onRound() func(string, uplink.Round) {
	if o.metrics == nil {
		return nil
	}
	return o.metrics.ObserveRound
}

// onReload is the engine's OnReload: new hooks, and removed uplinks' counters forgotten.
func (o *observer) onReload(cfg *uplink.Config) {
	o.hooks.Configure(cfg.Hooks)
	if o.metrics != nil {
		o.metrics.Forget(cfg)
	}
}

// start follows e's events and serves metrics until ctx ends.
func (o *observer) start(ctx context.Context, e *engine.Engine, workers *sync.WaitGroup) {
	o.engine = e
	workers.Go(func() {
		o.hooks.Follow(ctx, e.Subscribe)
		o.hooks.Wait()
	})
	if o.metrics == nil {
		return
	}
	workers.Go(func() { o.metrics.Follow(ctx, e.Subscribe, o.log) })
	workers.Go(func() {
		o.log.Info("metrics listening", "listen", o.ln.Addr().String())
		if err := o.metrics.Serve(ctx, o.ln); err != nil {
			o.log.Error("metrics listener stopped", "err", err)
		}
	})
}
