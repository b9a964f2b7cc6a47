package main

// An SVG picture of one scenario: a lane per uplink with its state, a lane with the active
// uplinks, a lane with the LAN flow's blackouts, and the probe RTT of each uplink below. Written
// by hand with the standard library: a few rectangles, lines and text.

import (
	"context"
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// rttSample is one uplink's RTT as the daemon's status reported it at a time.
type rttSample struct {
	At  time.Time
	RTT time.Duration
}

// timelineData is what a picture shows.
type timelineData struct {
	Title      string
	Start, End time.Time
	Marks      []timeMark // the cut, the heal
	Uplinks    []string
	Initial    map[string]uplink.State // each uplink's state at Start
	Active     []string                // the active uplinks at Start
	Events     []api.Event             // state and active events, in order
	Outages    []netlab.Outage
	RTT        map[string][]rttSample
}

type timeMark struct {
	At    time.Time
	Label string
}

var stateColors = map[string]string{"unknown": "#bbbbbb", "up": "#2ca02c", "degraded": "#ff9f1c", "down": "#d62728"}

const (
	svgWidth   = 960
	labelWidth = 110
	laneHeight = 26
	laneGap    = 8
	rttHeight  = 150
)

// writeTimelineSVG draws d.
func writeTimelineSVG(w io.Writer, d timelineData) error {
	if !d.End.After(d.Start) {
		return fmt.Errorf("timeline %q: end %s is not after start %s", d.Title, d.End, d.Start)
	}
	plotW := float64(svgWidth - labelWidth - 20)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(d.Start)) / float64(d.End.Sub(d.Start))
		return labelWidth + plotW*min(1, max(0, f))
	}
	var b strings.Builder
	lanes := len(d.Uplinks) + 2
	top := 40
	rttTop := top + lanes*(laneHeight+laneGap) + 20
	height := rttTop + rttHeight + 50
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", esc(d.Title))

	lane := func(i int, id, label string) int {
		y := top + i*(laneHeight+laneGap)
		fmt.Fprintf(&b, `<g id="%s"><text x="10" y="%d">%s</text>`, esc(id), y+laneHeight/2+4, esc(label))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#f4f4f4"/>`, labelWidth, y, plotW, laneHeight)
		return y
	}
	// One lane per uplink: its state over time.
	for i, name := range d.Uplinks {
		y := lane(i, "lane-"+name, name)
		state, since := d.Initial[name].String(), d.Start
		seg := func(until time.Time) {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`,
				x(since), y, max(0.5, x(until)-x(since)), laneHeight, stateColors[state], esc(name+": "+state))
		}
		for _, ev := range d.Events {
			if ev.Kind != api.KindState || ev.Uplink != name || ev.Time.Before(d.Start) || ev.Time.After(d.End) {
				continue
			}
			seg(ev.Time)
			state, since = ev.To, ev.Time
		}
		seg(d.End)
		b.WriteString("</g>\n")
	}
	// The active uplinks.
	y := lane(len(d.Uplinks), "lane-active", "active")
	active, since := strings.Join(d.Active, ","), d.Start
	activeSeg := func(until time.Time) {
		if active == "" {
			return
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#1f77b4" fill-opacity="0.35"/>`, x(since), y, max(0.5, x(until)-x(since)), laneHeight)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`, x(since)+4, y+laneHeight/2+4, esc(active))
	}
	for _, ev := range d.Events {
		if ev.Kind != api.KindActive || ev.Time.After(d.End) {
			continue
		}
		if ev.Time.Before(d.Start) {
			active = strings.Join(ev.Active, ",")
			continue
		}
		activeSeg(ev.Time)
		active, since = strings.Join(ev.Active, ","), ev.Time
	}
	activeSeg(d.End)
	b.WriteString("</g>\n")
	// The LAN flow: black where datagrams went unanswered.
	y = lane(len(d.Uplinks)+1, "lane-flow", "LAN flow")
	for _, o := range d.Outages {
		if o.End.Before(d.Start) || o.Start.After(d.End) {
			continue
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="black"><title>blackout %s, %d datagrams lost</title></rect>`,
			x(o.Start), y, max(1, x(o.End)-x(o.Start)), laneHeight, o.Duration().Round(time.Millisecond), o.Lost)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11">%s</text>`, x(o.End)+4, y+laneHeight/2+4, o.Duration().Round(time.Millisecond))
	}
	b.WriteString("</g>\n")
	// Probe RTT per uplink.
	var maxRTT time.Duration
	for _, s := range d.RTT {
		for _, p := range s {
			maxRTT = max(maxRTT, p.RTT)
		}
	}
	maxRTT = max(maxRTT*6/5, 100*time.Microsecond) // headroom above the highest
	fmt.Fprintf(&b, `<g id="rtt"><text x="10" y="%d">probe RTT</text>`, rttTop+12)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="none" stroke="#cccccc"/>`, labelWidth, rttTop, plotW, rttHeight)
	fmt.Fprintf(&b, `<text x="10" y="%d" font-size="11">%s</text>`, rttTop+28, maxRTT.Round(100*time.Microsecond))
	palette := []string{"#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf"}
	for i, name := range d.Uplinks {
		var pts []string
		for _, p := range d.RTT[name] {
			if p.At.Before(d.Start) || p.At.After(d.End) || p.RTT <= 0 {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.At), float64(rttTop+rttHeight)-float64(rttHeight)*float64(p.RTT)/float64(maxRTT)))
		}
		color := palette[i%len(palette)]
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, color, strings.Join(pts, " "))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s" font-size="11">%s</text>`, 10, rttTop+48+i*14, color, esc(name))
	}
	b.WriteString("</g>\n")
	// Marks (the cut, the heal) and the time axis.
	bottom := rttTop + rttHeight
	for _, m := range d.Marks {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-dasharray="4 3"/>`, x(m.At), top-6, x(m.At), bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11">%s</text>`, x(m.At)+3, top-8, esc(m.Label))
	}
	span := d.End.Sub(d.Start)
	step := time.Second
	for span/step > 12 {
		step *= 2
	}
	for t := time.Duration(0); t <= span; t += step {
		at := d.Start.Add(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999999"/><text x="%.1f" y="%d" font-size="11" text-anchor="middle">%gs</text>`,
			x(at), bottom, x(at), bottom+5, x(at), bottom+18, t.Seconds())
	}
	// A legend of the states.
	lx := labelWidth
	for _, s := range []string{"up", "degraded", "down", "unknown"} {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`, lx, bottom+28, stateColors[s], lx+16, bottom+38, s)
		lx += 90
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="black"/><text x="%d" y="%d" font-size="11">LAN flow blackout</text>`, lx, bottom+28, lx+16, bottom+38)
	b.WriteString("\n</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func esc(s string) string { return html.EscapeString(s) }

// rttRecorder polls a daemon's status for the uplinks' RTT until stopped.
type rttRecorder struct {
	mu      sync.Mutex
	samples map[string][]rttSample
	initial map[string]uplink.State
	active  []string
	stop    context.CancelFunc
	done    chan struct{}
}

// recordRTT polls d every interval (a bounded loop: it ends with ctx or stop).
func recordRTT(ctx context.Context, d *netlab.Daemon, interval time.Duration) *rttRecorder {
	ctx, cancel := context.WithCancel(ctx)
	r := &rttRecorder{samples: map[string][]rttSample{}, stop: cancel, done: make(chan struct{})}
	if st, err := d.Status(ctx); err == nil {
		r.initial, r.active = map[string]uplink.State{}, st.Active
		for _, u := range st.Uplinks {
			r.initial[u.Name] = u.State
		}
	}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			st, err := d.Status(ctx)
			if err != nil {
				continue
			}
			now := time.Now()
			r.mu.Lock()
			for _, u := range st.Uplinks {
				r.samples[u.Name] = append(r.samples[u.Name], rttSample{now, u.RTT})
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// finish stops the polling and returns what it saw.
func (r *rttRecorder) finish() (map[string][]rttSample, map[string]uplink.State, []string) {
	r.stop()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.samples, r.initial, r.active
}

// timelineEvents keeps the state and active events of a daemon's log.
func timelineEvents(all []api.Event) []api.Event {
	return slices.DeleteFunc(slices.Clone(all), func(ev api.Event) bool {
		return ev.Kind != api.KindState && ev.Kind != api.KindActive
	})
}
