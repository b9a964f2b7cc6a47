package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// The end-to-end tests run the real uplinkd binary inside the gateway namespace of a netlab
// lab. They need root; without it they skip.

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// uplinkdBinary builds cmd/uplinkd once per test run.
func uplinkdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "uplinkd-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "uplinkd")
		out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// labDaemon is uplinkd running in a lab's gateway namespace.
type labDaemon struct {
	t      *testing.T
	lab    *netlab.Lab
	proc   *netlab.Proc
	client *control.Client
	config string // path of its config file
	events *eventLog
}

// fastConfig probes every 100ms: the tests wait less, and it is the "tuned" config of the README.
func fastConfig() netlab.DaemonConfig {
	return netlab.DaemonConfig{Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, DownAfter: 3, UpAfter: 5}
}

// startDaemon writes cfg, starts uplinkd in the gateway namespace and waits until it answers
// on its socket with a first verdict.
func startDaemon(t *testing.T, lab *netlab.Lab, cfg netlab.DaemonConfig) *labDaemon {
	t.Helper()
	bin := uplinkdBinary(t)
	dir := t.TempDir()
	cfg.Socket = filepath.Join(dir, "uplinkd.sock")
	path := filepath.Join(dir, "uplinkd.toml")
	if err := os.WriteFile(path, []byte(cfg.Render()), 0o644); err != nil {
		t.Fatal(err)
	}
	proc, err := lab.Start(context.Background(), netlab.RoleGW, bin, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	d := &labDaemon{t: t, lab: lab, proc: proc, client: control.NewClient(cfg.Socket), config: path}
	t.Cleanup(func() {
		if err := proc.Stop(2 * time.Second); err != nil {
			t.Errorf("uplinkd did not stop cleanly: %v", err)
		}
		if t.Failed() {
			t.Logf("uplinkd output:\n%s", proc.Output())
		}
	})
	d.waitFor("a first verdict", 10*time.Second, func(st uplink.Status) bool { return len(st.Active) > 0 && st.Uplinks[0].State != uplink.Unknown })
	d.events = followEvents(t, d.client)
	return d
}

// waitFor polls the status until ok or the (bounded) wait ends, and returns the last status.
func (d *labDaemon) waitFor(what string, limit time.Duration, ok func(uplink.Status) bool) uplink.Status {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	var last uplink.Status
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-d.proc.Done():
			d.t.Fatalf("uplinkd exited while waiting for %s: %v\n%s", what, d.proc.Err(), d.proc.Output())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := d.client.Status(ctx)
		cancel()
		if err == nil {
			last = st
			if ok(st) {
				return st
			}
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("gave up after %s waiting for %s; last status %+v (err %v)", limit, what, last, lastErr)
	return last
}

func (d *labDaemon) waitActive(limit time.Duration, names ...string) uplink.Status {
	d.t.Helper()
	return d.waitFor("active "+strings.Join(names, ","), limit, func(st uplink.Status) bool { return slices.Equal(st.Active, names) })
}

func (d *labDaemon) status() uplink.Status {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := d.client.Status(ctx)
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

// viaTCP opens a new TCP connection from the LAN to the server and returns the address the
// server saw it come from.
func viaTCP(t *testing.T, lab *netlab.Lab) string {
	t.Helper()
	var lastErr error
	for range 3 { // a new connection right after a switch may race the route change
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		src, err := lab.CheckTCP(ctx, netlab.RoleLAN, netip.AddrPortFrom(netlab.Server4, netlab.TCPPort))
		cancel()
		if err == nil {
			host, _, _ := strings.Cut(src, ":")
			return host
		}
		lastErr = err
	}
	t.Fatalf("no new TCP connection from the LAN: %v", lastErr)
	return ""
}

// eventLog collects the daemon's event stream.
type eventLog struct {
	mu     sync.Mutex
	events []uplink.Event
}

func followEvents(t *testing.T, c *control.Client) *eventLog {
	l := &eventLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Events(ctx, func(ev uplink.Event) {
			l.mu.Lock()
			l.events = append(l.events, ev)
			l.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// transitions lists "from→to" state changes of one uplink seen so far.
func (l *eventLog) transitions(name string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ev := range l.events {
		if ev.Kind == "state" && ev.Uplink == name {
			out = append(out, ev.From+"→"+ev.To)
		}
	}
	return out
}
