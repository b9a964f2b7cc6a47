package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// This file runs uplinkd inside a lab for demo and bench: build or locate the binary, start
// it in the gateway namespace, follow its events, and read its CPU time and peak memory.

// Shipped defaults and the README's tuned config.
var (
	defaultConfig = netlab.DaemonConfig{Interval: 500 * time.Millisecond, Timeout: time.Second, DownAfter: 3, UpAfter: 10}
	tunedConfig   = netlab.DaemonConfig{Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, DownAfter: 3, UpAfter: 5}
)

// uplinkdBinary returns path when given; otherwise it builds cmd/uplinkd of the module that
// holds the working directory into dir (CGO_ENABLED=0, as shipped).
func uplinkdBinary(ctx context.Context, path, dir string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("-uplinkd %s: %w", path, err)
		}
		return path, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("build uplinkd: not inside the uplinkd module (go env GOMOD: %q, %v); run from the repository or pass -uplinkd PATH", gomod, err)
	}
	bin := filepath.Join(dir, "uplinkd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/uplinkd")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build uplinkd: %w: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// labDaemon is uplinkd running in a lab's gateway namespace.
type labDaemon struct {
	proc   *netlab.Proc
	client *control.Client
	dir    string
	events *eventLog
	stopEv context.CancelFunc
	evDone chan struct{}
}

// startDaemon writes cfg into a fresh directory, starts bin in lab's gateway namespace, waits
// (bounded by limit) until both uplinks have a verdict and isp1 is active, and then follows the
// event stream; onEvent, if set, sees every event as it arrives (from the follower goroutine).
func startDaemon(ctx context.Context, lab *netlab.Lab, bin string, cfg netlab.DaemonConfig, limit time.Duration, onEvent func(uplink.Event)) (*labDaemon, error) {
	dir, err := os.MkdirTemp("", "uplinklab-")
	if err != nil {
		return nil, err
	}
	cfg.Socket = filepath.Join(dir, "uplinkd.sock")
	// The shipped config logs at info; the lab's debug lines would only cost CPU here.
	text := strings.Replace(cfg.Render(), `log_level = "debug"`, `log_level = "info"`, 1)
	path := filepath.Join(dir, "uplinkd.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	proc, err := lab.Start(context.Background(), netlab.RoleGW, bin, "--config", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d := &labDaemon{proc: proc, client: control.NewClient(cfg.Socket), dir: dir, events: &eventLog{onEvent: onEvent}}
	ready := func(st uplink.Status) bool {
		for _, u := range st.Uplinks {
			if u.State == uplink.Unknown {
				return false
			}
		}
		return len(st.Uplinks) == 2 && slices.Equal(st.Active, []string{"isp1"})
	}
	if _, err := d.waitStatus(ctx, limit, "isp1 active and both uplinks judged", ready); err != nil {
		d.stop()
		return nil, err
	}
	evCtx, cancel := context.WithCancel(context.Background())
	d.stopEv, d.evDone = cancel, make(chan struct{})
	go func() { // owned by d: ends with stop
		defer close(d.evDone)
		_ = d.client.Events(evCtx, d.events.add)
	}()
	return d, nil
}

// waitStatus polls the status until ok, the daemon exits, ctx ends or limit passes.
func (d *labDaemon) waitStatus(ctx context.Context, limit time.Duration, what string, ok func(uplink.Status) bool) (uplink.Status, error) {
	deadline := time.Now().Add(limit)
	var last uplink.Status
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-d.proc.Done():
			return last, fmt.Errorf("uplinkd exited while waiting for %s: %v\n%s", what, d.proc.Err(), tail(d.proc.Output(), 20))
		case <-ctx.Done():
			return last, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		default:
		}
		c, cancel := context.WithTimeout(ctx, time.Second)
		st, err := d.client.Status(c)
		cancel()
		if err == nil {
			last = st
			if ok(st) {
				return st, nil
			}
		}
		lastErr = err
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return last, fmt.Errorf("gave up after %s waiting for %s; active %v (status error: %v)", limit, what, last.Active, lastErr)
}

