package control

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/api"
)

// The handler never panics or answers 5xx, whatever the method, path and query, for root
// and for anyone else.
func FuzzHandler(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v1/status", ""}, {"GET", "/v1/events", ""}, {"POST", "/v1/reload", ""},
		{"POST", "/v1/uplinks/isp1/drain", "now=1"}, {"POST", "/v1/uplinks/isp2/undrain", ""},
		{"POST", "/v1/uplinks/nope/drain", "now=maybe"}, {"DELETE", "/v1/status", ""},
		{"GET", "/v1/../v1/status", ""}, {"GET", "", ""}, {"POST", "/v1/uplinks/%2F/drain", "now=%zz"},
	} {
		f.Add(s[0], s[1], s[2], uint32(0))
		f.Add(s[0], s[1], s[2], uint32(1000))
	}
	f.Fuzz(func(t *testing.T, method, path, query string, uid uint32) {
		h := newHandler(newFake(), nil, 0)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // an event stream ends at once
		ctx = context.WithValue(ctx, peerKey{}, peer{known: true, uid: uid})
		r := (&http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}}).WithContext(ctx)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%q %q?%q: %d %s", method, path, query, w.Code, w.Body)
		}
	})
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The client reads whatever the daemon sends (status, errors, event streams) without panicking.
func FuzzClientDecode(f *testing.F) {
	f.Add(200, `{"version":"test","uplinks":[{"name":"isp1","state":"up","rtt_ns":1}]}`)
	f.Add(403, `{"error":"changing uplinkd needs root; you are uid 1000"}`)
	f.Add(200, `{"time":"2026-01-02T03:04:05Z","kind":"state","uplink":"isp1"}`+"\n\n{}\n")
	f.Add(500, `not json`)
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 100 || code > 999 {
			code = 200
		}
		c := NewClient("/nonexistent")
		c.http = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
		})}
		ctx := context.Background()
		_, _ = c.Status(ctx)
		_ = c.Reload(ctx)
		_ = c.Events(ctx, func(api.Event) {})
	})
}
