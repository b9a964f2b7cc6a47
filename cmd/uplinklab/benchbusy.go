package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// Busy line: isp1's upstream shaped to busyRate with a busyQueue tbf queue, the LAN offering
// a constant-rate UDP stream above it; a healthy line whose probes queue and get tail-dropped.
const (
	busyRate  = 4_000_000 // bits per second
	busyQueue = 300 * time.Millisecond
)

const busyMethod = "busy: isp1's upstream shaped with tbf to 4 Mbit/s, 300 ms queue; a UDP stream from the LAN " +
	"(1200-byte datagrams, one flow) offered at LOAD % of that for the window, from a fresh uplinkd; " +
	"loss10: isp1 drops 5.1 % of its packets either way (10 % round trip) for the window; " +
	"loss19: 10 % either way (19 % round trip, just under max_loss 20 %). " +
	"down: isp1 transitions to down in the window; changes: all isp1 state changes; rtt: isp1's RTT in " +
	"uplinkd's status (mean of the window's answered probes), sampled every 500 ms from 5 s into the window."

type busyReport struct {
	Scenario     string  `json:"scenario"` // busy110, busy140, loss10, loss19
	Config       string  `json:"config"`
	Seconds      float64 `json:"seconds"`
	Down         int     `json:"down_transitions"`
	Changes      int     `json:"state_changes"`
	States       string  `json:"states"` // isp1's states in order
	RTTMedianMS  float64 `json:"rtt_median_ms"`
	RTTMaxMS     float64 `json:"rtt_max_ms"`
	LossMedian   float64 `json:"loss_median_pct"`
	OfferedMbps  float64 `json:"offered_mbps,omitempty"`
	ActiveMoved  int     `json:"active_moved_to_isp2"`
	CPUSeconds   float64 `json:"cpu_s"`
	ErrorMessage string  `json:"error,omitempty"`
}

func cmdBenchBusy(ctx context.Context, args []string) error {
	fs, prefix := newFlags("bench-busy")
	*prefix = ""
	secs := fs.Int("busy-seconds", 60, "how long each busy or lossy window lasts")
	configs := fs.String("configs", "default,tuned", "configs to run (default, tuned)")
	loads := fs.String("loads", "110,140", "offered loads in percent of the shaped rate")
	loss := fs.Bool("loss10", true, "also run the 10 % loss scenario")
	loss19 := fs.Bool("loss19", false, "also run the 19 % loss scenario (just under max_loss; use -busy-seconds 300)")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	jsonPath := fs.String("json", "", "write the JSON report to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secs < 5 || *secs > 600 {
		return fmt.Errorf("-busy-seconds %d: want 5 to 600", *secs)
	}
	path, done, err := rootAndBinary(ctx, *bin)
	if err != nil {
		return err
	}
	defer done()
	lab, err := netlab.New(netlab.Options{Prefix: *prefix, Servers: true})
	if err != nil {
		return err
	}
	defer lab.Close()
	window := time.Duration(*secs) * time.Second
	var reps []busyReport
	for _, cfgName := range strings.Split(*configs, ",") {
		cfg := defaultConfig
		if cfgName == "tuned" {
			cfg = tunedConfig
		} else if cfgName != "default" {
			return fmt.Errorf("-configs: unknown config %q", cfgName)
		}
		var scen []string
		for _, l := range strings.Split(*loads, ",") {
			if l = strings.TrimSpace(l); l != "" { // -loads "": the loss scenario alone
				scen = append(scen, "busy"+l)
			}
		}
		if *loss {
			scen = append(scen, "loss10")
		}
		if *loss19 {
			scen = append(scen, "loss19")
		}
		for _, sc := range scen {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := busyRun(ctx, lab, path, cfg, cfgName, sc, window)
			if err != nil {
				r.ErrorMessage = err.Error()
				fmt.Fprintf(os.Stderr, "bench-busy: %s/%s FAILED: %v\n", sc, cfgName, err)
			} else {
				fmt.Fprintf(os.Stderr, "bench-busy: %s/%s: down %d, changes %d (%s), rtt %.0f/%.0f ms, loss %.0f %%\n",
					sc, cfgName, r.Down, r.Changes, r.States, r.RTTMedianMS, r.RTTMaxMS, r.LossMedian)
			}
			reps = append(reps, r)
		}
	}
	printBusy(os.Stdout, reps)
	return writeJSON(os.Stdout, *jsonPath, struct {
		Method string       `json:"method"`
		Runs   []busyReport `json:"runs"`
	}{busyMethod, reps})
}

