package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// bench-hostile measures uplinkd under hostile load against the targets of issue #13: a status
// flood with thousands of connections, a process fighting over a rule, hundreds of uplinks with
// pinning, a long flapping soak, and a netlink event storm. Each scenario prints a short line
// for a person and one JSON line with its figures. The scenarios live in benchhostile_*.go.

// hostileScenarios in the order they run.
var hostileScenarios = []string{"status_flood", "fight", "many_uplinks", "soak", "monitor_enobufs"}

// hostileOptions are the knobs of every scenario (flags; the tests set tiny ones).
type hostileOptions struct {
	Runs        int           // status_flood: runs with and without the flood
	Readers     int           // status_flood: concurrent non-root status readers
	Conns       int           // status_flood: TCP connections held open through the gateway
	FloodWindow time.Duration // status_flood: flood before the cut
	Fight       time.Duration // fight: how long the rule is deleted every FightEvery
	FightEvery  time.Duration
	Sizes       []scaleSize   // many_uplinks
	ScaleWindow time.Duration // many_uplinks: CPU window once every uplink is up
	Flaps       int           // soak
	Idle        time.Duration // soak: idle period after the flaps
	StormRoutes int           // monitor_enobufs: routes added and deleted
}

type scaleSize struct{ Uplinks, Targets int }

func (s scaleSize) String() string { return fmt.Sprintf("%dx%d", s.Uplinks, s.Targets) }

func parseSizes(v string) ([]scaleSize, error) {
	var out []scaleSize
	for f := range strings.SplitSeq(v, ",") {
		var s scaleSize
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%dx%d", &s.Uplinks, &s.Targets); err != nil || s.Uplinks < 1 || s.Uplinks > 250 || s.Targets < 1 || s.Targets > 32 {
			return nil, fmt.Errorf("-sizes %q: want NxM with N in 1..250 and M in 1..32", f)
		}
		out = append(out, s)
	}
	return out, nil
}

