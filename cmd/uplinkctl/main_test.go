package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/version"
	"github.com/uplinkd/uplinkd/uplink"
)

// fakeDaemon is the daemon side, in memory, served over a real socket by internal/control.
type fakeDaemon struct {
	mu        sync.Mutex
	st        api.Status
	drained   map[string]bool
	reloadErr error
	events    chan api.Event
}

func (f *fakeDaemon) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeDaemon) Drain(name string, drained, now bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.st.Uplinks {
		if u.Name == name {
			f.drained[name] = drained
			return nil
		}
	}
	return fmt.Errorf("%q: %w", name, control.ErrUnknownUplink)
}

func (f *fakeDaemon) Reload() error { return f.reloadErr }

func (f *fakeDaemon) Standby(on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.HA == nil {
		return fmt.Errorf("%w: add an [ha] section", control.ErrNotInPair)
	}
	f.st.HA.Standby = on
	return nil
}

func (f *fakeDaemon) Subscribe(ctx context.Context) <-chan api.Event {
	out := make(chan api.Event)
	go func() { // owned by the subscription; ends with ctx
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-f.events:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func startDaemon(t *testing.T, st api.Status) (*fakeDaemon, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl") // short: socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "u.sock")
	ln, err := control.Listen(socket, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{st: st, drained: map[string]bool{}, events: make(chan api.Event)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.Serve(ctx, ln, f, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return f, socket
}

func uplinkctl(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestStatusExitTellsWhetherTrafficFlows(t *testing.T) {
	carrying := sampleStatus()
	none := sampleStatus()
	for i := range none.Uplinks {
		none.Uplinks[i].State = uplink.Down
	}
	_, sockCarrying := startDaemon(t, carrying)
	_, sockNone := startDaemon(t, none)
	ctx := context.Background()

	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"an uplink carrying traffic exits 0", []string{"--socket", sockCarrying, "status"}, 0, "*  fiber   eth1       up "},
		{"no uplink carrying traffic exits 1", []string{"--socket", sockNone, "status"}, 1, "NO UPLINK CARRIES TRAFFIC"},
		{"json keeps the exit status", []string{"--socket", sockNone, "status", "--json"}, 1, `"state": "down"`},
		{"no daemon exits 2 and says so", []string{"--socket", "/nonexistent/u.sock", "status"}, 2, "uplinkctl: uplinkd is not running (no socket at /nonexistent/u.sock)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := uplinkctl(ctx, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.contains) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tt.code, tt.contains, out, errOut)
			}
		})
	}
}

func TestStatusJSONIsTheDaemonsStatus(t *testing.T) {
	want := sampleStatus()
	_, socket := startDaemon(t, want)
	code, out, errOut := uplinkctl(context.Background(), "--socket", socket, "status", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got api.Status
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(got.Uplinks) != len(want.Uplinks) || got.Uplinks[3].Reason != want.Uplinks[3].Reason || got.ActiveRoute != want.ActiveRoute {
		t.Errorf("got %+v", got)
	}
}

func TestChanges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: uplinkd allows changes for uid 0 only")
	}
	f, socket := startDaemon(t, sampleStatus())
	bad, badSocket := startDaemon(t, sampleStatus())
	bad.reloadErr = errors.New(`/etc/uplinkd/uplinkd.toml:7: defaults.quorum: 4 is more than the 3 targets`)
	ctx := context.Background()
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"drain takes an uplink out", []string{"--socket", socket, "drain", "dsl"}, 0, "dsl drained; existing connections may finish"},
		{"drain now accepts the flag after the name", []string{"--socket", socket, "drain", "fiber", "--now"}, 0, "fiber drained; its connections are being moved"},
		{"undrain puts it back", []string{"--socket", socket, "undrain", "fiber"}, 0, "fiber back in service"},
		{"an unknown uplink fails with the daemon's reason", []string{"--socket", socket, "drain", "isp9"}, 1, `uplinkctl: drain: unknown uplink "isp9"`},
		{"reload succeeds", []string{"--socket", socket, "reload"}, 0, "configuration reloaded"},
		{"a refused reload says why", []string{"--socket", badSocket, "reload"}, 1, "reload refused, the old configuration keeps running: /etc/uplinkd/uplinkd.toml:7: defaults.quorum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := uplinkctl(ctx, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.contains) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tt.code, tt.contains, out, errOut)
			}
		})
	}
	if !f.drained["dsl"] || f.drained["fiber"] {
		t.Errorf("daemon drained %v, want dsl only", f.drained)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		contains string
	}{
		{"no command", nil, "uplinkctl: no command"},
		{"an unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"drain without a name", []string{"drain"}, "drain: want 1 arguments, got 0 (want: drain NAME)"},
		{"drain with two names", []string{"drain", "a", "b"}, "want 1 arguments, got 2"},
		{"undrain now", []string{"undrain", "--now", "a"}, "undrain has no --now"},
		{"an unknown flag", []string{"status", "--yaml"}, "status: flag provided but not defined: -yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := uplinkctl(context.Background(), tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.contains) || !strings.Contains(errOut, "usage: uplinkctl") {
				t.Errorf("exit %d, want 2; stderr lacks %q:\n%s", code, tt.contains, errOut)
			}
		})
	}
}

