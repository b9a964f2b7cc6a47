package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

// rawClient speaks plain HTTP over the socket, to see exactly what the server answers.
func rawClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

func rawDo(t *testing.T, socket, method, path string) (code int, hdr http.Header, body map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://uplinkd"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rawClient(socket).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v: %q", method, path, err, b)
	}
	return resp.StatusCode, resp.Header, body
}

func TestStatusIsTheBackendsStatusAsJSON(t *testing.T) {
	f := newFake()
	socket, _ := startServer(t, f)

	code, hdr, body := rawDo(t, socket, "GET", "/v1/status")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/status: %d %q, want 200 application/json", code, hdr.Get("Content-Type"))
	}
	ups, _ := body["uplinks"].([]any)
	if len(ups) != 2 {
		t.Fatalf("uplinks: %v", body["uplinks"])
	}
	first := ups[0].(map[string]any)
	for key, want := range map[string]any{"name": "isp1", "state": "up", "active": true, "connections": 3.0, "rtt_ns": 12e6} {
		if first[key] != want {
			t.Errorf("uplinks[0].%s = %v, want %v", key, first[key], want)
		}
	}

	st, err := NewClient(socket).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Uplinks) != 2 || st.Uplinks[1].State != uplink.Down || !st.Carrying() || !st.Started.Equal(f.status.Started) {
		t.Errorf("client decoded %+v", st)
	}
}

func TestDrainAndUndrain(t *testing.T) {
	f := newFake()
	socket, _ := startServer(t, f)
	c := NewClient(socket)
	ctx := context.Background()

	tests := []struct {
		name    string
		call    func() error
		want    drainCall
		wantErr string
		code    int
	}{
		{name: "drain marks the uplink drained", call: func() error { return c.Drain(ctx, "isp2", false) }, want: drainCall{"isp2", true, false}},
		{name: "drain now passes now to the backend", call: func() error { return c.Drain(ctx, "isp1", true) }, want: drainCall{"isp1", true, true}},
		{name: "undrain clears the flag", call: func() error { return c.Undrain(ctx, "isp1") }, want: drainCall{"isp1", false, false}},
		{name: "draining an unknown uplink is a 404 naming it", call: func() error { return c.Drain(ctx, "isp9", false) }, wantErr: `drain: unknown uplink "isp9"`, code: 404},
		{name: "undraining an unknown uplink is a 404 naming it", call: func() error { return c.Undrain(ctx, "nope") }, wantErr: `undrain: unknown uplink "nope"`, code: 404},
		{name: "a name with a slash is escaped and unknown", call: func() error { return c.Drain(ctx, "a/b", false) }, wantErr: `unknown uplink "a/b"`, code: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.wantErr != "" {
				var ae *APIError
				if !errors.As(err, &ae) || ae.StatusCode != tt.code || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %d %q", err, tt.code, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := f.lastDrain(); got != tt.want {
				t.Errorf("backend saw %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBadRequestsGetJSONErrors(t *testing.T) {
	socket, _ := startServer(t, newFake())
	tests := []struct {
		name, method, path string
		code               int
		wantErr, allow     string
	}{
		{"a wrong method is 405 with Allow", "DELETE", "/v1/status", 405, "method DELETE is not allowed for /v1/status", "GET, HEAD"},
		{"GET on a change is 405", "GET", "/v1/reload", 405, "not allowed", "POST"},
		{"POST on the status is 405", "POST", "/v1/status", 405, "not allowed", "GET, HEAD"},
		{"an unknown path is 404", "GET", "/v2/status", 404, "no such endpoint: GET /v2/status", ""},
		{"an uplink path without action is 404", "POST", "/v1/uplinks/isp1", 404, "no such endpoint", ""},
		{"an empty uplink name is a malformed path", "POST", "/v1/uplinks//drain", 404, "malformed path", ""},
		{"dot segments are a malformed path", "GET", "/v1/x/../status", 404, "malformed path", ""},
		{"a trailing slash is a malformed path", "GET", "/v1/status/", 404, "malformed path", ""},
		{"a bad now value is 400", "POST", "/v1/uplinks/isp1/drain?now=maybe", 400, `bad value "maybe" for now`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, body := rawDo(t, socket, tt.method, tt.path)
			msg, _ := body["error"].(string)
			if code != tt.code || !strings.Contains(msg, tt.wantErr) {
				t.Errorf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, code, msg, tt.code, tt.wantErr)
			}
			if hdr.Get("Allow") != tt.allow {
				t.Errorf("Allow: %q, want %q", hdr.Get("Allow"), tt.allow)
			}
		})
	}
}

func TestReload(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantErr string
	}{
		{name: "a good config reloads", err: nil},
		{name: "a bad config is refused with a 422 carrying the reason", err: errBadConfig, wantErr: "reload refused, the old configuration keeps running: " + errBadConfig.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.reloadErr = tt.err
			socket, _ := startServer(t, f)
			err := NewClient(socket).Reload(context.Background())
			if f.reloads != 1 {
				t.Errorf("backend reloaded %d times, want 1", f.reloads)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.StatusCode != 422 || err.Error() != tt.wantErr {
				t.Fatalf("got %v, want 422 %q", err, tt.wantErr)
			}
		})
	}
}

func TestChangesNeedTheAdminUID(t *testing.T) {
	f := newFake()
	socket := shortTempDir(t) + "/uplinkd.sock"
	ln, err := Listen(socket, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	me := uint32(os.Geteuid())
	serveOn(t, ln, newServer(f, testLogger(t), me+1)) // we are not the admin here
	c := NewClient(socket)
	ctx := context.Background()

	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("reading needs no privilege: %v", err)
	}
	for name, call := range map[string]func() error{
		"drain":   func() error { return c.Drain(ctx, "isp1", false) },
		"undrain": func() error { return c.Undrain(ctx, "isp1") },
		"reload":  func() error { return c.Reload(ctx) },
	} {
		err := call()
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "changing uplinkd needs root; you are uid ") {
			t.Errorf("%s by a non-admin: %v, want 403 needs root", name, err)
		}
	}
	if _, ok := f.lastDrain(); ok || f.reloads != 0 {
		t.Error("a refused change reached the backend")
	}
}

