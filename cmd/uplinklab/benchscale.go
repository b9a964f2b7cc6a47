package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

const scaleMethod = "scale: N uplinks (veth pairs) from a gateway namespace to one ISP namespace holding the M " +
	"targets; uplinkd (pin_connections off, info logs) probes every target through every uplink with icmp; " +
	"after every uplink is up and 3 s more, utime+stime over the window / window = cpu_pct of one core; " +
	"rss and threads from /proc/PID/status at the end."

type scaleReport struct {
	Uplinks    int     `json:"uplinks"`
	Targets    int     `json:"targets"`
	Interval   string  `json:"interval"`
	Seconds    float64 `json:"seconds"`
	CPUPercent float64 `json:"cpu_pct"`
	RSSKiB     int64   `json:"rss_kib"`
	VmHWMKiB   int64   `json:"vmhwm_kib"`
	Threads    int     `json:"threads"`
	Error      string  `json:"error,omitempty"`
}

func cmdBenchScale(ctx context.Context, args []string) error {
	fs, _ := newFlags("bench-scale")
	sizes := fs.String("sizes", "2x3@500ms,2x3@100ms,16x8@500ms,8x8@100ms,64x8@500ms", "comma-separated NxM@INTERVAL")
	window := fs.Duration("window", 30*time.Second, "measurement window per size")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	jsonPath := fs.String("json", "", "write the JSON report to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *window < time.Second || *window > 10*time.Minute {
		return fmt.Errorf("-window %s: want 1s to 10m", *window)
	}
	path, done, err := rootAndBinary(ctx, *bin)
	if err != nil {
		return err
	}
	defer done()
	tmp, err := os.MkdirTemp("", "uplinklab-scale-") // each run's config and socket
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var reps []scaleReport
	for i, size := range strings.Split(*sizes, ",") {
		var n, m int
		var ival string
		nm, iv, ok := strings.Cut(strings.TrimSpace(size), "@")
		if _, err := fmt.Sscanf(nm, "%dx%d", &n, &m); err != nil || !ok {
			return fmt.Errorf("-sizes %q: want NxM@INTERVAL", size)
		}
		ival = iv
		interval, err := time.ParseDuration(ival)
		if err != nil {
			return fmt.Errorf("-sizes %q: %w", size, err)
		}
		r, err := scaleRun(ctx, path, tmp, fmt.Sprintf("ul%ds%d", os.Getpid()%100000, i), n, m, interval, *window)
		if err != nil {
			r.Error = err.Error()
			fmt.Fprintf(os.Stderr, "bench-scale: %s FAILED: %v\n", size, err)
		} else {
			fmt.Fprintf(os.Stderr, "bench-scale: %s: %.2f %% CPU, RSS %d KiB, %d threads\n", size, r.CPUPercent, r.RSSKiB, r.Threads)
		}
		reps = append(reps, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	printScale(os.Stdout, reps)
	return writeJSON(os.Stdout, *jsonPath, struct {
		Method string        `json:"method"`
		Runs   []scaleReport `json:"runs"`
	}{scaleMethod, reps})
}

func scaleRun(ctx context.Context, bin, tmp, prefix string, n, m int, interval, window time.Duration) (r scaleReport, err error) {
	r = scaleReport{Uplinks: n, Targets: m, Interval: interval.String()}
	lab, err := netlab.NewScale(prefix, n, m)
	if err != nil {
		return r, err
	}
	defer func() {
		if cerr := lab.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	dir, err := os.MkdirTemp(tmp, "d")
	if err != nil {
		return r, err
	}
	sock := filepath.Join(dir, "uplinkd.sock")
	timeout := 2 * interval
	if interval >= 500*time.Millisecond {
		timeout = time.Second
	}
	conf := filepath.Join(dir, "uplinkd.toml")
	if err := os.WriteFile(conf, []byte(lab.DaemonConfig(sock, interval.String(), timeout.String())), 0o644); err != nil {
		return r, err
	}
	cmd := exec.Command("ip", "netns", "exec", lab.GWNS(), bin, "--config", conf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return r, err
	}
	pid := cmd.Process.Pid        // ip netns exec execs uplinkd: this is its PID
	exited := make(chan struct{}) // closed when uplinkd has ended; waitErr is then valid
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	client := control.NewClient(sock)
	if err := waitAllUp(ctx, client, n, 60*time.Second, exited, func() string { return fmt.Sprintf("%v: %s", waitErr, lastN(out.String(), 10)) }); err != nil {
		return r, err
	}
	w, err := measureCPU(ctx, pid, 3*time.Second, window)
	if err != nil {
		return r, err
	}
	r.Seconds, r.CPUPercent, r.VmHWMKiB = w.Seconds, w.CPUPct, w.End.VmHWM/1024
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return r, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			r.RSSKiB, _ = strconv.ParseInt(f[0], 10, 64)
		case "Threads":
			r.Threads, _ = strconv.Atoi(f[0])
		}
	}
	return r, nil
}

func lastN(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func printScale(w io.Writer, reps []scaleReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "uplinks×targets\tinterval\tseconds\tcpu (one core)\trss\tvmhwm\tthreads\n")
	for _, r := range reps {
		if r.Error != "" {
			fmt.Fprintf(tw, "%d×%d\t%s\tFAILED: %s\n", r.Uplinks, r.Targets, r.Interval, firstLine(r.Error))
			continue
		}
		fmt.Fprintf(tw, "%d×%d\t%s\t%g\t%.2f %%\t%s\t%s\t%d\n", r.Uplinks, r.Targets, r.Interval, r.Seconds, r.CPUPercent, fmtMiB(r.RSSKiB), fmtMiB(r.VmHWMKiB), r.Threads)
	}
	tw.Flush()
}
