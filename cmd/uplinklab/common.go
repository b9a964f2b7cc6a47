package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// defaultPrefix names the CLI's lab: ullab-gw, ullab-isp1, ...
const defaultPrefix = "ullab"

// newFlags returns a flag set with the -prefix flag every command has.
func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("uplinklab "+name, flag.ContinueOnError)
	prefix := fs.String("prefix", defaultPrefix, "namespace name prefix of the lab")
	return fs, prefix
}

// parseISP reads "1", "2", "isp1" or "isp2".
func parseISP(arg string) (int, error) {
	s := arg
	if len(s) > 3 && s[:3] == "isp" {
		s = s[3:]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 2 {
		return 0, fmt.Errorf("ISP %q: want 1, 2, isp1 or isp2", arg)
	}
	return n, nil
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: builds network namespaces")
	}
	return nil
}

// uplinkdBinary returns bin when given, else builds cmd/uplinkd into a temporary directory
// (saying so through say, if not nil); done removes what was built.
// rootAndBinary is every benchmark's start: root (it builds namespaces), then the binary.
func rootAndBinary(ctx context.Context, bin string) (path string, done func(), err error) {
	if err := needRoot(); err != nil {
		return "", nil, err
	}
	return uplinkdBinary(ctx, bin, nil)
}

func uplinkdBinary(ctx context.Context, bin string, say func(format string, args ...any)) (path string, done func(), err error) {
	tmp, err := os.MkdirTemp("", "uplinklab-")
	if err != nil {
		return "", nil, err
	}
	done = func() { os.RemoveAll(tmp) }
	if bin == "" && say != nil {
		say("building uplinkd (go build ./cmd/uplinkd)")
	}
	if path, err = netlab.UplinkdBinary(ctx, bin, tmp); err != nil {
		done()
		return "", nil, err
	}
	return path, done, nil
}

// cpuWindow is a process's CPU use over a measured window.
type cpuWindow struct {
	Seconds float64      // the window's length
	CPUPct  float64      // percent of one core
	End     netlab.Usage // usage at the end (VmHWM: the peak so far)
}

// measureCPU lets pid settle, then measures its CPU over window.
func measureCPU(ctx context.Context, pid int, settle, window time.Duration) (cpuWindow, error) {
	sleepCtx(ctx, settle)
	u0, err := netlab.ReadUsage(pid)
	if err != nil {
		return cpuWindow{}, err
	}
	t0 := time.Now()
	sleepCtx(ctx, window)
	if ctx.Err() != nil {
		return cpuWindow{}, ctx.Err()
	}
	u1, err := netlab.ReadUsage(pid)
	if err != nil {
		return cpuWindow{}, err
	}
	el := time.Since(t0)
	return cpuWindow{Seconds: round(el.Seconds(), 1), CPUPct: round(100*(u1.CPU-u0.CPU).Seconds()/el.Seconds(), 2), End: u1}, nil
}

// writeJSON writes v, indented, to path, or to w when path is empty.
func writeJSON(w io.Writer, path string, v any) error {
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	if path != "" {
		return os.WriteFile(path, js, 0o644)
	}
	_, err = w.Write(js)
	return err
}

// waitAllUp polls the daemon at client until n uplinks are all up, the process exits (exited
// closes; why describes it), ctx ends or limit passes.
func waitAllUp(ctx context.Context, client *control.Client, n int, limit time.Duration, exited <-chan struct{}, why func() string) error {
	allUp := func(st api.Status) bool {
		if len(st.Uplinks) != n {
			return false
		}
		for _, u := range st.Uplinks {
			if u.State != uplink.Up {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(limit); ; { // bounded by deadline
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := client.Status(c)
		cancel()
		if err == nil && allUp(st) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("uplinkd exited: %s", why())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not all %d uplinks up within %s (last: %v)", n, limit, err)
		}
	}
}

// pollUntil asks ok every `every` until it says yes, ctx ends or limit has passed since from,
// and returns the seconds since from when it said yes.
func pollUntil(ctx context.Context, from time.Time, limit, every time.Duration, ok func() bool) (float64, bool) {
	for time.Since(from) < limit && ctx.Err() == nil {
		if ok() {
			return time.Since(from).Seconds(), true
		}
		sleepCtx(ctx, every)
	}
	return 0, false
}
