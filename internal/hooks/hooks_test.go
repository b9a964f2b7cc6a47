package hooks

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink"
)

// wait bounds every wait of these tests: they wait for what they expect, never sleep.
const wait = 20 * time.Second

// counters records runs and drops and tells the test about each run.
type counters struct {
	mu      sync.Mutex
	runs    map[string]int // "hook/result"
	drops   map[string]int
	ran     chan string
	dropped chan string
}

func newCounters() *counters {
	return &counters{runs: map[string]int{}, drops: map[string]int{}, ran: make(chan string, 1000), dropped: make(chan string, 1000)}
}

func (c *counters) HookRan(hook, result string) {
	c.mu.Lock()
	c.runs[hook+"/"+result]++
	c.mu.Unlock()
	c.ran <- hook + "/" + result
}

func (c *counters) HookDropped(hook string) {
	c.mu.Lock()
	c.drops[hook]++
	c.mu.Unlock()
	c.dropped <- hook
}

func (c *counters) next(t *testing.T) string {
	t.Helper()
	select {
	case r := <-c.ran:
		return r
	case <-time.After(wait):
		t.Fatal("no hook run ended in time")
		return ""
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// script writes an executable shell script into a temporary directory.
func script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t *testing.T, hooks ...uplink.Hook) (*Runner, *counters, *logBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	c := newCounters()
	r := New(ctx, slog.New(slog.NewTextHandler(logs, nil)), c)
	r.Configure(hooks)
	t.Cleanup(func() {
		cancel()
		r.Wait()
		if t.Failed() {
			t.Logf("hook log:\n%s", logs.String())
		}
	})
	return r, c, logs
}

func hook(name string, cmd []string, events ...string) uplink.Hook {
	return uplink.Hook{Name: name, Events: events, Command: cmd, Timeout: 10 * time.Second}
}

func TestAHookSeesTheEventInItsEnvironment(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	prog := script(t, "record", `env | grep -E '^(UPLINKD_|PATH=)' | sort > "$1"; echo recorded`)
	r, c, logs := start(t, hook("record", []string{prog, out}, "active"))
	r.Dispatch(api.Event{Time: time.Now(), Kind: api.KindActive, From: "isp1", To: "isp2", Reason: "isp1 down", Active: []string{"isp2", "isp3"}})
	if got := c.next(t); got != "record/ok" {
		t.Fatalf("run: %s", got)
	}
	env, _ := os.ReadFile(out)
	for _, want := range []string{"UPLINKD_EVENT=active", "UPLINKD_FROM=isp1", "UPLINKD_TO=isp2", "UPLINKD_REASON=isp1 down", "UPLINKD_ACTIVE=isp2,isp3", "UPLINKD_UPLINK=\n", "PATH=" + path} {
		if !strings.Contains(string(env), want) {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
	if !strings.Contains(logs.String(), "output=recorded") {
		t.Errorf("the run's output is not logged:\n%s", logs)
	}
}

func TestAHookGetsOnlyTheEventsItAskedForAndUndrainCountsAsDrain(t *testing.T) {
	out := filepath.Join(t.TempDir(), "events")
	prog := script(t, "append", `echo "$UPLINKD_EVENT" >> "$1"`)
	r, c, _ := start(t, hook("append", []string{prog, out}, "drain", "reload"))
	for _, k := range []api.EventKind{api.KindState, api.KindDrain, api.KindActive, api.KindUndrain, api.KindError, api.KindReload} {
		r.Dispatch(api.Event{Time: time.Now(), Kind: k})
	}
	for range 3 {
		c.next(t)
	}
	got, _ := os.ReadFile(out)
	if string(got) != "drain\nundrain\nreload\n" {
		t.Errorf("the hook ran for\n%s; want drain, undrain, reload in order", got)
	}
}

func TestAFailingOrMissingProgramIsCountedAndLogged(t *testing.T) {
	fail := script(t, "fail", "echo oops >&2; exit 3")
	r, c, logs := start(t,
		hook("fail", []string{fail}, "state"),
		hook("missing", []string{"/nonexistent/uplinkd-hook"}, "state"))
	r.Dispatch(api.Event{Time: time.Now(), Kind: api.KindState, Uplink: "isp1"})
	got := map[string]bool{c.next(t): true, c.next(t): true}
	if !got["fail/failed"] || !got["missing/error"] {
		t.Errorf("results %v, want fail/failed and missing/error", got)
	}
	for _, want := range []string{"exit=3", "output=oops", "hook program unusable", "hook could not start"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// hang is a hook that blocks until the test releases it. Opening the FIFO for writing
// returns once the hook has opened it for reading, so the test knows the hook is running.
type hang struct {
	prog, fifo string
}

func newHang(t *testing.T) hang {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return hang{prog: script(t, "hang", `read line < "$1"`), fifo: fifo}
}

// running waits until the hook is running and returns a function that releases it.
func (h hang) running(t *testing.T) (release func()) {
	t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(h.fifo, os.O_WRONLY, 0)
		if err == nil {
			opened <- f
		}
	}()
	select {
	case f := <-opened:
		return func() { fmt.Fprintln(f, "go"); f.Close() }
	case <-time.After(wait):
		t.Fatal("the hook did not start")
		return nil
	}
}

func TestAHangingHookDelaysNeitherTheDispatcherNorOtherHooks(t *testing.T) {
	h := newHang(t)
	out := filepath.Join(t.TempDir(), "fast")
	fast := script(t, "fast", `echo "$UPLINKD_TO" >> "$1"`)
	r, c, _ := start(t, hook("hang", []string{h.prog, h.fifo}, "state"), hook("fast", []string{fast, out}, "state"))
	r.Dispatch(api.Event{Time: time.Now(), Kind: api.KindState, To: "down"})
	release := h.running(t)
	defer release()
	// While "hang" hangs, events keep flowing: Dispatch returns at once and "fast" runs them.
	var slowest time.Duration
	for i := range 20 {
		began := time.Now()
		r.Dispatch(api.Event{Time: began, Kind: api.KindState, To: strconv.Itoa(i)})
		slowest = max(slowest, time.Since(began))
	}
	for range 21 {
		if got := c.next(t); got != "fast/ok" {
			t.Fatalf("while hang hangs, a run ended: %s", got)
		}
	}
	t.Logf("slowest Dispatch while a hook hangs: %s", slowest)
	if slowest > 100*time.Millisecond {
		t.Errorf("Dispatch took %s while a hook hung; it must not wait for hooks", slowest)
	}
	lines, _ := os.ReadFile(out)
	if n := strings.Count(string(lines), "\n"); n != 21 {
		t.Errorf("fast ran %d times, want 21", n)
	}
}

func TestAFullQueueDropsAndCountsTheOverflow(t *testing.T) {
	h := newHang(t)
	r, c, logs := start(t, hook("hang", []string{h.prog, h.fifo}, "active"))
	r.Dispatch(api.Event{Time: time.Now(), Kind: api.KindActive})
	release := h.running(t) // the first event is running: the queue is empty
	for range QueueLen + 5 {
		r.Dispatch(api.Event{Time: time.Now(), Kind: api.KindActive})
	}
	c.mu.Lock()
	drops := c.drops["hang"]
	c.mu.Unlock()
	if drops != 5 {
		t.Errorf("dropped %d events, want 5 (queue of %d)", drops, QueueLen)
	}
	if n := strings.Count(logs.String(), "hook queue full"); n != 1 {
		t.Errorf("%d warnings about the full queue, want 1 (at most one a second):\n%s", n, logs)
	}
	release()
	// The queued events run in order, one at a time: each waits for its own release.
	c.next(t)
	for range QueueLen {
		h.running(t)()
		c.next(t)
	}
}

func TestAHookThatOutlivesItsTimeoutIsKilledWithItsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	prog := script(t, "stuck", `sleep 300 & echo $! > "$1"; wait`)
	h := hook("stuck", []string{prog, pidFile}, "state")
	h.Timeout = 300 * time.Millisecond
	r, c, logs := start(t, h)
	began := time.Now()
	r.Dispatch(api.Event{Time: began, Kind: api.KindState})
	if got := c.next(t); got != "stuck/timeout" {
		t.Fatalf("result %s, want stuck/timeout", got)
	}
	took := time.Since(began)
	if took > h.Timeout+waitDelay+time.Second {
		t.Errorf("the run ended %s after it started; its timeout is %s", took, h.Timeout)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	testkit.WaitUntil(t, wait, fmt.Sprintf("the hook's child %d to die with the kill", child), func() bool { return !alive(child) })
	if !strings.Contains(logs.String(), "hook timed out; killed its process group") {
		t.Errorf("no warning logged:\n%s", logs)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestReconfiguringKeepsUnchangedHooksAndStopsRemovedOnes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	a := hook("a", []string{script(t, "a", `echo a >> "$1"`), out}, "reload")
	b := hook("b", []string{script(t, "b", `echo b >> "$1"`), out}, "reload")
	r, c, _ := start(t, a, b)
	r.mu.Lock()
	keptA := r.workers[0]
	r.mu.Unlock()
	r.Configure([]uplink.Hook{a})
	r.mu.Lock()
	if len(r.workers) != 1 || r.workers[0] != keptA {
		t.Error("the unchanged hook did not keep its worker")
	}
	r.mu.Unlock()
	r.Dispatch(api.Event{Time: time.Now(), Kind: api.KindReload})
	if got := c.next(t); got != "a/ok" {
		t.Errorf("run %s, want a/ok", got)
	}
	if got, _ := os.ReadFile(out); string(got) != "a\n" {
		t.Errorf("ran %q; the removed hook b must not run", got)
	}
}

func TestCheckNamesMissingAndNonExecutablePrograms(t *testing.T) {
	ok := script(t, "ok", "true")
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	errs := Check([]uplink.Hook{
		{Name: "ok", Command: []string{ok}},
		{Name: "missing", Command: []string{"/nonexistent/prog"}},
		{Name: "plain", Command: []string{plain}},
		{Name: "dir", Command: []string{t.TempDir()}},
	})
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		"hook missing: stat /nonexistent/prog: no such file or directory",
		"hook plain: " + plain + " is not executable",
	}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || !strings.HasSuffix(got[2], "is not a regular file") {
		t.Errorf("Check:\n%s", strings.Join(got, "\n"))
	}
}