func TestEventsFollowsTheStreamUntilStopped(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			f, socket := startDaemon(t, sampleStatus())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			args := []string{"--socket", socket, "events"}
			if asJSON {
				args = append(args, "--json")
			}
			var out syncBuffer
			done := make(chan int, 1)
			go func() { done <- run(ctx, args, &out, &out) }()
			ev := api.Event{Time: fetched, Kind: api.KindState, Uplink: "dsl", From: "up", To: "down", Reason: "carrier lost"}
			select {
			case f.events <- ev: // taken once the stream is open
			case <-time.After(10 * time.Second):
				t.Fatal("the event stream never opened")
			}
			want := "dsl up -> down: carrier lost"
			if asJSON {
				want = `{"time":"2026-03-04T12:00:00Z","kind":"state","uplink":"dsl","from":"up","to":"down","reason":"carrier lost"}`
			}
			for i := 0; i < 1000 && !strings.Contains(out.String(), want); i++ {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit %d after Ctrl-C, want 0", code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("events did not stop with its context")
			}
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[daemon]\nsocket = 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		file     string
		code     int
		contains string
	}{
		{"the packaged example config is valid", "../../packaging/uplinkd.toml", 0, "../../packaging/uplinkd.toml: ok, 2 uplinks: [isp1 isp2]"},
		{"a broken file names file and line", bad, 1, bad + ":2"},
		{"a missing file says so", "/nonexistent.toml", 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := uplinkctl(context.Background(), "check-config", tt.file)
			if code != tt.code || !strings.Contains(out+errOut, tt.contains) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tt.code, tt.contains, out, errOut)
			}
		})
	}
}

// syncBuffer is written by run's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The command-line conventions: help that was asked for goes to stdout with exit 0, for
// uplinkctl and every command; --version names the version, the commit and the Go release.

func TestHelpGoesToStdoutWithExit0(t *testing.T) {
	tests := []struct {
		args []string
		want string // the first line of the usage printed
	}{
		{[]string{"-h"}, "usage: uplinkctl [--socket PATH] COMMAND [ARGS]"},
		{[]string{"--help"}, "usage: uplinkctl [--socket PATH] COMMAND [ARGS]"},
		{[]string{"help"}, "usage: uplinkctl [--socket PATH] COMMAND [ARGS]"},
		{[]string{"--socket", "/nonexistent", "--help"}, "usage: uplinkctl [--socket PATH] COMMAND [ARGS]"},
		{[]string{"status", "--help"}, "usage: uplinkctl [--socket PATH] status [--json] [--watch [-n INTERVAL]]"},
		{[]string{"status", "-h"}, "usage: uplinkctl [--socket PATH] status [--json] [--watch [-n INTERVAL]]"},
		{[]string{"help", "status"}, "usage: uplinkctl [--socket PATH] status [--json] [--watch [-n INTERVAL]]"},
		{[]string{"events", "--help"}, "usage: uplinkctl [--socket PATH] events [--json]"},
		{[]string{"drain", "--help"}, "usage: uplinkctl [--socket PATH] drain [--now] NAME"},
		{[]string{"drain", "isp1", "--help"}, "usage: uplinkctl [--socket PATH] drain [--now] NAME"},
		{[]string{"undrain", "--help"}, "usage: uplinkctl [--socket PATH] undrain NAME"},
		{[]string{"reload", "--help"}, "usage: uplinkctl [--socket PATH] reload"},
		{[]string{"check-config", "--help"}, "usage: uplinkctl check-config [FILE]"},
		{[]string{"version", "--help"}, "usage: uplinkctl version"},
		{[]string{"help", "--help"}, "usage: uplinkctl help [COMMAND]"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := uplinkctl(context.Background(), tt.args...)
			if code != 0 || errOut != "" {
				t.Errorf("exit %d, stderr %q; want exit 0 and nothing on stderr", code, errOut)
			}
			if first, _, _ := strings.Cut(out, "\n"); first != tt.want {
				t.Errorf("first line %q, want %q:\n%s", first, tt.want, out)
			}
		})
	}
}

