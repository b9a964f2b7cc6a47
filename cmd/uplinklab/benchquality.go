package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// The quality benchmark (`uplinklab bench -quality`): a voice service with targets, isp1 made
// bad without breaking it (bufferbloat), and where new voice flows and other traffic go.
const qualityMethod = "one fresh lab per run; uplinkd with the shipped defaults (or -tuned) and a voice service (udp to the echo port, uplinks isp1 then isp2, max_rtt 150ms, max_jitter 30ms, max_loss 1 %); " +
	"isp1's upstream shaped to 4 Mbit/s with a 300 ms tbf queue while the LAN offers 5.6 Mbit/s of bulk UDP (bufferbloat: isp1 stays up at ~330 ms RTT). " +
	"A new voice flow is opened every 250 ms. voice_moved_after_s: from the start of the bloat until new voice flows leave via isp2; bulk_moved: another new connection (TCP) left via isp2 or the active set changed during the bloat; " +
	"voice_moves_steady: changes of the voice flows' uplink during -steady of bloat after the first move; voice_back_after_s: from the end of the bloat until new voice flows leave via isp1 again."

type qualityRun struct {
	Moved  float64 `json:"voice_moved_after_s"`
	Bulk   bool    `json:"bulk_moved"`
	Steady int     `json:"voice_moves_steady"`
	Back   float64 `json:"voice_back_after_s"`
}

type qualityReport struct {
	Config       string       `json:"config"`
	Runs         int          `json:"runs"`
	MovedMedian  float64      `json:"voice_moved_after_median_s"`
	MovedWorst   float64      `json:"voice_moved_after_worst_s"`
	BackMedian   float64      `json:"voice_back_after_median_s"`
	BackWorst    float64      `json:"voice_back_after_worst_s"`
	SteadyMoves  int          `json:"voice_moves_steady_total"`
	BulkMovedAny bool         `json:"bulk_moved_any"`
	PerRun       []qualityRun `json:"per_run"`
	Method       string       `json:"method"`
	Cost         *costReport  `json:"cost,omitempty"` // metered backups and idle CPU
}

