package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

// many_uplinks: the scale lab (N veth uplinks to one ISP namespace holding M targets) with
// connection pinning ON, so the nftables table has a pin chain per uplink and every change of
// it is one big batch: no ERROR in the log, and the table must hold every uplink's chain.

const manyMethod = "many_uplinks: scale lab, N uplinks × M icmp targets, every uplink in tier 1, pin_connections on, " +
	"500 ms rounds (1 s timeout), info logs; up_within = start → every uplink up (at most 120 s); then 3 s and a " +
	"SCALE-WINDOW CPU window (utime+stime / window); rss/threads from /proc at the end; errors = 'level=ERROR' lines " +
	"in the whole log; pin_chains = 'chain pin_N' in `nft list table inet uplinkd` in the gateway namespace."

type manyRun struct {
	Uplinks     int      `json:"uplinks"`
	Targets     int      `json:"targets"`
	Started     bool     `json:"started"` // every uplink up
	UpWithinS   float64  `json:"up_within_s"`
	Errors      int      `json:"error_lines"`
	FirstErrors []string `json:"first_errors,omitempty"`
	PinChains   int      `json:"pin_chains"`
	Pinned      bool     `json:"pinning_applied"` // one pin chain per uplink
	WindowS     float64  `json:"window_s"`
	CPUPct      float64  `json:"cpu_pct"`
	RSSKiB      int64    `json:"rss_kib"`
	VmHWMKiB    int64    `json:"vmhwm_kib"`
	Threads     int      `json:"threads"`
	Error       string   `json:"error,omitempty"`
}

type manyReport struct {
	reportError
	Scenario string    `json:"scenario"`
	Runs     []manyRun `json:"sizes"`
	Method   string    `json:"method"`
}

func (r *manyReport) human() string {
	s := ""
	for i, m := range r.Runs {
		if i > 0 {
			s += "; "
		}
		if m.Error != "" && !m.Started {
			s += fmt.Sprintf("%d×%d FAILED: %s", m.Uplinks, m.Targets, firstLine(m.Error))
			continue
		}
		s += fmt.Sprintf("%d×%d: all up in %.1f s, %d ERROR lines, %d/%d pin chains (%s), %.2f %% CPU, RSS %s, VmHWM %s, %d threads",
			m.Uplinks, m.Targets, m.UpWithinS, m.Errors, m.PinChains, m.Uplinks, yesNo(m.Errors == 0 && m.Pinned), m.CPUPct, fmtMiB(m.RSSKiB), fmtMiB(m.VmHWMKiB), m.Threads)
	}
	return s
}

func (h *hostile) manyUplinks(ctx context.Context) (*manyReport, error) {
	r := &manyReport{Scenario: "many_uplinks", Method: manyMethod}
	var errs []error
	for _, size := range h.opt.Sizes {
		h.logf("many_uplinks: %s with pinning", size)
		m, err := manyRunOnce(ctx, h.bin, h.prefix(), size, h.opt.ScaleWindow)
		if err != nil {
			m.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", size, err))
		}
		h.logf("many_uplinks: %s: %d errors, %d pin chains, %.2f %% CPU", size, m.Errors, m.PinChains, m.CPUPct)
		r.Runs = append(r.Runs, m)
		if ctx.Err() != nil {
			break
		}
	}
	return r, errors.Join(errs...)
}

var pinChain = regexp.MustCompile(`(?m)^\s*chain pin_\d+ \{`)

func manyRunOnce(ctx context.Context, bin, prefix string, size scaleSize, window time.Duration) (m manyRun, err error) {
	m = manyRun{Uplinks: size.Uplinks, Targets: size.Targets}
	lab, err := netlab.NewScale(prefix, size.Uplinks, size.Targets)
	if err != nil {
		return m, err
	}
	defer func() { err = errors.Join(err, lab.Close()) }()
	dir, err := os.MkdirTemp("", "uplinklab-many-")
	if err != nil {
		return m, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "uplinkd.sock")
	conf := filepath.Join(dir, "uplinkd.toml")
	text := lab.Config(netlab.ScaleConfig{Socket: sock, Interval: "500ms", Timeout: "1s", Pinning: true})
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return m, err
	}
	cmd := exec.Command("ip", "netns", "exec", lab.GWNS(), bin, "--config", conf)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return m, err
	}
	pid := cmd.Process.Pid // ip netns exec execs uplinkd: this is its PID
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }() // owned here: ends with the process
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		m.Errors, m.FirstErrors = countLines(out.String(), "level=ERROR", 3)
	}()
	client := control.NewClient(sock)
	limit := 120*time.Second - time.Since(start) // from the start, as the figure counts
	if err := waitAllUp(ctx, client, size.Uplinks, limit, exited, func() string { return fmt.Sprintf("%v: %s", waitErr, lastN(out.String(), 10)) }); err != nil {
		return m, err
	}
	m.Started, m.UpWithinS = true, round(time.Since(start).Seconds(), 1)
	w, err := measureCPU(ctx, pid, 3*time.Second, window)
	if err != nil {
		return m, err
	}
	m.WindowS, m.CPUPct = w.Seconds, w.CPUPct
	ps, err := netlab.ReadProcStats(pid)
	if err != nil {
		return m, err
	}
	m.RSSKiB, m.VmHWMKiB, m.Threads = kib(ps.RSS), kib(ps.HWM), ps.Threads
	table, err := netlab.NftTable(lab.GWNS())
	if err != nil {
		return m, err
	}
	m.PinChains = len(pinChain.FindAllString(table, -1))
	m.Pinned = m.PinChains == size.Uplinks
	return m, nil
}
