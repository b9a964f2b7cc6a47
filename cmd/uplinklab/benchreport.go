package main

// The failover benchmark's report: medians and worst cases, the table and the JSON.

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// The JSON report.
type benchReport struct {
	Started    time.Time        `json:"started"`
	Kernel     string           `json:"kernel"`
	CPUs       int              `json:"cpus"`
	Runs       int              `json:"runs"`
	Method     string           `json:"method"`
	Scenarios  []scenarioReport `json:"scenarios"`
	Idle       []idleReport     `json:"idle"`
	Drain      []drainReport    `json:"drain,omitempty"`
	References []string         `json:"references"`
}

type scenarioReport struct {
	Fault       string   `json:"fault"`
	NAT         string   `json:"nat"`
	Config      string   `json:"config"`
	Interval    string   `json:"interval"`
	Timeout     string   `json:"timeout"`
	DownAfter   int      `json:"down_after"`
	UpAfter     int      `json:"up_after"`
	Runs        int      `json:"runs"` // successful runs the figures are taken over
	Errors      []string `json:"errors,omitempty"`
	RestoreFlow *stat    `json:"restore_flow,omitempty"`
	RestoreNew  *stat    `json:"restore_new,omitempty"`
	Failback    *stat    `json:"failback,omitempty"`
	FailbackTCP *kept    `json:"failback_tcp,omitempty"` // did the connection opened on isp2 outlive the failback
	Switch      *stat    `json:"switch,omitempty"`
	Moved       *stat    `json:"moved,omitempty"`
	Flaps       *stat    `json:"flaps,omitempty"`         // counts, not milliseconds
	FlowLoss    *stat    `json:"flow_loss_pct,omitempty"` // loss30: the long-lived flow's loss after the move, percent
	CPU         *stat    `json:"cpu,omitempty"`           // uplinkd's CPU time over the whole run
	VmHWMKiB    int64    `json:"vmhwm_kib,omitempty"`
	Target      string   `json:"target"`
}

// stat is a median and a maximum; durations in milliseconds.
type stat struct {
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

type idleReport struct {
	Config     string  `json:"config"`
	Interval   string  `json:"interval"`
	Seconds    float64 `json:"seconds"`
	CPUPercent float64 `json:"cpu_pct"` // of one core
	VmHWMKiB   int64   `json:"vmhwm_kib"`
	Target     string  `json:"target"`
}

var references = []string{
	"dpinger, 100 ms probes, 2 s window: 0.75–0.85 s in a lab like this",
	"dpinger with pfSense's default gateway-monitoring settings: 14.9 s",
	"OpenWrt mwan3 defaults: about a minute",
}

// summarize turns a scenario's runs into medians and maxima.
func summarize(s scenario, runs []runResult, errs []string) scenarioReport {
	cfg := s.daemonConfig()
	r := scenarioReport{
		Fault: s.Fault.String(), NAT: s.NAT, Config: s.Config, Interval: cfg.Interval.String(), Timeout: cfg.Timeout.String(),
		DownAfter: cfg.DownAfter, UpAfter: cfg.UpAfter, Runs: len(runs), Errors: errs, Target: s.target(),
	}
	if s.NAT == netlab.NATSNAT {
		r.Target += "; as fast as masquerade"
	}
	ms := func(get func(runResult) time.Duration) *stat { return msStat(runs, get) }
	r.RestoreFlow = ms(func(x runResult) time.Duration { return x.RestoreFlow })
	r.RestoreNew = ms(func(x runResult) time.Duration { return x.RestoreNew })
	r.Failback = ms(func(x runResult) time.Duration { return x.Failback })
	r.Switch = ms(func(x runResult) time.Duration { return x.Switch })
	r.Moved = ms(func(x runResult) time.Duration { return x.Moved })
	r.CPU = ms(func(x runResult) time.Duration { return x.Usage.CPU })
	r.FailbackTCP = keptOf(runs, func(x runResult) string { return x.FailbackTCP })
	var flaps, loss []float64
	for _, x := range runs {
		flaps = append(flaps, float64(x.Flaps))
		loss = append(loss, x.FlowLoss)
		r.VmHWMKiB = max(r.VmHWMKiB, x.Usage.VmHWM/1024)
	}
	if s.Fault == netlab.Loss30 {
		r.Flaps, r.FlowLoss = medianMax(flaps), medianMax(loss)
	}
	return r
}

// msStat is the median and maximum in milliseconds of a duration the runs measured (negative:
// not measured); nil when none did.
func msStat[R any](runs []R, get func(R) time.Duration) *stat {
	var v []float64
	for _, x := range runs {
		if d := get(x); d >= 0 {
			v = append(v, float64(d)/float64(time.Millisecond))
		}
	}
	return medianMax(v)
}

// medianMax returns nil for no values. The median of an even count is the mean of the middle two.
func medianMax(v []float64) *stat {
	if len(v) == 0 {
		return nil
	}
	v = slices.Clone(v)
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return &stat{Median: round(m, 3), Max: round(v[len(v)-1], 3)}
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if x < 0 {
		return -float64(int64(-x*p+0.5)) / p
	}
	return float64(int64(x*p+0.5)) / p
}

// printTable prints the report for a person: seconds as median/max.
func printTable(w io.Writer, rep benchReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "fault\tnat\tconfig\truns\trestore_flow\trestore_new\tfailback\tfailback_tcp\tswitch\tmoved\tflaps\tflow_loss\tcpu\tvmhwm\ttarget\n")
	for _, s := range rep.Scenarios {
		flaps, loss := "-", "-"
		if s.Flaps != nil {
			flaps = fmt.Sprintf("%g/%g", s.Flaps.Median, s.Flaps.Max)
		}
		if s.FlowLoss != nil {
			loss = fmt.Sprintf("%.0f/%.0f %%", s.FlowLoss.Median, s.FlowLoss.Max)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			s.Fault, s.NAT, s.Config, s.Runs, fmtSecs(s.RestoreFlow), fmtSecs(s.RestoreNew), fmtSecs(s.Failback), s.FailbackTCP,
			fmtMS(s.Switch), fmtSecs(s.Moved), flaps, loss, fmtSecs(s.CPU), fmtMiB(s.VmHWMKiB), s.Target)
	}
	tw.Flush()
	fmt.Fprintln(w, "durations: median/max seconds (switch: milliseconds); failback_tcp: runs in which a TCP connection opened on isp2 still answered through isp2 after the failback; flow_loss: loss30 only, the running flow's loss after the move; cpu: uplinkd's CPU time per run; vmhwm: peak RSS")
	for _, s := range rep.Scenarios {
		for _, e := range s.Errors {
			fmt.Fprintf(w, "FAILED %s/%s/%s: %s\n", s.Fault, s.NAT, s.Config, firstLine(e))
		}
	}
	printDrainTable(w, rep.Drain)
	if len(rep.Idle) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "idle\tinterval\tseconds\tcpu (one core)\tvmhwm\ttarget\n")
		for _, r := range rep.Idle {
			fmt.Fprintf(tw, "%s\t%s\t%g\t%.2f %%\t%s\t%s\n", r.Config, r.Interval, r.Seconds, r.CPUPercent, fmtMiB(r.VmHWMKiB), r.Target)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "for comparison:")
	for _, r := range rep.References {
		fmt.Fprintln(w, "  "+r)
	}
}

func fmtSecs(s *stat) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f/%.2f", s.Median/1000, s.Max/1000)
}

func fmtMS(s *stat) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f ms", s.Median, s.Max)
}

func fmtMiB(kib int64) string {
	if kib <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// kernelRelease is `uname -r`, for the report.
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