// busyRun is one window: a fresh daemon, the fault, the measurement, the fault undone.
func busyRun(ctx context.Context, lab *netlab.Lab, bin string, cfg netlab.DaemonConfig, cfgName, sc string, window time.Duration) (r busyReport, err error) {
	r = busyReport{Scenario: sc, Config: cfgName, Seconds: window.Seconds()}
	d, err := startDaemon(ctx, lab, bin, cfg, 20*time.Second, nil)
	if err != nil {
		return r, err
	}
	defer func() { err = errors.Join(err, d.Stop()) }()
	u0, err := d.Usage()
	if err != nil {
		return r, err
	}
	start := time.Now()
	if strings.HasPrefix(sc, "loss") {
		f, err := netlab.ParseFault(sc)
		if err != nil {
			return r, err
		}
		if err := lab.Break(1, f); err != nil {
			return r, err
		}
		defer func() { err = errors.Join(err, lab.Heal(1)) }()
	} else {
		var pct int
		if _, err := fmt.Sscanf(sc, "busy%d", &pct); err != nil || pct <= 0 || pct > 1000 {
			return r, fmt.Errorf("bad load in %q", sc)
		}
		if err := lab.Shape(1, busyRate, busyQueue); err != nil {
			return r, err
		}
		defer func() { err = errors.Join(err, lab.Unshape(1)) }()
		rate := int64(busyRate) * int64(pct) / 100
		r.OfferedMbps = float64(rate) / 1e6
		bulk, err := lab.StartBulk(rate)
		if err != nil {
			return r, err
		}
		defer bulk.Stop()
	}
	var rtts, losses []float64
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for end := start.Add(window); time.Now().Before(end); { // bounded by the window
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-tick.C:
		}
		if time.Since(start) < 5*time.Second {
			continue
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := d.Status(c)
		cancel()
		if err != nil {
			return r, err
		}
		for _, u := range st.Uplinks {
			if u.Name == "isp1" && u.State != uplink.Down {
				rtts = append(rtts, float64(u.RTT)/float64(time.Millisecond))
				losses = append(losses, u.Loss)
			}
		}
	}
	end := time.Now()
	isp1 := func(ev api.Event) bool { return ev.Kind == api.KindState && ev.Uplink == "isp1" }
	r.Changes = d.Events().Count(start, end, isp1)
	r.Down = d.Events().Count(start, end, func(ev api.Event) bool { return isp1(ev) && ev.To == uplink.Down.String() })
	r.ActiveMoved = d.Events().Count(start, end, netlab.ActiveIs("isp2"))
	var states []string
	for _, ev := range d.Events().All() {
		if isp1(ev) && !ev.Time.Before(start) && !ev.Time.After(end) {
			states = append(states, ev.To)
		}
	}
	r.States = strings.Join(states, "→")
	if r.States == "" {
		r.States = "up throughout"
	}
	if m := medianMax(rtts); m != nil {
		r.RTTMedianMS, r.RTTMaxMS = round(m.Median, 1), round(m.Max, 1)
	}
	if m := medianMax(losses); m != nil {
		r.LossMedian = round(m.Median, 1)
	}
	u1, err := d.Usage()
	if err != nil {
		return r, err
	}
	r.CPUSeconds = round((u1.CPU - u0.CPU).Seconds(), 2)
	return r, nil
}

func printBusy(w io.Writer, reps []busyReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\tconfig\tseconds\tdown\tchanges\tisp1 states\trtt median/max\tloss median\tcpu\n")
	for _, r := range slices.Clone(reps) {
		if r.ErrorMessage != "" {
			fmt.Fprintf(tw, "%s\t%s\t%g\tFAILED: %s\n", r.Scenario, r.Config, r.Seconds, firstLine(r.ErrorMessage))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%g\t%d\t%d\t%s\t%.0f/%.0f ms\t%.0f %%\t%.2f s\n", r.Scenario, r.Config, r.Seconds, r.Down, r.Changes, r.States, r.RTTMedianMS, r.RTTMaxMS, r.LossMedian, r.CPUSeconds)
	}
	tw.Flush()
}
