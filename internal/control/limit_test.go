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
	"slices"
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

// 200 connections from a non-root peer at once, none sending anything: at
// most 64 stay open (a new one takes the place of the oldest idle one), the
// goroutine count stays bounded, and both a non-root and root's request get
// their answers. Peer credentials are faked (the test runs as one user),
// through the same hook SO_PEERCRED feeds.
func TestAFloodOfConnectionsIsCappedAndRootStillAnswers(t *testing.T) {
	socket := filepath.Join(shortTempDir(t), "u.sock")
	ln, err := Listen(socket, "", nil)
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
	waitFor(t, "every flood connection to be accepted or evicted", func() bool {
		return ll.handled()+int(dialErrs.Load()) >= flood
	})
	shared, admin, refused := ll.counts()
	grew := runtime.NumGoroutine() - before
	t.Logf("%d connections: %d open, %d closed at accept, %d dial errors; goroutines +%d", flood, shared, refused, dialErrs.Load(), grew)
	if shared != maxSharedConns || admin != 0 {
		t.Errorf("open %d (admin %d); want %d", shared, admin, maxSharedConns)
	}
	if grew > 2*maxSharedConns+16 {
		t.Errorf("goroutines grew by %d for %d connections; the cap should bound them near %d", grew, flood, maxSharedConns)
	}

	// Idle connections hold nobody out: a non-root request takes the place of one...
	if code, _, _ := rawDo(t, socket, http.MethodGet, "/v1/status"); code != http.StatusOK {
		t.Errorf("a non-root request with the budget full of idle connections: %d", code)
	}
	// ... and so does root's.
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
	// (but for the non-root request's connection, which its client keeps alive)
	waitFor(t, "the shared budget to empty", func() bool { s, _, _ := ll.counts(); return s <= 1 })
}

// One root process holds 2,000 idle connections (a leaking script, a stuck
// tool): they evict each other, and every later client, root or not, is
// answered. Requests in flight are never cut to make room.
func TestTwoThousandIdleRootConnectionsLockNobodyOut(t *testing.T) {
	socket := filepath.Join(shortTempDir(t), "u.sock")
	ln, err := Listen(socket, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var uid atomic.Uint32 // the next peer's uid
	fakePeer := func(net.Conn) peer { return peer{known: true, uid: uid.Load(), pid: 1} }
	ll := newLimitListener(ln, 0, fakePeer, testLogger(t))
	serveOn(t, ll, newServer(newFake(), testLogger(t), 0))

	// A request in flight: an event stream, which never ends on its own.
	stream, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if _, err := io.WriteString(stream, "GET /v1/events HTTP/1.1\r\nHost: uplinkd\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to be in flight", func() bool { return ll.busy() == 1 })

	const hog = 2000
	conns := make([]net.Conn, 0, hog)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range hog {
		c, err := net.DialTimeout("unix", socket, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	waitFor(t, "every hog connection to be accepted", func() bool { return ll.handled() >= hog+1 })
	shared, admin, _ := ll.counts()
	if shared+admin > maxSharedConns+maxAdminConns {
		t.Errorf("%d connections open, more than the %d the budgets allow", shared+admin, maxSharedConns+maxAdminConns)
	}

	// Root's and a member's status, 100 each, while the hog's connections stay open.
	var took []time.Duration
	for i := range 200 {
		uid.Store(uint32(i % 2 * 1000))
		start := time.Now()
		code, _, _ := rawDo(t, socket, http.MethodGet, "/v1/status")
		took = append(took, time.Since(start))
		if code != http.StatusOK {
			t.Fatalf("request %d (uid %d): %d", i, uid.Load(), code)
		}
	}
	slices.Sort(took)
	t.Logf("status with 2,000 idle root connections held: p50 %v, p95 %v, max %v", took[len(took)/2], took[len(took)*95/100], took[len(took)-1])

	// The stream was never cut to make room: reading it only times out.
	_ = stream.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 4096)
	for range 1000 {
		_, err := stream.Read(buf)
		if err == nil {
			continue // the response's header, events
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("the event stream in flight was closed: %v", err)
		}
		break
	}
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
