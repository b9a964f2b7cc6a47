// Package metrics exposes uplinkd's state to Prometheus. Gauges are read from the engine's
// published snapshot (Engine.Status) when Prometheus scrapes, so a scrape never takes the run
// loop's time; counters and histograms are fed by the probe rounds (Engine's OnRound hook, a
// few map lookups) and by the event stream.
package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

// Source is what the metrics read at scrape time: the engine's snapshot. It must be cheap and
// must not wait for the run loop.
type Source interface {
	Status() api.Status
}

// SourceFunc adapts a function to Source.
type SourceFunc func() api.Status

// Status calls f.
func (f SourceFunc) Status() api.Status { return f() }

// Metric names. Names lists every one this package exports (besides the go_ and process_
// collectors), so that tests can check the dashboard and the alert rules against it.
const (
	UplinkUp          = "uplinkd_uplink_up"
	UplinkState       = "uplinkd_uplink_state"
	UplinkActive      = "uplinkd_uplink_active"
	UplinkDrained     = "uplinkd_uplink_drained"
	UplinkRTT         = "uplinkd_uplink_rtt_seconds"
	UplinkLoss        = "uplinkd_uplink_loss_ratio"
	UplinkJitter      = "uplinkd_uplink_jitter_seconds"
	UplinkMOS         = "uplinkd_uplink_mos"
	UplinkHoldDown    = "uplinkd_uplink_hold_down_seconds"
	UplinkConnections = "uplinkd_uplink_connections"
	UplinkStateSince  = "uplinkd_uplink_state_since_timestamp_seconds"
	TargetLoss        = "uplinkd_target_loss_ratio"
	ProbesTotal       = "uplinkd_probes_total"
	TargetRTT         = "uplinkd_target_rtt_seconds"
	TransitionsTotal  = "uplinkd_transitions_total"
	SwitchDuration    = "uplinkd_switch_duration_seconds"
	ReloadsTotal      = "uplinkd_reloads_total"
	ErrorsTotal       = "uplinkd_apply_errors_total"
	HookRunsTotal     = "uplinkd_hook_runs_total"
	HookDroppedTotal  = "uplinkd_hook_dropped_total"
	BuildInfo         = "uplinkd_build_info"
	DNSQueries        = "uplinkd_dns_queries_total"
	DNSResponses      = "uplinkd_dns_responses_total"
	PrefixPreferred   = "uplinkd_ipv6_prefix_preferred"
	NPTv6Translations = "uplinkd_nptv6_translations"
	RASent            = "uplinkd_ra_sent_total"
	RASolicited       = "uplinkd_ra_solicitations_answered_total"
	RAForeign         = "uplinkd_ra_foreign_total"
	ProbeBytes        = "uplinkd_uplink_probe_bytes_total"
	ProbeBytesPerDay  = "uplinkd_uplink_probe_bytes_per_day"
	DNSServerUp       = "uplinkd_dns_server_up"
	DNSFallback       = "uplinkd_dns_fallback"
	DNSAnswerSite     = "uplinkd_dns_answer_site"
)

// Names are the metric families uplinkd exports itself; histograms also have the _bucket,
// _sum and _count series.
var Names = []string{
	UplinkUp, UplinkState, UplinkActive, UplinkDrained, UplinkRTT, UplinkLoss, UplinkJitter, UplinkMOS, UplinkHoldDown,
	UplinkConnections, UplinkStateSince, TargetLoss, ProbesTotal, TargetRTT, TransitionsTotal,
	SwitchDuration, ReloadsTotal, ErrorsTotal, HookRunsTotal, HookDroppedTotal, BuildInfo,
	DNSQueries, DNSResponses, PrefixPreferred, NPTv6Translations, RASent, RASolicited, RAForeign,
	ProbeBytes, ProbeBytesPerDay, DNSServerUp, DNSFallback, DNSAnswerSite,
}

// States are the values of uplinkd_uplink_state's state label, one-hot per uplink.
var States = []uplink.State{uplink.Unknown, uplink.Up, uplink.Degraded, uplink.Down}

// Metrics is uplinkd's registry.
type Metrics struct {
	reg         *prometheus.Registry
	src         Source
	probes      probeTable
	transitions *prometheus.CounterVec
	switches    prometheus.Histogram
	reloads     *prometheus.CounterVec
	errors      prometheus.Counter
	hookRuns    *prometheus.CounterVec
	hookDropped *prometheus.CounterVec
	dns         *dnsCollector
	ra          *raCollector

	mu   sync.Mutex
	seen map[string]struct{} // uplinks with per-uplink counters, for Forget
}

