package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
)

// framesThenStop is a stdout that ends the command (as Ctrl-C would) after n writes.
type framesThenStop struct {
	mu     sync.Mutex
	b      bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (f *framesThenStop) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.b.Write(p)
	if f.n--; f.n == 0 {
		f.cancel()
	}
	return len(p), nil
}

func watchFrames(t *testing.T, n int, args ...string) string {
	t.Helper()
	_, socket := startDaemon(t, sampleStatus())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := &framesThenStop{n: n, cancel: cancel}
	var errOut bytes.Buffer
	if code := run(ctx, append([]string{"--socket", socket, "status", "--watch", "-n", "100ms"}, args...), out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if ctx.Err() == context.DeadlineExceeded {
		t.Fatal("--watch did not stop when its context ended")
	}
	return out.b.String()
}

func TestWatchWithoutATerminalPrintsSnapshotsSeparatedByABlankLine(t *testing.T) {
	out := watchFrames(t, 3)
	frames := strings.Split(out, "\n\nuplinkd 1.0.0")
	if len(frames) != 3 || strings.Contains(out, clearScreen) {
		t.Fatalf("want 3 frames separated by a blank line and no escape codes, got %d:\n%s", len(frames), out)
	}
	for _, f := range frames {
		if !strings.Contains(f, "active: fiber, cable") {
			t.Errorf("a frame lacks the status:\n%s", f)
		}
	}
}

func TestWatchJSONPrintsOneObjectALine(t *testing.T) {
	out := watchFrames(t, 2, "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var st api.Status
		if err := json.Unmarshal([]byte(l), &st); err != nil || st.Version != "1.0.0" {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

func TestWatchRefusesATooShortInterval(t *testing.T) {
	code, _, stderr := uplinkctl(context.Background(), "status", "--watch", "-n", "10ms")
	if code != exitUnreachable || !strings.Contains(stderr, "below 100ms") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