// waitEvent waits for an event at or after since that matches ok.
func (d *labDaemon) waitEvent(ctx context.Context, limit time.Duration, since time.Time, what string, ok func(uplink.Event) bool) (uplink.Event, error) {
	deadline := time.Now().Add(limit)
	for {
		if ev, found := d.events.find(since, ok); found {
			return ev, nil
		}
		select {
		case <-d.proc.Done():
			return uplink.Event{}, fmt.Errorf("uplinkd exited while waiting for %s: %v\n%s", what, d.proc.Err(), tail(d.proc.Output(), 20))
		default:
		}
		if ctx.Err() != nil {
			return uplink.Event{}, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
		if !time.Now().Before(deadline) {
			return uplink.Event{}, fmt.Errorf("gave up after %s waiting for %s", limit, what)
		}
		sleepCtx(ctx, 10*time.Millisecond)
	}
}

// stop ends the event follower and the daemon and removes its directory.
func (d *labDaemon) stop() error {
	if d.stopEv != nil {
		d.stopEv()
		<-d.evDone
	}
	err := d.proc.Stop(3 * time.Second)
	os.RemoveAll(d.dir)
	return err
}

// activeIs matches an "active" event whose new set is exactly names.
func activeIs(names ...string) func(uplink.Event) bool {
	return func(ev uplink.Event) bool { return ev.Kind == "active" && slices.Equal(ev.Active, names) }
}

// eventLog collects the daemon's event stream.
type eventLog struct {
	onEvent func(uplink.Event)
	mu      sync.Mutex
	events  []uplink.Event
}

func (l *eventLog) add(ev uplink.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	if l.onEvent != nil {
		l.onEvent(ev)
	}
}

// find returns the first event at or after since that matches ok.
func (l *eventLog) find(since time.Time, ok func(uplink.Event) bool) (uplink.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.events {
		if !ev.Time.Before(since) && ok(ev) {
			return ev, true
		}
	}
	return uplink.Event{}, false
}

// count counts the events in [from, to) that match ok.
func (l *eventLog) count(from, to time.Time, ok func(uplink.Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ev := range l.events {
		if !ev.Time.Before(from) && ev.Time.Before(to) && ok(ev) {
			n++
		}
	}
	return n
}

// procUsage is what the kernel accounts to a process.
type procUsage struct {
	CPU   time.Duration // utime + stime
	VmHWM int64         // peak resident set, bytes
}

// clockTicks is USER_HZ (getconf CLK_TCK), the unit of utime and stime in /proc/PID/stat.
var clockTicks = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if n, perr := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && perr == nil && n > 0 {
		return n
	}
	return 100 // what Linux uses on every architecture we run on
})

// readUsage reads /proc/PID/stat and /proc/PID/status.
func readUsage(pid int) (procUsage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procUsage{}, err
	}
	ticks, err := parseStatTicks(string(stat))
	if err != nil {
		return procUsage{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procUsage{}, err
	}
	hwm, err := parseStatusKiB(string(status), "VmHWM")
	if err != nil {
		return procUsage{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return procUsage{CPU: time.Duration(ticks) * time.Second / time.Duration(clockTicks()), VmHWM: hwm * 1024}, nil
}

// parseStatTicks returns utime+stime (fields 14 and 15) from a /proc/PID/stat line. The command
// name (field 2) may hold spaces and parentheses, so fields are counted after the last ')'.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("utime/stime: %w", err)
	}
	return utime + stime, nil
}

// parseStatusKiB returns a "Key:   1234 kB" line's number from /proc/PID/status.
func parseStatusKiB(status, key string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected value %q", key, strings.TrimSpace(v))
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s line", key)
}

// ispOf names the uplink an address the server saw belongs to ("198.51.100.2:40000" → isp1).
func ispOf(via string) string {
	host := via
	if ap, err := netip.ParseAddrPort(via); err == nil {
		host = ap.Addr().String()
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "?"
	}
	for _, u := range netlab.Uplinks {
		if a == u.GW4 || a == u.SNAT4 || a == u.GW6 {
			return u.Role
		}
	}
	return "?"
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// tail returns the last n lines of out, for error messages.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
