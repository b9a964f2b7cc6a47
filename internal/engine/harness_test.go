package engine

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/internal/servercheck"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
)

func timeNow() time.Time { return time.Now() }

// twoISPs is the configuration of most tests: isp1 preferred, isp2 the backup, fast probes.
const twoISPs = `
[daemon]
socket = "/run/uplinkd-test.sock"
[defaults]
targets = ["192.0.2.53", "198.51.100.53", "203.0.113.53"]
interval = "100ms"
timeout = "200ms"
down_after = 3
up_after = 3
hold_down = "1s"
max_hold_down = "10s"
[[uplink]]
name = "isp1"
interface = "wan1"
priority = 1
[[uplink]]
name = "isp2"
interface = "wan2"
priority = 2
`

// rig is an engine on fakes inside a synctest bubble: time is fake, the test feeds probe
// rounds and kernel events and reads what the engine did to the fakes.
type rig struct {
	t          *testing.T
	e          *Engine
	path       string
	dp         *dataplane.Fake
	probes     *fakeProbers
	checks     *fakeChecks
	notify     *fakeNotifier
	track      *fakeTracker
	kernel     chan routing.Event
	kernelDone chan error
	damage     chan struct{}
	logs       *lockedBuffer
	stop       context.CancelFunc
	done       chan error

	mu     sync.Mutex
	events []api.Event

	closeOnce sync.Once
	runErr    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startRig writes cfg to a file, starts an engine on it and lets it reach its first verdict
// with every uplink answering.
func startRig(t *testing.T, cfg string) *rig {
	t.Helper()
	return startRigAnswering(t, cfg, true)
}

// startRigAnswering is startRig whose first probe rounds all answer (ok) or all fail.
func startRigAnswering(t *testing.T, cfg string, ok bool) *rig {
	t.Helper()
	return startRigOpts(t, cfg, ok, nil)
}

// startRigWith is startRig with the fakes adjusted by setup before the engine starts.
func startRigWith(t *testing.T, cfg string, setup func(*rig)) *rig {
	t.Helper()
	return startRigOpts(t, cfg, true, setup)
}

func startRigOpts(t *testing.T, cfg string, ok bool, setup func(*rig)) *rig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "uplinkd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, path: path, dp: dataplane.NewFake(), checks: &fakeChecks{},
		probes: newFakeProbers(), notify: &fakeNotifier{}, kernel: make(chan routing.Event, 16),
		damage: make(chan struct{}, 1), logs: &lockedBuffer{}, done: make(chan error, 1), track: &fakeTracker{}}
	r.dp.SetCounts(map[uint32]int{0x100: 7})
	for i, u := range c.Uplinks {
		r.dp.SetLink(u.Interface, i+1, true)
	}
	if setup != nil {
		setup(r)
	}
	e, err := New(Options{Config: c, Load: config.Load, Dataplane: r.dp, Kernel: r.dp,
		StartProber: r.probes.start, CheckServers: r.checks.start, Notifier: r.notify, Version: "test",
		Log:          slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KernelEvents: r.kernel, KernelDone: r.kernelDone, PinDamage: r.damage,
		NewTracker: func(path string) Tracker { r.track.path = path; return r.track }})
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() { r.done <- e.Run(ctx) }()
	synctest.Wait()
	events := e.Subscribe(ctx)
	go func() {
		for ev := range events {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	for _, u := range c.Uplinks {
		r.probes.round(u.Name, ok)
	}
	time.Sleep(time.Second) // fake time: past the first verdict
	synctest.Wait()
	t.Cleanup(func() {
		r.close() // a test that failed half-way still stops its engine
		if t.Failed() {
			t.Logf("engine log:\n%s", r.logs.String())
		}
	})
	return r
}

// close stops the engine and returns Run's error; later calls return nil.
func (r *rig) close() error {
	r.stop()
	r.closeOnce.Do(func() { r.runErr = <-r.done })
	return r.runErr
}

// rounds feeds n rounds of uplink name, one per 100 ms of fake time, and lets the engine act.
func (r *rig) rounds(name string, ok bool, n int) { r.familyRounds(name, ok, ok, n) }

// familyRounds is rounds in which the IPv4 targets answer (ok4) or not, and the IPv6 ones (ok6).
func (r *rig) familyRounds(name string, ok4, ok6 bool, n int) {
	for range n {
		r.probes.roundFamilies(name, ok4, ok6)
		time.Sleep(100 * time.Millisecond) // fake time: the next round's
		synctest.Wait()
	}
}

func (r *rig) wantActive(want ...string) {
	r.t.Helper()
	if got := r.e.Status().Active; !slices.Equal(got, want) {
		r.t.Fatalf("active %v, want %v", got, want)
	}
	var ifs []string
	for _, name := range want {
		for _, u := range r.e.Status().Uplinks {
			if u.Name == name {
				ifs = append(ifs, u.Interface)
			}
		}
	}
	if got := r.dp.ActiveInterfaces(4); !slices.Equal(got, ifs) {
		r.t.Fatalf("the kernel's active route goes via %v, want %v", got, ifs)
	}
}

func (r *rig) state(name string) uplink.State {
	for _, u := range r.e.Status().Uplinks {
		if u.Name == name {
			return u.State
		}
	}
	r.t.Fatalf("no uplink %q in the status", name)
	return 0
}

func (r *rig) kinds() []string {
	synctest.Wait() // the subscriber has taken every event published so far
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		s := string(ev.Kind)
		if ev.Uplink != "" {
			s += " " + ev.Uplink
		}
		if ev.To != "" {
			s += " → " + ev.To
		}
		out = append(out, s)
	}
	return out
}

// rewrite replaces the configuration file (for a reload).
func (r *rig) rewrite(old, new string) {
	r.t.Helper()
	b, err := os.ReadFile(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		r.t.Fatalf("the configuration has no %q", old)
	}
	if err := os.WriteFile(r.path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// fakeChecks stands in for servercheck.Start: the test hands the engine check outcomes.
type fakeChecks struct {
	mu      sync.Mutex
	out     chan<- servercheck.Result
	targets []servercheck.Target
	pins    servercheck.Pins
	starts  int
}

func (f *fakeChecks) start(_ context.Context, targets []servercheck.Target, _ uplink.ServerCheck, pins servercheck.Pins, out chan<- servercheck.Result) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out, f.targets, f.pins = out, targets, pins
	f.starts++
	return func() {}
}

// checked hands the engine one check of the server (as the config writes it) of name here.
func (r *rig) checked(name, server string, ok bool) { r.siteChecked(name, "", server, ok) }

// siteChecked hands the engine one check of name's server at site ("": here).
func (r *rig) siteChecked(name, site, server string, ok bool) {
	r.t.Helper()
	s, err := uplink.ParseServer(server)
	if err != nil {
		r.t.Fatal(err)
	}
	r.checks.mu.Lock()
	out := r.checks.out
	r.checks.mu.Unlock()
	t := servercheck.Target{Name: name, Site: site, Server: s}
	out <- servercheck.Result{Targets: []servercheck.Target{t}, OK: ok, Reason: map[bool]string{true: "passed in 1ms", false: "connection refused"}[ok], At: time.Now()}
	synctest.Wait()
	time.Sleep(checkSettle) // fake time: the verdicts settle into one change of the answers
	synctest.Wait()
}