func cmdBenchHostile(ctx context.Context, args []string) error {
	fs, _ := newFlags("bench-hostile")
	only := fs.String("only", strings.Join(hostileScenarios, ","), "comma-separated scenarios to run")
	var o hostileOptions
	fs.IntVar(&o.Runs, "runs", 3, "status_flood: runs (each with a fresh uplinkd, flood and baseline)")
	fs.IntVar(&o.Readers, "readers", 50, "status_flood: concurrent non-root readers of GET /v1/status")
	fs.IntVar(&o.Conns, "conns", 5000, "status_flood: TCP connections from the LAN held open through the gateway")
	fs.DurationVar(&o.FloodWindow, "flood-window", 10*time.Second, "status_flood: flood before isp1 is cut")
	fs.DurationVar(&o.Fight, "fight", 60*time.Second, "fight: how long rule pref 1040 is deleted")
	fs.DurationVar(&o.FightEvery, "fight-every", 10*time.Millisecond, "fight: delete the rule this often")
	sizes := fs.String("sizes", "63x8,250x2", "many_uplinks: comma-separated UPLINKSxTARGETS")
	fs.DurationVar(&o.ScaleWindow, "scale-window", 30*time.Second, "many_uplinks: CPU window once every uplink is up")
	fs.IntVar(&o.Flaps, "flaps", 200, "soak: flaps of isp1 (carrier loss and silent failure alternately)")
	fs.DurationVar(&o.Idle, "idle", 60*time.Second, "soak: idle period after the flaps")
	fs.IntVar(&o.StormRoutes, "storm", 20000, "monitor_enobufs: routes added and then deleted in a foreign table")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	jsonPath := fs.String("json", "", "also write the JSON lines to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.Sizes, err = parseSizes(*sizes); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	var run []string
	for s := range strings.SplitSeq(*only, ",") {
		if s = strings.TrimSpace(s); !slices.Contains(hostileScenarios, s) {
			return fmt.Errorf("-only: unknown scenario %q (want %s)", s, strings.Join(hostileScenarios, ", "))
		}
		run = append(run, s)
	}
	if err := needRoot(); err != nil {
		return err
	}
	path, done, err := uplinkdBinary(ctx, *bin, func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
	if err != nil {
		return err
	}
	defer done()
	h := &hostile{bin: path, opt: o, out: os.Stdout, progress: os.Stderr}
	failed := 0
	for _, s := range run {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := h.scenario(ctx, s); err != nil {
			failed++
		}
	}
	if *jsonPath != "" {
		if err := os.WriteFile(*jsonPath, h.jsonLines.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d scenarios failed (see their error fields)", failed, len(run))
	}
	return nil
}

func (o hostileOptions) check() error {
	switch {
	case o.Runs < 1 || o.Runs > 20:
		return fmt.Errorf("-runs %d: want 1 to 20", o.Runs)
	case o.Readers < 0 || o.Readers > 60:
		return fmt.Errorf("-readers %d: want 0 to 60 (the daemon admits 64 non-root connections)", o.Readers)
	case o.Conns < 0 || o.Conns > 9000:
		return fmt.Errorf("-conns %d: want 0 to 9000 (both ends live in this process)", o.Conns)
	case o.FloodWindow < time.Second || o.FloodWindow > 10*time.Minute:
		return fmt.Errorf("-flood-window %s: want 1s to 10m", o.FloodWindow)
	case o.Fight < time.Second || o.Fight > time.Hour:
		return fmt.Errorf("-fight %s: want 1s to 1h", o.Fight)
	case o.FightEvery < time.Millisecond || o.FightEvery > time.Second:
		return fmt.Errorf("-fight-every %s: want 1ms to 1s", o.FightEvery)
	case o.ScaleWindow < time.Second || o.ScaleWindow > 10*time.Minute:
		return fmt.Errorf("-scale-window %s: want 1s to 10m", o.ScaleWindow)
	case o.Flaps < 1 || o.Flaps > 100000:
		return fmt.Errorf("-flaps %d: want 1 to 100000", o.Flaps)
	case o.Idle < 0 || o.Idle > 24*time.Hour:
		return fmt.Errorf("-idle %s: want 0 to 24h", o.Idle)
	case o.StormRoutes < 1 || o.StormRoutes > 60000:
		return fmt.Errorf("-storm %d: want 1 to 60000", o.StormRoutes)
	}
	return nil
}

// hostile runs the scenarios and writes their lines.
type hostile struct {
	bin      string
	opt      hostileOptions
	out      io.Writer // the human line and the JSON line of each scenario
	progress io.Writer // what is going on, for a person watching

	jsonLines bytes.Buffer
}

// scenario runs one scenario and prints its two lines; the JSON line carries the error, if any.
func (h *hostile) scenario(ctx context.Context, name string) error {
	var rep hostileReport
	var err error
	switch name {
	case "status_flood":
		rep, err = h.flood(ctx)
	case "fight":
		rep, err = h.fight(ctx)
	case "many_uplinks":
		rep, err = h.manyUplinks(ctx)
	case "soak":
		rep, err = h.soak(ctx)
	case "monitor_enobufs":
		rep, err = h.enobufs(ctx)
	default:
		return fmt.Errorf("unknown scenario %q", name)
	}
	if rep == nil {
		rep = &errorReport{}
	}
	if err != nil {
		rep.setError(err)
	}
	js, jerr := json.Marshal(rep)
	if jerr != nil {
		return jerr
	}
	human := rep.human()
	if err != nil {
		human = fmt.Sprintf("FAILED: %s", firstLine(err.Error()))
	}
	fmt.Fprintf(h.out, "%s: %s\n%s\n", name, human, js)
	h.jsonLines.Write(append(js, '\n'))
	return err
}

func (h *hostile) logf(format string, args ...any) {
	fmt.Fprintf(h.progress, "bench-hostile: "+format+"\n", args...)
}

// prefix is a fresh lab prefix: namespaces of parallel runs and earlier crashes never clash.
func (h *hostile) prefix() string {
	return fmt.Sprintf("uh%x-%d", os.Getpid(), hostileSeq.Add(1))
}

var hostileSeq atomic.Int64

// hostileReport is what each scenario returns: JSON-encodable, with a line for a person.
type hostileReport interface {
	human() string
	setError(error)
}

// reportError is embedded in every report: its error, if the scenario failed.
type reportError struct {
	Error string `json:"error,omitempty"`
}

func (r *reportError) setError(err error) { r.Error = err.Error() }

type errorReport struct{ reportError }

func (*errorReport) human() string { return "" }

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countLines counts the lines of out that contain sub; first holds up to max of them.
func countLines(out, sub string, max int) (n int, first []string) {
	for line := range strings.Lines(out) {
		if strings.Contains(line, sub) {
			n++
			if len(first) < max {
				first = append(first, strings.TrimSpace(line))
			}
		}
	}
	return n, first
}

func kib(bytes int64) int64 { return bytes / 1024 }

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }

// percentile of sorted values (nearest rank); 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func yesNo(b bool) string {
	if b {
		return "met"
	}
	return "NOT met"
}

// labDaemon builds a lab of its own and starts uplinkd with cfg in it. done stops the daemon,
// joining its error into *err, and removes the lab.
func (h *hostile) labDaemon(ctx context.Context, cfg netlab.DaemonConfig) (lab *netlab.Lab, d *netlab.Daemon, done func(err *error), err error) {
	lab, err = netlab.New(netlab.Options{Prefix: h.prefix()})
	if err != nil {
		return nil, nil, nil, err
	}
	if d, err = startDaemon(ctx, lab, h.bin, cfg, 30*time.Second, nil); err != nil {
		lab.Close()
		return nil, nil, nil, err
	}
	return lab, d, func(err *error) { *err = errors.Join(*err, d.Stop()); lab.Close() }, nil
}