// TestEveryCommandHasItsOwnHelp keeps the global usage and the per-command usages together.
func TestEveryCommandHasItsOwnHelp(t *testing.T) {
	listed := regexp.MustCompile(`(?m)^  ([a-z][a-z-]*) `).FindAllStringSubmatch(usage, -1)
	if len(listed) < 8 {
		t.Fatalf("found only %d commands in the usage", len(listed))
	}
	seen := map[string]bool{}
	for _, m := range listed {
		seen[m[1]] = true
		if _, ok := commandUsage[m[1]]; !ok {
			t.Errorf("command %q has no entry in commandUsage", m[1])
		}
	}
	for name := range commandUsage {
		if !seen[name] {
			t.Errorf("commandUsage has %q, which the usage does not list", name)
		}
	}
}

func TestHelpForAnUnknownCommandIsAUsageError(t *testing.T) {
	code, out, errOut := uplinkctl(context.Background(), "help", "frobnicate")
	if code != 2 || out != "" || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestVersionNamesVersionCommitAndGo(t *testing.T) {
	oldV, oldC := version.Version, version.Commit
	t.Cleanup(func() { version.Version, version.Commit = oldV, oldC })
	version.Version, version.Commit = "1.2.3", "abc1234"
	want := "uplinkctl 1.2.3 (commit abc1234, " + runtime.Version() + ")\n"
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := uplinkctl(context.Background(), args...)
			if code != 0 || out != want || errOut != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
			}
		})
	}
}

func TestCompleteUplinksPrintsNamesOrNothing(t *testing.T) {
	_, socket := startDaemon(t, sampleStatus())
	code, out, errOut := uplinkctl(context.Background(), "--socket", socket, completeUplinks)
	if want := "fiber\ncable\nlte\ndsl\nspare\nnew\n"; code != 0 || out != want || errOut != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}

	code, out, errOut = uplinkctl(context.Background(), "--socket", "/nonexistent/u.sock", completeUplinks)
	if code == 0 || out != "" || errOut != "" {
		t.Errorf("without a daemon: exit %d, stdout %q, stderr %q; want a failure that prints nothing", code, out, errOut)
	}
	if strings.Contains(usage, completeUplinks) {
		t.Errorf("the usage shows the hidden command %s", completeUplinks)
	}
}

// TestRefusedReloadFailsWithTheReason is what makes `systemctl reload uplinkd` fail for a bad
// file: the unit's ExecReload is `uplinkctl reload`. Changes need root on the real control
// server, so this answers like it does (POST /v1/reload → 422 with the reason) from a stub.
func TestRefusedReloadFailsWithTheReason(t *testing.T) {
	const reason = "reload refused, the old configuration keeps running: /etc/uplinkd/uplinkd.toml:7: defaults.quorum: 4 is more than the 3 targets"
	var refuse atomic.Bool
	refuse.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if refuse.Load() {
			w.WriteHeader(http.StatusUnprocessableEntity)
			w.Write([]byte(`{"error":` + quoteJSON(reason) + `}`))
			return
		}
		w.Write([]byte(`{"ok":true}`))
	})
	socket := serveStub(t, mux)

	code, out, errOut := uplinkctl(context.Background(), "--socket", socket, "reload")
	if code != 1 || out != "" || errOut != "uplinkctl: "+reason+"\n" {
		t.Errorf("refused: exit %d, stdout %q, stderr %q; want exit 1 and the reason", code, out, errOut)
	}
	refuse.Store(false)
	code, out, errOut = uplinkctl(context.Background(), "--socket", socket, "reload")
	if code != 0 || out != "configuration reloaded\n" || errOut != "" {
		t.Errorf("accepted: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = uplinkctl(context.Background(), "--socket", "/nonexistent/u.sock", "reload")
	if code != 2 || !strings.Contains(errOut, "uplinkd is not running") {
		t.Errorf("no daemon: exit %d, stderr %q; want 2", code, errOut)
	}
}

func quoteJSON(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// serveStub serves h on a fresh unix socket until the test ends.
func serveStub(t *testing.T, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ctl") // short: socket paths are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "u.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return socket
}
