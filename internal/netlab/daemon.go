package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/control"
	up "github.com/uplinkd/uplinkd/uplink" // netlab already has a func uplink
)

// This file runs uplinkd inside a lab for the end-to-end tests, the demo and the benchmark:
// build (or take) the binary, start it with a rendered DaemonConfig in the gateway namespace,
// poll its status, follow its events, read its CPU time and peak memory, and stop it.

// UplinkdBinary returns path when given (it must exist); otherwise it builds cmd/uplinkd of the
// module that holds the working directory into dir/uplinkd with CGO_ENABLED=0, as shipped.
func UplinkdBinary(ctx context.Context, path, dir string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("netlab: uplinkd binary: %w", err)
		}
		return path, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("netlab: build uplinkd: not inside the uplinkd module (go env GOMOD: %q, %v); run from the repository or give a binary", gomod, err)
	}
	bin := filepath.Join(dir, "uplinkd")
	// No VCS stamp: a checkout owned by another user (a test run as nobody) makes git refuse.
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", bin, "./cmd/uplinkd")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("netlab: build uplinkd: %w: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// shared is the uplinkd that SharedUplinkd builds once per process.
var shared struct {
	once     sync.Once
	dir, bin string
	err      error
}

// SharedUplinkd builds cmd/uplinkd once per process, for test packages that run the daemon
// in many tests, and returns its path (later calls wait for the first build and share its
// result). Call RemoveSharedUplinkd from TestMain when the tests are done.
func SharedUplinkd() (string, error) {
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "uplinkd-build-")
		if shared.err == nil {
			shared.bin, shared.err = UplinkdBinary(context.Background(), "", shared.dir)
		}
	})
	return shared.bin, shared.err
}

// RemoveSharedUplinkd removes what SharedUplinkd built, if anything.
func RemoveSharedUplinkd() {
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}

// DaemonOptions shape StartDaemon.
type DaemonOptions struct {
	Binary string       // the uplinkd to run (see UplinkdBinary)
	Config DaemonConfig // its Socket is chosen by StartDaemon
	// InfoLogs logs at info instead of the lab's debug: the demo and bench do not read the
	// debug lines, which would only cost CPU in the figures.
	InfoLogs bool
	// Ready says when the daemon counts as started (nil: Judged); ReadyLimit bounds the wait
	// (0: 10 s).
	Ready      func(api.Status) bool
	ReadyLimit time.Duration
	// OnEvent, if set, sees every event as it arrives, from the follower goroutine.
	OnEvent func(api.Event)
	// Role is the namespace to run in; empty: the gateway ("gw"). A pair has two (RoleGWA, RoleGWB).
	Role string
}

// Judged says that every uplink has a verdict and something carries the traffic.
func Judged(st api.Status) bool {
	if len(st.Uplinks) == 0 || len(st.Active) == 0 {
		return false
	}
	for _, u := range st.Uplinks {
		if u.State == up.Unknown {
			return false
		}
	}
	return true
}

// ActiveIs matches an "active" event whose new set is exactly names.
func ActiveIs(names ...string) func(api.Event) bool {
	return func(ev api.Event) bool { return ev.Kind == api.KindActive && slices.Equal(ev.Active, names) }
}

// stopGrace is how long Stop waits after SIGTERM: uplinkd stops in milliseconds, so a stop
// that takes longer is a bug worth seeing.
const stopGrace = 2 * time.Second

// Daemon is uplinkd running in a lab's gateway namespace. Stop it with Stop (the lab's Close
// also ends the process, but leaves its directory behind).
type Daemon struct {
	proc   *Proc
	client *control.Client
	dir    string // config and socket; removed by Stop
	config string
	events *EventLog

	stopEvents context.CancelFunc
	eventsDone chan struct{}
	stopOnce   sync.Once
	stopErr    error
}

// StartDaemon writes opts.Config into a fresh directory, starts opts.Binary in the gateway
// namespace, waits until opts.Ready (bounded by opts.ReadyLimit and ctx), and then follows the
// event stream. ctx bounds only the start: the daemon runs until Stop or the lab's Close.
func (l *Lab) StartDaemon(ctx context.Context, opts DaemonOptions) (*Daemon, error) {
	if opts.Binary == "" {
		return nil, errors.New("netlab: start uplinkd: no binary given")
	}
	ready, limit := opts.Ready, opts.ReadyLimit
	if ready == nil {
		ready = Judged
	}
	if limit <= 0 {
		limit = 10 * time.Second
	}
	dir, err := os.MkdirTemp("", "uplinkd-lab-")
	if err != nil {
		return nil, fmt.Errorf("netlab: start uplinkd: %w", err)
	}
	cfg := opts.Config
	cfg.Socket = filepath.Join(dir, "uplinkd.sock")
	text := cfg.Render()
	if opts.InfoLogs {
		text = strings.Replace(text, `log_level = "debug"`, `log_level = "info"`, 1)
	}
	path := filepath.Join(dir, "uplinkd.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("netlab: start uplinkd: %w", err)
	}
	// Not ctx: the process outlives the start; Stop and the lab's Close end it.
	role := opts.Role
	if role == "" {
		role = RoleGW
	}
	proc, err := l.Start(context.Background(), role, opts.Binary, "--config", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d := &Daemon{proc: proc, client: control.NewClient(cfg.Socket), dir: dir, config: path, events: &EventLog{onEvent: opts.OnEvent}}
	if _, err := d.WaitStatus(ctx, limit, "a first verdict", ready); err != nil {
		select {
		case <-proc.Done(): // the error already shows how it ended
		default:
			err = fmt.Errorf("%w\nuplinkd's last output:\n%s", err, lastLines(proc.Output(), 20))
		}
		return nil, errors.Join(err, d.Stop())
	}
	evCtx, cancel := context.WithCancel(context.Background())
	d.stopEvents, d.eventsDone = cancel, make(chan struct{})
	go func() { // owned by d: ends with Stop
		defer close(d.eventsDone)
		_ = d.client.Events(evCtx, d.events.add)
	}()
	return d, nil
}

// Proc is the daemon's process (for signals and its output).
func (d *Daemon) Proc() *Proc { return d.proc }

// Client talks to the daemon's control socket.
func (d *Daemon) Client() *control.Client { return d.client }

// ConfigPath is the daemon's config file; rewrite it and reload to change the config.
func (d *Daemon) ConfigPath() string { return d.config }

// Events is the daemon's event stream since it was ready.
func (d *Daemon) Events() *EventLog { return d.events }

// Usage reads the daemon's CPU time and peak memory from /proc.
func (d *Daemon) Usage() (Usage, error) { return ReadUsage(d.proc.Pid()) }

// Status asks the daemon for its status, waiting at most 2 s.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return d.client.Status(ctx)
}

