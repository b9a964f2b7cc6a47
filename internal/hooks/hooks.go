// Package hooks runs the programs of [[hook]] on uplinkd's events. A hook never blocks or slows
// the run loop: the runner reads the engine's event stream, each hook has its own bounded
// queue and runs its events in order, one at a time; an event that finds the queue full is
// dropped, counted and logged. A run that outlives its timeout is killed with its whole process
// group.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

const (
	// QueueLen is how many events a hook may have waiting; more are dropped.
	QueueLen = 64
	// maxOutput is how much of a run's output (stdout and stderr together) is logged.
	maxOutput = 4 << 10
	// path is the PATH a hook gets: the program is absolute, this is for what it runs.
	path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// waitDelay bounds the wait for a killed run's output pipes to close.
	waitDelay = 2 * time.Second
)

// The results of a run, as counted in uplinkd_hook_runs_total.
const (
	ResultOK      = "ok"      // exit status 0
	ResultFailed  = "failed"  // non-zero exit status
	ResultTimeout = "timeout" // killed after its timeout
	ResultError   = "error"   // could not be started (missing program, not executable)
)

// Counters count runs and drops (the metrics package implements it).
type Counters interface {
	HookRan(hook, result string)
	HookDropped(hook string)
}

type nopCounters struct{}

func (nopCounters) HookRan(string, string) {}
func (nopCounters) HookDropped(string)     {}

// Runner owns the hooks' workers.
type Runner struct {
	ctx      context.Context
	log      *slog.Logger
	counters Counters

	mu      sync.Mutex
	workers []*worker
	wg      sync.WaitGroup
}

// New makes a runner whose runs end with ctx. counters may be nil.
func New(ctx context.Context, log *slog.Logger, counters Counters) *Runner {
	if counters == nil {
		counters = nopCounters{}
	}
	return &Runner{ctx: ctx, log: log, counters: counters}
}

// Configure sets the hooks, at start and after every reload (the engine's OnReload, in its
// loop). A hook whose settings are unchanged keeps its queue; a changed or removed one stops
// after its current run, and what it had queued is dropped (and counted). It does not wait.
func (r *Runner) Configure(hooks []uplink.Hook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next []*worker
	for _, h := range hooks {
		i := slices.IndexFunc(r.workers, func(w *worker) bool { return sameHook(w.hook, h) })
		if i >= 0 {
			next = append(next, r.workers[i])
			r.workers = slices.Delete(r.workers, i, i+1)
			continue
		}
		w := &worker{hook: h, queue: make(chan api.Event, QueueLen), stop: make(chan struct{}), r: r}
		r.wg.Go(w.run)
		next = append(next, w)
	}
	for _, w := range r.workers {
		close(w.stop)
	}
	r.workers = next
}

// Dispatch queues ev for every hook that asked for its kind, without waiting.
func (r *Runner) Dispatch(ev api.Event) {
	name, ok := eventName(ev.Kind)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		if !slices.Contains(w.hook.Events, name) {
			continue
		}
		select {
		case w.queue <- ev:
		default:
			w.dropped(ev)
		}
	}
}

// Follow dispatches the events of subscribe's streams until ctx ends. The engine ends a stream
// that falls behind; Follow then subscribes again and says that events were missed.
func (r *Runner) Follow(ctx context.Context, subscribe func(context.Context) <-chan api.Event) {
	for ctx.Err() == nil {
		for ev := range subscribe(ctx) {
			r.Dispatch(ev)
		}
		if ctx.Err() == nil {
			r.log.Warn("hooks fell behind the event stream; some events reached no hook", "component", "hooks")
		}
	}
}

// Wait waits until every worker has stopped: after the runner's context ended (a running hook
// is killed then) and Configure(nil).
func (r *Runner) Wait() { r.wg.Wait() }

// eventName maps an event kind to the name a hook lists; undrain counts as drain.
func eventName(k api.EventKind) (string, bool) {
	switch k {
	case api.KindState, api.KindActive, api.KindDrain, api.KindReload, api.KindHold, api.KindServer:
		return string(k), true
	case api.KindUndrain:
		return string(api.KindDrain), true
	}
	return "", false
}

func sameHook(a, b uplink.Hook) bool {
	return a.Name == b.Name && a.Timeout == b.Timeout && slices.Equal(a.Events, b.Events) && slices.Equal(a.Command, b.Command)
}

// Check says what is wrong with each hook's program: missing, not a regular file, not
// executable. uplinkd --check reports these as errors; the daemon as warnings.
func Check(hooks []uplink.Hook) []error {
	var errs []error
	for _, h := range hooks {
		if len(h.Command) == 0 {
			continue
		}
		p := h.Command[0]
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("hook %s: %w", h.Name, err))
		case !fi.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("hook %s: %s is not a regular file", h.Name, p))
		case syscall.Access(p, 1 /* X_OK */) != nil || fi.Mode().Perm()&0o111 == 0:
			errs = append(errs, fmt.Errorf("hook %s: %s is not executable", h.Name, p))
		}
	}
	return errs
}