// New makes the registry: the snapshot collector over src, the counters, build info, and the
// standard Go and process collectors.
func New(src Source, version string) *Metrics {
	m := &Metrics{
		seen:   map[string]struct{}{},
		src:    src,
		probes: probeTable{uplinks: map[string]*uplinkProbes{}},
		reg:    prometheus.NewRegistry(),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: TransitionsTotal, Help: "Changes of an uplink's health state, by the state it went to.",
		}, []string{"uplink", "to"}),
		switches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    SwitchDuration,
			Help:    "Time from a change of the active set to the kernel's acknowledgement of the new routes and connection marks.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ReloadsTotal, Help: "Configuration reloads, by result (ok or refused).",
		}, []string{"result"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: ErrorsTotal, Help: "Failures to apply a decision to the kernel (retried).",
		}),
		hookRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: HookRunsTotal, Help: "Hook runs, by result (ok, failed: non-zero exit, timeout: killed, error: could not start).",
		}, []string{"hook", "result"}),
		hookDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: HookDroppedTotal, Help: "Events a hook did not see because its queue was full.",
		}, []string{"hook"}),
		dns: newDNSCollector(),
		ra:  newRACollector(),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        BuildInfo,
		Help:        "Always 1; the labels say which uplinkd this is.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	for _, r := range []string{"ok", "refused"} {
		m.reloads.WithLabelValues(r) // present at 0 from the start, so increase() sees the first
	}
	m.reg.MustRegister(
		m.transitions, m.switches, m.reloads, m.errors, m.hookRuns, m.hookDropped,
		buildInfo, m.dns, m.ra,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is where every metric is registered (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRound counts one probe round. It is the engine's OnRound hook: it runs in the loop
// and costs a map lookup and a few atomic adds per target; a scrape holds no lock it waits on
// for longer than copying a slice.
func (m *Metrics) ObserveRound(name string, r uplink.Round) {
	m.probes.observe(name, r)
}

// ObserveEvent counts one event of the engine's stream.
func (m *Metrics) ObserveEvent(ev api.Event) {
	switch ev.Kind {
	case api.KindState:
		m.see(ev.Uplink)
		m.transitions.WithLabelValues(ev.Uplink, ev.To).Inc()
	case api.KindActive:
		if ev.Took > 0 {
			m.switches.Observe(ev.Took.Seconds())
		}
	case api.KindReload:
		if ev.Reason == "configuration reloaded" {
			m.reloads.WithLabelValues("ok").Inc()
		} else {
			m.reloads.WithLabelValues("refused").Inc()
		}
	case api.KindError:
		m.errors.Inc()
	}
}

// Forget drops the per-uplink counters of uplinks that are no longer configured (after a
// reload), so that removed uplinks do not linger in every scrape.
func (m *Metrics) Forget(cfg *uplink.Config) {
	keep := map[string]bool{}
	for _, u := range cfg.Uplinks {
		keep[u.Name] = true
	}
	m.probes.forget(keep)
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.seen {
		if !keep[name] {
			delete(m.seen, name)
			m.transitions.DeletePartialMatch(prometheus.Labels{"uplink": name})
		}
	}
}

// see notes an uplink name that has per-uplink counters.
func (m *Metrics) see(name string) {
	m.mu.Lock()
	m.seen[name] = struct{}{}
	m.mu.Unlock()
}

// HookRan counts a hook's run (hooks.Counters).
func (m *Metrics) HookRan(hook, result string) { m.hookRuns.WithLabelValues(hook, result).Inc() }

// HookDropped counts an event a hook's full queue could not take (hooks.Counters).
func (m *Metrics) HookDropped(hook string) { m.hookDropped.WithLabelValues(hook).Inc() }

// Follow counts the events of subscribe's streams until ctx ends. The engine ends a stream
// that falls behind; Follow then subscribes again (the events in between are not counted, and
// says so).
func (m *Metrics) Follow(ctx context.Context, subscribe func(context.Context) <-chan api.Event, log *slog.Logger) {
	for ctx.Err() == nil {
		for ev := range subscribe(ctx) {
			m.ObserveEvent(ev)
		}
		if ctx.Err() == nil {
			log.Warn("metrics fell behind the event stream; events were not counted", "component", "metrics")
		}
	}
}

// Handler serves the metrics in the Prometheus text format (version 0.0.4), gzipped when the
// scraper accepts it (Prometheus does). At most 4 scrapes run at once; more get 503.
func (m *Metrics) Handler() http.Handler {
	inflight := make(chan struct{}, 4)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case inflight <- struct{}{}:
			defer func() { <-inflight }()
		default:
			http.Error(w, "too many scrapes at once", http.StatusServiceUnavailable)
			return
		}
		buf := buffers.Get().(*[]byte)
		defer buffers.Put(buf)
		body, err := m.render((*buf)[:0])
		*buf = body
		if err != nil {
			http.Error(w, "gathering metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", contentType)
		if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
			_, _ = w.Write(body)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzipWriters.Get().(*gzip.Writer)
		defer gzipWriters.Put(gz)
		gz.Reset(w)
		_, _ = gz.Write(body)
		_ = gz.Close()
	})
}

const contentType = "text/plain; version=0.0.4; charset=utf-8"

// gzipWriters are reused: a gzip.Writer's tables are large. BestSpeed: a scrape is mostly
// repetitive label text that compresses well enough, and CPU is the budget.
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// render writes one whole scrape: the registry (events, hooks, build info, Go, process) and the
// hand-written per-uplink families from the snapshot and the probe counters.
func (m *Metrics) render(b []byte) ([]byte, error) {
	families, err := m.reg.Gather()
	if err != nil {
		return b, err
	}
	buf := bytes.NewBuffer(b)
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(buf, mf); err != nil {
			return buf.Bytes(), err
		}
	}
	e := expo{b: buf.Bytes()}
	m.writeFast(&e, m.src.Status())
	return e.b, nil
}

// buffers keep a scrape's text between scrapes: it is the same size every time.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// Serve answers GET /metrics on ln until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("uplinkd: metrics at /metrics\n"))
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	stop := context.AfterFunc(ctx, func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	})
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
