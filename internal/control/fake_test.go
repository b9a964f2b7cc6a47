package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

// fakeBackend is an in-memory daemon.
type fakeBackend struct {
	mu         sync.Mutex
	status     api.Status
	drains     []drainCall
	reloadErr  error
	reloads    int
	standby    *bool // nil: not in a pair
	subs       map[chan api.Event]bool
	subscribed chan struct{} // receives once per Subscribe
	ended      chan struct{} // receives once per subscription that ended
}

type drainCall struct {
	name         string
	drained, now bool
}

func newFake() *fakeBackend {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakeBackend{
		status: api.Status{
			Version: "test", Started: since, Uptime: time.Hour, Config: "/etc/uplinkd/uplinkd.toml",
			Active: []string{"isp1"}, ActiveRoute: "default via 198.51.100.1 dev eth1 proto 199",
			Uplinks: []api.UplinkStatus{
				{Name: "isp1", Interface: "eth1", State: uplink.Up, Since: since, Active: true, Priority: 1, Weight: 1, RTT: 12 * time.Millisecond, Connections: 3},
				{Name: "isp2", Interface: "eth2", State: uplink.Down, Since: since, Reason: "2/3 targets silent", Priority: 2, Weight: 1, Connections: -1},
			},
		},
		subs:       map[chan api.Event]bool{},
		subscribed: make(chan struct{}, 8),
		ended:      make(chan struct{}, 8),
	}
}

func (f *fakeBackend) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeBackend) Drain(name string, drained, now bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.status.Uplinks {
		if f.status.Uplinks[i].Name == name {
			f.status.Uplinks[i].Drained = drained
			f.drains = append(f.drains, drainCall{name, drained, now})
			return nil
		}
	}
	return fmt.Errorf("drain %q: %w", name, ErrUnknownUplink)
}

func (f *fakeBackend) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	return f.reloadErr
}

func (f *fakeBackend) Standby(on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.standby == nil {
		return fmt.Errorf("%w: add an [ha] section", ErrNotInPair)
	}
	*f.standby = on
	return nil
}

func (f *fakeBackend) Subscribe(ctx context.Context) <-chan api.Event {
	ch := make(chan api.Event, 16)
	f.mu.Lock()
	f.subs[ch] = true
	f.mu.Unlock()
	f.subscribed <- struct{}{}
	go func() { // owned by the subscription; ends with ctx
		<-ctx.Done()
		f.mu.Lock()
		delete(f.subs, ch)
		close(ch)
		f.mu.Unlock()
		f.ended <- struct{}{}
	}()
	return ch
}

func (f *fakeBackend) publish(ev api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		ch <- ev
	}
}

func (f *fakeBackend) lastDrain() (drainCall, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.drains) == 0 {
		return drainCall{}, false
	}
	return f.drains[len(f.drains)-1], true
}

// startServer serves b on a fresh socket and returns its path. The running user counts as admin,
// which is the real policy when the tests run as root.
func startServer(t *testing.T, b Backend) (socket string, stop func()) {
	t.Helper()
	socket = filepath.Join(shortTempDir(t), "run", "uplinkd.sock")
	ln, err := Listen(socket, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return socket, serveOn(t, ln, newServer(b, testLogger(t), uint32(os.Geteuid())))
}

func serveOn(t *testing.T, ln net.Listener, hs *http.Server) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, hs) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// recv waits for one signal, bounded so a broken server fails the test instead of hanging it.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

var errBadConfig = errors.New(`/etc/uplinkd/uplinkd.toml:12: uplink "isp3": interface "eth9" does not exist`)

// shortTempDir is a temporary directory with a short name: t.TempDir's names, built from the
// test's name, can exceed the 107 bytes a socket path may have.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