func runBenchQualityFlags(ctx context.Context, args []string, stdout, progress io.Writer) error {
	fs, _ := newFlags("bench -quality")
	fs.Bool("quality", true, "the quality-steering benchmark")
	jsonOnly := fs.Bool("json", false, "print only the JSON report")
	runs := fs.Int("runs", 3, "runs (a fresh lab each); 0: the cost part alone")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	tuned := fs.Bool("tuned", false, "100 ms rounds instead of the shipped defaults")
	steady := fs.Duration("steady", time.Minute, "how long the bloat lasts after the first move")
	meteredWindow := fs.Duration("metered-window", time.Minute, "how long a metered backup's probe bytes are counted (0 skips the cost part)")
	takeovers := fs.Int("takeovers", 3, "silent failures of isp1 with isp2 metered, and as many with it not metered")
	idle := fs.Bool("idle", true, "also measure idle CPU at 2x3@500ms, 2x3@100ms and 64x8@500ms")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 0 || *runs > 20 || *runs == 0 && *meteredWindow == 0 || *steady < 5*time.Second || *steady > 10*time.Minute || *takeovers < 1 || *takeovers > 20 || *meteredWindow < 0 || *meteredWindow > time.Hour {
		return fmt.Errorf("want -runs 0..20 (0 needs the cost part), -steady 5s..10m, -takeovers 1..20, -metered-window 0..1h")
	}
	path, done, err := rootAndBinary(ctx, *bin)
	if err != nil {
		return err
	}
	defer done()
	cfg, name := defaultConfig, "default"
	if *tuned {
		cfg, name = tunedConfig, "tuned"
	}
	cfg.Extra = fmt.Sprintf("\n[[service]]\nname = \"voice\"\nproto = \"udp\"\nports = [%d]\nuplinks = [\"isp1\", \"isp2\"]\nmax_rtt = \"150ms\"\nmax_jitter = \"30ms\"\nmax_loss = 1\n", netlab.EchoPort)
	rep := qualityReport{Config: name, Runs: *runs, Method: qualityMethod}
	for r := range *runs {
		fmt.Fprintf(progress, "quality run %d/%d (%s)\n", r+1, *runs, name)
		run, err := qualityOnce(ctx, path, cfg, *steady)
		if err != nil {
			return fmt.Errorf("quality run %d: %w", r+1, err)
		}
		fmt.Fprintf(progress, "  voice moved after %.2fs, bulk moved %v, %d moves in steady bloat, back after %.2fs\n", run.Moved, run.Bulk, run.Steady, run.Back)
		rep.PerRun = append(rep.PerRun, run)
		rep.SteadyMoves += run.Steady
		rep.BulkMovedAny = rep.BulkMovedAny || run.Bulk
	}
	var moved, back []float64
	for _, r := range rep.PerRun {
		moved, back = append(moved, r.Moved), append(back, r.Back)
	}
	if m, b := medianMax(moved), medianMax(back); m != nil {
		rep.MovedMedian, rep.MovedWorst, rep.BackMedian, rep.BackWorst = m.Median, m.Max, b.Median, b.Max
	}
	if *meteredWindow > 0 {
		say := func(f string, a ...any) { fmt.Fprintf(progress, "  "+f+"\n", a...) }
		if rep.Cost, err = benchCost(ctx, path, *meteredWindow, *takeovers, *idle, say); err != nil {
			return fmt.Errorf("cost: %w", err)
		}
	}
	if !*jsonOnly && *runs > 0 {
		fmt.Fprintf(stdout, "quality (%s, %d runs): voice moved %.2f / %.2f s after the bloat began (median / worst), bulk moved: %v, %d moves in %s of steady bloat, back %.2f / %.2f s after it ended\n",
			name, *runs, rep.MovedMedian, rep.MovedWorst, rep.BulkMovedAny, rep.SteadyMoves, *steady, rep.BackMedian, rep.BackWorst)
	}
	if !*jsonOnly {
		if c := rep.Cost; c != nil {
			tm, tp := medianMax(c.TakeoverMetered), medianMax(c.TakeoverPlain)
			fmt.Fprintf(stdout, "metered backup: %.2f MB of probes a day (%.2f MB counted at the ISP); takeover %.2f / %.2f s metered vs %.2f / %.2f s not (median / worst); idle CPU %.2f %% (2x3@500ms), %.2f %% (2x3@100ms), %.2f %% (64x8@500ms)\n",
				c.MeteredBytesPerDay/1e6, c.MeteredCountedPerDay/1e6, tm.Median, tm.Max, tp.Median, tp.Max, c.IdleCPU2x3, c.IdleCPU2x3Fast, c.IdleCPU64x8)
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}

func qualityOnce(ctx context.Context, bin string, cfg netlab.DaemonConfig, steady time.Duration) (run qualityRun, err error) {
	lab, err := netlab.New(netlab.Options{Servers: true})
	if err != nil {
		return run, err
	}
	defer lab.Close()
	d, err := startDaemon(ctx, lab, bin, cfg, 20*time.Second, nil)
	if err != nil {
		return run, err
	}
	defer d.Stop()
	voiceVia := func() string {
		by, _, err := lab.SpreadUDP(netlab.RoleLAN, 1)
		if err != nil {
			return ""
		}
		for src := range by {
			return ispOf(src)
		}
		return ""
	}
	until := func(want string, from time.Time, limit time.Duration) (float64, error) {
		if s, ok := pollUntil(ctx, from, limit, 250*time.Millisecond, func() bool { return voiceVia() == want }); ok {
			return s, nil
		}
		return 0, fmt.Errorf("new voice flows did not leave via %s within %s", want, limit)
	}
	if _, err := until("isp1", time.Now(), 10*time.Second); err != nil {
		return run, err
	}
	bulkMoved := func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		src, err := lab.CheckTCP(c, netlab.RoleLAN, netip.AddrPortFrom(netlab.Server4, netlab.TCPPort))
		host, _, _ := strings.Cut(src, ":")
		st, serr := d.Status(ctx)
		return err == nil && ispOf(host) == "isp2" || serr == nil && !slices.Equal(st.Active, []string{"isp1"})
	}
	if err := lab.Shape(1, 4_000_000, 300*time.Millisecond); err != nil {
		return run, err
	}
	bulk, err := lab.StartBulk(5_600_000)
	if err != nil {
		return run, err
	}
	start := time.Now()
	if run.Moved, err = until("isp2", start, 60*time.Second); err != nil {
		bulk.Stop()
		return run, err
	}
	run.Bulk = bulkMoved()
	last := "isp2"
	for end := time.Now().Add(steady); time.Now().Before(end); sleepCtx(ctx, time.Second) {
		if v := voiceVia(); v != "" && v != last {
			run.Steady++
			last = v
		}
	}
	run.Bulk = run.Bulk || bulkMoved()
	bulk.Stop()
	if err := lab.Unshape(1); err != nil {
		return run, err
	}
	run.Back, err = until("isp1", time.Now(), 2*time.Minute)
	return run, err
}
