package metrics

// The per-uplink and per-target families are written by hand. With 64 uplinks × 8 targets
// they are about 8,000 series, and client_golang's generic path (a protobuf message per
// series, validated, sorted, then encoded) costs about 2 µs a series: 16 ms of CPU a scrape on
// the 2-core gateway, against a budget of 5 ms. Written straight from the snapshot and from
// atomic counters they cost a fraction of that; promtool checks the result (metrics_test.go).

import (
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

// rttBuckets are the upper bounds of uplinkd_target_rtt_seconds, in seconds.
var rttBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// rttBucketNanos are rttBuckets in nanoseconds, for the loop's comparisons.
var rttBucketNanos = func() []int64 {
	out := make([]int64, len(rttBuckets))
	for i, b := range rttBuckets {
		out[i] = int64(b * 1e9)
	}
	return out
}()

// probeCounters are one (uplink, target)'s probe counts and RTT histogram. The loop adds with
// atomics; a scrape reads them without a lock.
type probeCounters struct {
	// The beginnings of its lines up to the value, written once: a scrape appends numbers.
	okLine, failedLine, sumLine, countLine string
	bucketLines                            []string

	ok      atomic.Uint64
	failed  atomic.Uint64
	buckets []atomic.Uint64 // non-cumulative, one per rttBuckets, then +Inf
	sumNs   atomic.Int64
}

func (c *probeCounters) observe(r uplink.Result) {
	if !r.OK {
		c.failed.Add(1)
		return
	}
	c.ok.Add(1)
	ns := int64(r.RTT)
	i := 0
	for i < len(rttBucketNanos) && ns > rttBucketNanos[i] {
		i++
	}
	c.buckets[i].Add(1)
	c.sumNs.Add(ns)
}

// probeTable holds the counters of every (uplink, target) in order of first appearance.
type probeTable struct {
	mu      sync.RWMutex
	uplinks map[string]*uplinkProbes
	order   []string
}

type uplinkProbes struct {
	name    string
	mu      sync.RWMutex
	targets map[netip.Addr]*probeCounters
	order   []*probeCounters
}

func newProbeCounters(uplinkName string, target netip.Addr) *probeCounters {
	labels := `uplink="` + string(appendEscaped(nil, uplinkName)) + `",target="` + target.String() + `"`
	c := &probeCounters{
		okLine:     ProbesTotal + "{" + labels + `,result="ok"} `,
		failedLine: ProbesTotal + "{" + labels + `,result="failed"} `,
		sumLine:    TargetRTT + "_sum{" + labels + "} ",
		countLine:  TargetRTT + "_count{" + labels + "} ",
		buckets:    make([]atomic.Uint64, len(rttBuckets)+1),
	}
	for _, le := range rttBucketLabels {
		c.bucketLines = append(c.bucketLines, TargetRTT+"_bucket{"+labels+`,le="`+le+`"} `)
	}
	return c
}

func (t *probeTable) uplink(name string) *uplinkProbes {
	t.mu.RLock()
	u := t.uplinks[name]
	t.mu.RUnlock()
	if u != nil {
		return u
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if u = t.uplinks[name]; u == nil {
		u = &uplinkProbes{name: name, targets: map[netip.Addr]*probeCounters{}}
		t.uplinks[name] = u
		t.order = append(t.order, name)
	}
	return u
}

func (u *uplinkProbes) target(a netip.Addr) *probeCounters {
	u.mu.RLock()
	c := u.targets[a]
	u.mu.RUnlock()
	if c != nil {
		return c
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if c = u.targets[a]; c == nil {
		c = newProbeCounters(u.name, a)
		u.targets[a] = c
		u.order = append(u.order, c)
	}
	return c
}

func (t *probeTable) observe(name string, r uplink.Round) {
	u := t.uplink(name)
	for _, res := range r.Results {
		u.target(res.Target).observe(res)
	}
}

// forget drops every uplink not in keep.
func (t *probeTable) forget(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := t.order[:0]
	for _, name := range t.order {
		if keep[name] {
			kept = append(kept, name)
		} else {
			delete(t.uplinks, name)
		}
	}
	t.order = kept
}

// each calls f for every uplink's counters, in order.
func (t *probeTable) each(f func(targets []*probeCounters)) {
	t.mu.RLock()
	ups := make([]*uplinkProbes, len(t.order))
	for i, n := range t.order {
		ups[i] = t.uplinks[n]
	}
	t.mu.RUnlock()
	for _, u := range ups {
		u.mu.RLock()
		targets := append([]*probeCounters(nil), u.order...)
		u.mu.RUnlock()
		f(targets)
	}
}

// expo writes the text exposition format (version 0.0.4).
type expo struct{ b []byte }

func (e *expo) family(name, typ, help string) {
	e.b = append(e.b, "# HELP "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, help...)
	e.b = append(e.b, "\n# TYPE "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, typ...)
	e.b = append(e.b, '\n')
}

// sample writes name{k1="v1",...} value; labels alternate names and values.
func (e *expo) sample(name string, v float64, labels ...string) {
	e.b = append(e.b, name...)
	if len(labels) > 0 {
		e.b = append(e.b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, labels[i]...)
			e.b = append(e.b, `="`...)
			e.b = appendEscaped(e.b, labels[i+1])
			e.b = append(e.b, '"')
		}
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, ' ')
	e.b = appendFloat(e.b, v)
	e.b = append(e.b, '\n')
}

// line writes a sample whose name and labels are written already.
func (e *expo) line(prefix string, v uint64) {
	e.b = append(e.b, prefix...)
	e.b = strconv.AppendUint(e.b, v, 10)
	e.b = append(e.b, '\n')
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendEscaped escapes a label value: backslash, double quote and newline.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, s[i])
		}
	}
	return b
}