// WaitStatus polls the status every 20 ms until ok, the daemon exits, ctx ends or limit
// passes, and returns the last status it read.
func (d *Daemon) WaitStatus(ctx context.Context, limit time.Duration, what string, ok func(api.Status) bool) (api.Status, error) {
	deadline := time.Now().Add(limit)
	var last api.Status
	var lastErr error
	for time.Now().Before(deadline) {
		if err := d.stillWaiting(ctx, what); err != nil {
			return last, err
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
		sleep(ctx, 20*time.Millisecond)
	}
	return last, fmt.Errorf("gave up after %s waiting for %s; last status: %s (status error: %v)", limit, what, describeStatus(last), lastErr)
}

// WaitEvent waits until the event log holds an event at or after since that matches ok, the
// daemon exits, ctx ends or limit passes.
func (d *Daemon) WaitEvent(ctx context.Context, limit time.Duration, since time.Time, what string, ok func(api.Event) bool) (api.Event, error) {
	deadline := time.Now().Add(limit)
	for {
		if ev, found := d.events.Find(since, ok); found {
			return ev, nil
		}
		if err := d.stillWaiting(ctx, what); err != nil {
			return api.Event{}, err
		}
		if !time.Now().Before(deadline) {
			return api.Event{}, fmt.Errorf("gave up after %s waiting for %s", limit, what)
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

// stillWaiting says why a wait must end early: the daemon exited or ctx ended.
func (d *Daemon) stillWaiting(ctx context.Context, what string) error {
	select {
	case <-d.proc.Done():
		return fmt.Errorf("uplinkd exited while waiting for %s: %v\n%s", what, d.proc.Err(), lastLines(d.proc.Output(), 20))
	default:
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// Stop ends the event follower and the daemon (SIGTERM, then SIGKILL after 2 s) and removes
// its directory. It returns the process's exit error (nil for a clean stop); calling it again
// returns the same.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		if d.stopEvents != nil {
			d.stopEvents()
			<-d.eventsDone
		}
		if err := d.proc.Stop(stopGrace); err != nil {
			d.stopErr = fmt.Errorf("%w\nuplinkd's last output:\n%s", err, lastLines(d.proc.Output(), 10))
		}
		os.RemoveAll(d.dir)
	})
	return d.stopErr
}

// describeStatus is a one-line summary for error messages: "active [isp1]; isp1 up (…), isp2 down (…)".
func describeStatus(st api.Status) string {
	parts := make([]string, 0, len(st.Uplinks))
	for _, u := range st.Uplinks {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", u.Name, u.State, u.Reason))
	}
	return fmt.Sprintf("active %v; %s", st.Active, strings.Join(parts, ", "))
}

// EventLog collects a daemon's event stream. Its methods are safe for concurrent use.
type EventLog struct {
	onEvent func(api.Event)
	mu      sync.Mutex
	events  []api.Event
}

func (l *EventLog) add(ev api.Event) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	if l.onEvent != nil {
		l.onEvent(ev)
	}
}

// All returns the events seen so far.
func (l *EventLog) All() []api.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// Find returns the first event at or after since that matches ok.
func (l *EventLog) Find(since time.Time, ok func(api.Event) bool) (api.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.events {
		if !ev.Time.Before(since) && ok(ev) {
			return ev, true
		}
	}
	return api.Event{}, false
}

// Count counts the events in [from, to) that match ok.
func (l *EventLog) Count(from, to time.Time, ok func(api.Event) bool) int {
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

// Transitions lists the "from→to" state changes of one uplink seen so far.
func (l *EventLog) Transitions(name string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ev := range l.events {
		if ev.Kind == api.KindState && ev.Uplink == name {
			out = append(out, ev.From+"→"+ev.To)
		}
	}
	return out
}

// Usage is what the kernel accounts to a process.
type Usage struct {
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

// ReadUsage reads a process's CPU time from /proc/PID/stat and its VmHWM from /proc/PID/status.
func ReadUsage(pid int) (Usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, err
	}
	ticks, err := parseStatTicks(string(stat))
	if err != nil {
		return Usage{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Usage{}, err
	}
	hwm, err := parseStatusKiB(string(status), "VmHWM")
	if err != nil {
		return Usage{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return Usage{CPU: time.Duration(ticks) * time.Second / time.Duration(clockTicks()), VmHWM: hwm * 1024}, nil
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

// sleep sleeps for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// lastLines returns the last n lines of out, for error messages.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