// worker runs one hook's queue.
type worker struct {
	hook  uplink.Hook
	queue chan api.Event
	stop  chan struct{}
	r     *Runner

	dropMu    sync.Mutex
	drops     int       // since the last warning
	lastDropW time.Time // when the last warning was logged
}

func (w *worker) run() {
	// Checked here, not in Configure: Configure runs in the engine's loop, which must not wait
	// for a file system.
	for _, p := range Check([]uplink.Hook{w.hook}) {
		w.r.log.Warn("hook program unusable; its runs will fail until it is fixed", "hook", w.hook.Name, "problem", p)
	}
	for {
		select {
		case <-w.r.ctx.Done():
			return
		case <-w.stop:
			if n := len(w.queue); n > 0 {
				for range n {
					w.r.counters.HookDropped(w.hook.Name)
				}
				w.r.log.Warn("hook changed or removed by a reload; its queued events are dropped", "hook", w.hook.Name, "dropped", n)
			}
			return
		case ev := <-w.queue:
			w.exec(ev)
		}
	}
}

// dropped counts an event the full queue refused; the warning is logged at most once a
// second with the number dropped since the last one, so that a flood of events is not a flood
// of log lines.
func (w *worker) dropped(ev api.Event) {
	w.r.counters.HookDropped(w.hook.Name)
	w.dropMu.Lock()
	defer w.dropMu.Unlock()
	w.drops++
	if now := time.Now(); now.Sub(w.lastDropW) >= time.Second {
		w.r.log.Warn("hook queue full; event dropped", "hook", w.hook.Name, "event", string(ev.Kind), "uplink", ev.Uplink, "dropped", w.drops, "queue", QueueLen)
		w.drops, w.lastDropW = 0, now
	}
}

// exec runs the hook once for ev and logs how it went.
func (w *worker) exec(ev api.Event) {
	ctx, cancel := context.WithTimeout(w.r.ctx, w.hook.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.hook.Command[0], w.hook.Command[1:]...)
	cmd.Env = Env(ev)
	cmd.Dir = "/"
	out := &capped{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, killed as a whole
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	start := time.Now()
	err := cmd.Start()
	if err != nil {
		w.r.log.Error("hook could not start", "hook", w.hook.Name, "event", string(ev.Kind), "uplink", ev.Uplink, "err", err)
		w.r.counters.HookRan(w.hook.Name, ResultError)
		return
	}
	delay := start.Sub(ev.Time)
	err = cmd.Wait()
	took := time.Since(start).Round(time.Millisecond)
	attrs := []any{"hook", w.hook.Name, "event", string(ev.Kind), "uplink", ev.Uplink, "took", took, "delay", delay.Round(time.Microsecond)}
	if s := out.String(); s != "" {
		attrs = append(attrs, "output", s)
	}
	result := ResultOK
	var exit *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		result = ResultTimeout
		w.r.log.Warn("hook timed out; killed its process group", append(attrs, "timeout", w.hook.Timeout)...)
	case w.r.ctx.Err() != nil:
		w.r.log.Info("hook killed: uplinkd is stopping", attrs...)
		return
	case err == nil:
		w.r.log.Info("hook ran", attrs...)
	case errors.As(err, &exit):
		result = ResultFailed
		w.r.log.Warn("hook failed", append(attrs, "exit", exit.ExitCode())...)
	default:
		result = ResultFailed
		w.r.log.Warn("hook failed", append(attrs, "err", err)...)
	}
	w.r.counters.HookRan(w.hook.Name, result) // after the log line, so that tests may read it
}

// Env is a hook's environment for ev: the event in UPLINKD_* variables and a minimal PATH.
func Env(ev api.Event) []string {
	return []string{
		"PATH=" + path,
		"UPLINKD_EVENT=" + string(ev.Kind),
		"UPLINKD_UPLINK=" + ev.Uplink,
		"UPLINKD_FROM=" + ev.From,
		"UPLINKD_TO=" + ev.To,
		"UPLINKD_REASON=" + ev.Reason,
		"UPLINKD_ACTIVE=" + strings.Join(ev.Active, ","),
		"UPLINKD_TIME=" + ev.Time.UTC().Format(time.RFC3339Nano),
		"UPLINKD_NAME=" + ev.Name,
		"UPLINKD_SERVER=" + ev.Server,
		"UPLINKD_PENALTY=" + strconv.FormatFloat(ev.Penalty, 'f', 0, 64),
		"UPLINKD_HOLD=" + strconv.FormatFloat(ev.Hold.Seconds(), 'f', 0, 64),
	}
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	mu      sync.Mutex
	max     int
	b       []byte
	skipped int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(p), c.max-len(c.b))
	c.b = append(c.b, p[:n]...)
	c.skipped += len(p) - n
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(string(c.b))
	if c.skipped > 0 {
		s += fmt.Sprintf(" … (%d more bytes)", c.skipped)
	}
	return s
}