// gaugeFamily is one per-uplink gauge read from the snapshot.
type gaugeFamily struct {
	name, help string
	value      func(api.UplinkStatus) (float64, bool)
}

var uplinkGauges = []gaugeFamily{
	{UplinkUp, "1 if the uplink is fit to carry traffic (state up or degraded), else 0.",
		func(u api.UplinkStatus) (float64, bool) {
			return bit(u.State.Usable()), true
		}},
	{UplinkActive, "1 if the uplink is in the active set (carries new connections), else 0.",
		func(u api.UplinkStatus) (float64, bool) { return bit(u.Active), true }},
	{UplinkDrained, "1 if an operator drained the uplink, else 0.",
		func(u api.UplinkStatus) (float64, bool) { return bit(u.Drained), true }},
	{UplinkRTT, "Mean round-trip time over the window, of the quorum-th best target.",
		func(u api.UplinkStatus) (float64, bool) { return u.RTT.Seconds(), true }},
	{UplinkLoss, "Probe loss over the window, of the quorum-th best target, 0..1.",
		func(u api.UplinkStatus) (float64, bool) { return u.Loss / 100, true }},
	{UplinkJitter, "Mean deviation of successive RTTs over the window (RFC 3550's |D|), of the quorum-th best target.",
		func(u api.UplinkStatus) (float64, bool) { return u.Jitter.Seconds(), true }},
	{UplinkMOS, "Estimated mean opinion score of a voice call over the uplink (simplified ITU-T G.107 E-model, G.711), 1..4.5.",
		func(u api.UplinkStatus) (float64, bool) { return u.MOS, u.MOS > 0 }},
	{UplinkHoldDown, "How much longer flap damping holds the uplink down; 0 unless held.",
		func(u api.UplinkStatus) (float64, bool) { return u.HoldDown.Seconds(), true }},
	{UplinkConnections, "Tracked connections pinned to the uplink (absent when unknown).",
		func(u api.UplinkStatus) (float64, bool) { return float64(u.Connections), u.Connections >= 0 }},
	{ProbeBytesPerDay, "What the uplink's probes cost on the wire (IP bytes, both ways) at the rate of the last ten minutes, per day.",
		func(u api.UplinkStatus) (float64, bool) { return u.ProbeBytesPerDay, true }},
	{UplinkStateSince, "When the uplink entered its current state, in seconds since the epoch.",
		func(u api.UplinkStatus) (float64, bool) {
			return float64(u.Since.UnixNano()) / float64(time.Second), !u.Since.IsZero()
		}},
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeFast writes the per-uplink and per-target families.
func (m *Metrics) writeFast(e *expo, st api.Status) {
	for _, g := range uplinkGauges {
		e.family(g.name, "gauge", g.help)
		for _, u := range st.Uplinks {
			if v, ok := g.value(u); ok {
				e.sample(g.name, v, "uplink", u.Name)
			}
		}
	}
	e.family(ProbeBytes, "counter", "Bytes the uplink's probes and their replies cost on the wire since uplinkd started (IP packets; a metered uplink's bill).")
	for _, u := range st.Uplinks {
		e.sample(ProbeBytes, float64(u.ProbeBytes), "uplink", u.Name)
	}
	e.family(UplinkState, "gauge", "The uplink's health state, one-hot: 1 for the current state (unknown, up, degraded, down), 0 for the others.")
	for _, u := range st.Uplinks {
		for _, s := range States {
			e.sample(UplinkState, bit(u.State == s), "uplink", u.Name, "state", s.String())
		}
	}
	if st.DNS != nil {
		e.family(DNSServerUp, "gauge", "1 if the server behind a published name passes its checks (or is not judged yet), 0 if it is judged down.")
		for _, n := range st.DNS.Names {
			for _, s := range n.Servers {
				e.sample(DNSServerUp, bit(s.State != "down"), "name", n.Name, "server", s.Server)
			}
		}
		e.family(DNSAnswerSite, "gauge", "1 for each site whose addresses the published name's answer carries now (several sites).")
		for _, n := range st.DNS.Names {
			for _, s := range n.Sites {
				e.sample(DNSAnswerSite, 1, "name", n.Name, "site", s)
			}
		}
		e.family(DNSFallback, "gauge", "1 if the published name answers its fallback: fewer of its servers pass than its quorum.")
		for _, n := range st.DNS.Names {
			if len(n.Servers) > 0 {
				e.sample(DNSFallback, bit(n.Fallback), "name", n.Name)
			}
		}
	}
	if v := st.IPv6; v != nil {
		e.family(PrefixPreferred, "gauge", "1 if the LAN prefix is advertised preferred (its uplink carries new IPv6 connections), 0 if deprecated.")
		for _, p := range v.Prefixes {
			e.sample(PrefixPreferred, bit(p.Preferred), "uplink", p.Uplink, "prefix", p.Prefix)
		}
		e.family(NPTv6Translations, "gauge", "NPTv6 mappings in force: a dead uplink's LAN prefix translated where it leaves by a live one.")
		e.sample(NPTv6Translations, float64(len(v.Translations)))
	}
	e.family(TargetLoss, "gauge", "Probe loss of one target through the uplink over the window, 0..1.")
	for _, u := range st.Uplinks {
		for _, t := range u.Targets {
			e.sample(TargetLoss, t.Loss/100, "uplink", u.Name, "target", t.Address)
		}
	}
	e.family(ProbesTotal, "counter", "Probes sent through an uplink to a target, by result (ok: answered within the timeout; failed: not).")
	m.probes.each(func(targets []*probeCounters) {
		for _, c := range targets {
			e.line(c.okLine, c.ok.Load())
			e.line(c.failedLine, c.failed.Load())
		}
	})
	e.family(TargetRTT, "histogram", "Round-trip time of the answered probes, per uplink and target.")
	m.probes.each(func(targets []*probeCounters) {
		for _, c := range targets {
			// Count from the buckets as read, so that count equals the +Inf bucket even while
			// the loop adds.
			var cum uint64
			for i, prefix := range c.bucketLines {
				cum += c.buckets[i].Load()
				e.line(prefix, cum)
			}
			e.b = append(e.b, c.sumLine...)
			e.b = appendFloat(e.b, float64(c.sumNs.Load())/1e9)
			e.b = append(e.b, '\n')
			e.line(c.countLine, cum)
		}
	})
}

// rttBucketLabels are the le label values, +Inf last.
var rttBucketLabels = func() []string {
	out := make([]string, 0, len(rttBuckets)+1)
	for _, b := range rttBuckets {
		out = append(out, strconv.FormatFloat(b, 'g', -1, 64))
	}
	return append(out, "+Inf")
}()