func TestEventStream(t *testing.T) {
	f := newFake()
	socket, stop := startServer(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	got := make(chan api.Event, 4)
	done := make(chan error, 1)
	go func() { done <- NewClient(socket).Events(ctx, func(e api.Event) { got <- e }) }()
	recv(t, f.subscribed, "the subscription")

	sent := []api.Event{
		{Kind: api.KindState, Uplink: "isp1", From: "up", To: "down", Reason: "3 rounds without quorum"},
		{Kind: api.KindActive, Active: []string{"isp2"}, Reason: "isp1 down", Took: 1500000},
	}
	for _, ev := range sent {
		f.publish(ev)
		e := recv(t, got, "an event")
		if e.Kind != ev.Kind || e.Uplink != ev.Uplink || e.To != ev.To || e.Took != ev.Took {
			t.Errorf("received %+v, want %+v", e, ev)
		}
	}

	t.Run("the client stopping ends the subscription", func(t *testing.T) {
		cancel()
		if err := recv(t, done, "Events to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("Events returned %v, want context.Canceled", err)
		}
		recv(t, f.ended, "the backend subscription to end")
	})

	t.Run("the server stopping ends open streams", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			done <- NewClient(socket).Events(context.Background(), func(api.Event) {})
		}()
		recv(t, f.subscribed, "the second subscription")
		stop()
		err := recv(t, done, "Events to return")
		if err == nil || !strings.Contains(err.Error(), "closed the event stream") {
			t.Errorf("Events returned %v, want closed stream", err)
		}
		recv(t, f.ended, "the backend subscription to end")
	})
}

// BenchmarkStatusRoundTrip measures one uplinkctl status: request, encode, decode, over the socket.
func BenchmarkStatusRoundTrip(b *testing.B) {
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	socket := dir + "/u.sock"
	ln, err := Listen(socket, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, newServer(newFake(), nil, uint32(os.Geteuid()))) }()
	defer func() { cancel(); <-done }()
	c := NewClient(socket)
	for b.Loop() {
		if _, err := c.Status(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// A connection that never sends a request (Go's client dials spare ones) must not hold up the
// daemon's stop: http.Server.Shutdown alone would wait up to 5 s for it.
func TestStoppingDoesNotWaitForConnectionsWithoutARequest(t *testing.T) {
	socket, stop := startServer(t, newFake())
	silent, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// The server accepts in order: once a later connection is answered, the silent one is known.
	if code, _, _ := rawDo(t, socket, "GET", "/v1/status"); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
	begin := time.Now()
	stop()
	// serve gives requests in flight 2 s; nothing is in flight, so it must not use them.
	if took := time.Since(begin); took > time.Second {
		t.Errorf("stopping took %v: the server waited for a connection that never sent a request", took)
	}
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the silent connection read %d, %v; want EOF (closed by the server)", n, err)
	}
}
