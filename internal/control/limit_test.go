package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond, bounded, and fails the test when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// 200 connections from a non-root peer at once: 64 are served, the rest are
// closed at accept, the goroutine count stays bounded, and root's request
// still gets its answer from the reserve. Peer credentials are faked (the
// test runs as one user), through the same hook SO_PEERCRED feeds.
func TestAFloodOfConnectionsIsCappedAndRootStillAnswers(t *testing.T) {
	socket := filepath.Join(shortTempDir(t), "u.sock")
	ln, err := Listen(socket, "")
	if err != nil {
		t.Fatal(err)
	}
	var rootNext atomic.Bool
	fakePeer := func(net.Conn) peer {
		if rootNext.Load() {
			return peer{known: true, uid: 0, pid: 1}
		}
		return peer{known: true, uid: 1000, pid: 4242}
	}
	ll := newLimitListener(ln, 0, fakePeer, testLogger(t))
	serveOn(t, ll, newServer(newFake(), testLogger(t), 0))

	before := runtime.NumGoroutine()
	const flood = 200
	conns := make([]net.Conn, flood)
	var wg sync.WaitGroup
	var dialErrs atomic.Int32
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("unix", socket, 5*time.Second)
			if err != nil {
				dialErrs.Add(1)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	waitFor(t, "every flood connection to be accepted or refused", func() bool {
		s, _, r := ll.counts()
		return s+r+int(dialErrs.Load()) >= flood
	})
	shared, admin, refused := ll.counts()
	grew := runtime.NumGoroutine() - before
	t.Logf("%d connections: %d served, %d closed at accept, %d dial errors; goroutines +%d", flood, shared, refused, dialErrs.Load(), grew)
	if shared != maxSharedConns || admin != 0 || refused+int(dialErrs.Load()) != flood-maxSharedConns {
		t.Errorf("served %d (admin %d), refused %d; want %d served and the rest refused", shared, admin, refused, maxSharedConns)
	}
	if grew > 2*maxSharedConns+16 {
		t.Errorf("goroutines grew by %d for %d connections; the cap should bound them near %d", grew, flood, maxSharedConns)
	}

	// A non-root request now finds the door closed...
	if _, err := NewClient(socket).Status(context.Background()); err == nil {
		t.Error("a non-root request got through with the shared budget full")
	}
	// ... and root's gets through.
	rootNext.Store(true)
	start := time.Now()
	code, _, body := rawDo(t, socket, http.MethodGet, "/v1/status")
	took := time.Since(start)
	t.Logf("root's status request during the flood answered in %v", took)
	if code != http.StatusOK || body["version"] != "test" {
		t.Errorf("root's status during the flood: %d %v", code, body)
	}

	// The budget comes back when the flood ends.
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	waitFor(t, "the shared budget to empty", func() bool { s, _, _ := ll.counts(); return s == 0 })
}

// Refused requests from non-root peers are logged with a bounded copy of
// what the client sent, on one line (slog escapes the newlines).
func TestARefusedRequestLogsABoundedPath(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	h := newHandler(newFake(), log, 0)
	long := "/v1/uplinks/" + strings.Repeat("x\n", 500_000) + "/drain"
	req := httptest.NewRequest(http.MethodPost, "http://uplinkd/v1/reload", nil)
	req.URL.Path = long // what the mux sees for a long, escaped name
	req.URL.RawPath = ""
	req = req.WithContext(context.WithValue(req.Context(), peerKey{}, peer{known: true, uid: 1000, pid: 7}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("got %d, want 403", rec.Code)
	}
	line := buf.String()
	if len(line) > 600 || strings.Count(line, "\n") != 1 {
		t.Errorf("log of a refused 1 MB request is %d bytes, %d lines: %.300q", len(line), strings.Count(line, "\n"), line)
	}
	if !strings.Contains(line, fmt.Sprintf("(%d bytes)", len(long))) || !strings.Contains(line, `x\nx`) {
		t.Errorf("log does not say how long the path was: %.300q", line)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"short text is kept", "isp1", "isp1"},
		{"long text is cut at 128 bytes with its length", strings.Repeat("a", 300), strings.Repeat("a", 128) + "...(300 bytes)"},
		{"a cut never splits a character", strings.Repeat("a", 127) + "é" + "z", strings.Repeat("a", 127) + "...(130 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clip(tc.in); got != tc.want {
				t.Errorf("clip = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestServerRefusesHugeRequestHeaders(t *testing.T) {
	socket, _ := startServer(t, newFake())
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		_, _ = io.WriteString(c, "GET /v1/"+strings.Repeat("a", 1<<20)+" HTTP/1.1\r\nHost: x\r\n\r\n")
	}()
	b := make([]byte, 64)
	n, _ := io.ReadAtLeast(c, b, 12)
	if !strings.HasPrefix(string(b[:n]), "HTTP/1.1 431") {
		t.Errorf("a 1 MB request line got %q, want 431", b[:n])
	}
}

func TestCheckGroup(t *testing.T) {
	if err := CheckGroup(""); err != nil {
		t.Errorf("no group asked for: %v", err)
	}
	if g, err := user.LookupGroupId("0"); err == nil {
		if err := CheckGroup(g.Name); err != nil {
			t.Errorf("group %s exists: %v", g.Name, err)
		}
	}
	err := CheckGroup("no-such-group-uplinkd-test")
	if !errors.Is(err, ErrNoSuchGroup) || !strings.Contains(err.Error(), "root-only (0600)") {
		t.Errorf("a missing group: %v, want ErrNoSuchGroup saying the socket is root-only", err)
	}
}
