package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/uplinkd/uplinkd/internal/api"
)

// Backend is what the control API needs from the daemon. Implementations must be goroutine-safe:
// every request runs on its own goroutine.
type Backend interface {
	// Status returns the daemon's last snapshot. It must be cheap — a copy under a lock, no
	// kernel dump, no wait for the run loop — because any local user who can open the socket
	// may call it as often as they like: whatever is costly to learn (connection counts) is
	// refreshed by the daemon at a bounded rate and only read here.
	Status() api.Status
	// Drain sets or clears an uplink's drained flag. now moves its existing connections away at
	// once instead of letting them finish. An unknown name returns an error wrapping ErrUnknownUplink.
	Drain(name string, drained bool, now bool) error
	// Reload validates and applies the config file again; the error explains why it was refused.
	Reload() error
	// Standby puts the box in standby in its gateway pair (on) or makes it active again; a box
	// not in a pair returns an error wrapping ErrNotInPair.
	Standby(on bool) error
	// Subscribe streams events until ctx ends, then closes the channel.
	Subscribe(ctx context.Context) <-chan api.Event
}

// The errors Backend implementations wrap, defined with the wire types they share.
var (
	ErrNotInPair     = api.ErrNotInPair
	ErrUnknownUplink = api.ErrUnknownUplink
)

// adminUID is the only uid allowed to change the daemon.
const adminUID = 0

// NewServer returns an http.Server serving the control API for b. Requests that change the
// daemon are allowed for uid 0 only; reads for anyone who can open the socket.
// Shutdown also ends open event streams.
func NewServer(b Backend, log *slog.Logger) *http.Server {
	return newServer(b, log, adminUID)
}

func newServer(b Backend, log *slog.Logger, admin uint32) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler: newHandler(b, log, admin),
		// A client that is slow to send its request, or idle between requests, holds a place
		// in the connection budget (limit.go): both are bounded. No ReadTimeout: requests
		// have no body, and it would cut the event stream.
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       30 * time.Second,
		// Requests are a request line and a few headers; a longer one is refused with 431
		// before any handler (or log line) sees it.
		MaxHeaderBytes: maxHeaderBytes,
		// No WriteTimeout: the event stream is long-lived.
		ConnContext: withPeer,
		BaseContext: func(net.Listener) context.Context { return base },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Event streams never go idle; cancelling their context lets Shutdown finish.
	srv.RegisterOnShutdown(cancel)
	// Shutdown waits up to 5 s for a connection that has not sent its first request (Go's
	// client dials spare connections like that); such a connection has nothing in flight.
	var fresh freshConns
	srv.ConnState = fresh.track
	srv.RegisterOnShutdown(fresh.closeAll)
	return srv
}

// freshConns are the connections that have not started a request yet.
type freshConns struct {
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	shutdown bool
}

func (f *freshConns) track(c net.Conn, s http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case s == http.StateNew && f.shutdown:
		c.Close()
	case s == http.StateNew:
		if f.conns == nil {
			f.conns = map[net.Conn]struct{}{}
		}
		f.conns[c] = struct{}{}
	default:
		delete(f.conns, c)
	}
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shutdown = true
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// maxHeaderBytes bounds a request's line and headers.
const maxHeaderBytes = 16 << 10

// Serve serves the control API on ln until ctx ends, then shuts down, giving requests in flight
// up to two seconds. It returns nil after a shutdown caused by ctx. At most 64 connections are
// open at once, plus 8 reserved for root (see limit.go).
func Serve(ctx context.Context, ln net.Listener, b Backend, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return serve(ctx, newLimitListener(ln, adminUID, peerCred, log), newServer(b, log, adminUID))
}

func serve(ctx context.Context, ln net.Listener, srv *http.Server) error {
	if ll, ok := ln.(*limitListener); ok { // it needs to know which connections are idle
		prev := srv.ConnState
		srv.ConnState = func(c net.Conn, s http.ConnState) {
			if prev != nil {
				prev(c, s)
			}
			ll.track(c, s)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("control: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc // http.ErrServerClosed
	return nil
}

type handler struct {
	b     Backend
	log   *slog.Logger
	admin uint32
	mux   *http.ServeMux
}

func newHandler(b Backend, log *slog.Logger, admin uint32) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{b: b, log: log, admin: admin, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/status", h.status)
	h.mux.HandleFunc("GET /v1/events", h.events)
	h.mux.HandleFunc("POST /v1/uplinks/{name}/drain", h.changer(h.drain))
	h.mux.HandleFunc("POST /v1/uplinks/{name}/undrain", h.changer(h.undrain))
	h.mux.HandleFunc("POST /v1/reload", h.changer(h.reload))
	h.mux.HandleFunc("POST /v1/ha/standby", h.changer(h.standby(true)))
	h.mux.HandleFunc("POST /v1/ha/active", h.changer(h.standby(false)))
	return h
}

// ServeHTTP routes through the mux, but answers the mux's own 404 and 405 and unclean paths
// with JSON errors like every other error of this API.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The mux would redirect an unclean path; an API client that sends one has a bug, say so.
	if p := r.URL.EscapedPath(); p == "" || p[0] != '/' || path.Clean(p) != p {
		writeError(w, http.StatusNotFound, fmt.Sprintf("malformed path %q", r.URL.EscapedPath()))
		return
	}
	if _, pattern := h.mux.Handler(r); pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	rec := &statusRecorder{header: http.Header{}}
	h.mux.ServeHTTP(rec, r)
	switch rec.code {
	case http.StatusMethodNotAllowed:
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed for %s (allowed: %s)", r.Method, r.URL.Path, allow))
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	}
}

// statusRecorder captures what the mux would have answered, without writing it.
type statusRecorder struct {
	header http.Header
	code   int
}

func (s *statusRecorder) Header() http.Header         { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.b.Status())
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "event stream: connection cannot stream")
		return
	}
	ctx := r.Context()
	ch := h.b.Subscribe(ctx)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl.Flush() // the client sees the stream open before the first event
	enc := json.NewEncoder(w)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if err := enc.Encode(ev); err != nil {
				return // the client went away
			}
			fl.Flush()
		}
	}
}

// changer lets only the admin uid through to f.
func (h *handler) changer(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := peerFrom(r.Context())
		if !p.known {
			writeError(w, http.StatusForbidden, "changing uplinkd needs root; could not read your credentials from the socket")
			return
		}
		if p.uid != h.admin {
			h.log.Info("control: change refused", "method", clip(r.Method), "path", clip(r.URL.Path), "uid", p.uid, "pid", p.pid)
			writeError(w, http.StatusForbidden, fmt.Sprintf("changing uplinkd needs root; you are uid %d", p.uid))
			return
		}
		f(w, r)
	}
}

func (h *handler) drain(w http.ResponseWriter, r *http.Request) {
	now, err := boolParam(r, "now")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	h.setDrained(w, r, true, now)
}

func (h *handler) undrain(w http.ResponseWriter, r *http.Request) {
	h.setDrained(w, r, false, false)
}

func (h *handler) setDrained(w http.ResponseWriter, r *http.Request, drained, now bool) {
	name := r.PathValue("name")
	verb := "undrain"
	if drained {
		verb = "drain"
	}
	p := peerFrom(r.Context())
	err := h.b.Drain(name, drained, now)
	h.log.Info("control: "+verb, "uplink", clip(name), "now", now, "uid", p.uid, "pid", p.pid, "err", err)
	switch {
	case errors.Is(err, ErrUnknownUplink):
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s: unknown uplink %q", verb, name))
	case err != nil:
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s %s: %v", verb, name, err))
	default:
		writeJSON(w, http.StatusOK, okBody{OK: true})
	}
}

func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	p := peerFrom(r.Context())
	err := h.b.Reload()
	h.log.Info("control: reload", "uid", p.uid, "pid", p.pid, "err", err)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "reload refused, the old configuration keeps running: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, okBody{OK: true})
}

// standby returns the handler that puts the box in standby (on) or makes it active.
func (h *handler) standby(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := peerFrom(r.Context())
		err := h.b.Standby(on)
		h.log.Info("control: ha", "standby", on, "uid", p.uid, "pid", p.pid, "err", err)
		switch {
		case errors.Is(err, ErrNotInPair):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, err.Error())
		default:
			writeJSON(w, http.StatusOK, okBody{OK: true})
		}
	}
}

// maxLogged bounds what a client sent that goes into a log line.
const maxLogged = 128

// clip makes client-supplied text fit for a log line: at most maxLogged bytes, with the length
// of what was cut. slog quotes the value (text) or escapes it (JSON), so control characters
// cannot forge a line.
func clip(s string) string {
	if len(s) <= maxLogged {
		return s
	}
	cut := maxLogged
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("...(%d bytes)", len(s))
}

func boolParam(r *http.Request, key string) (bool, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("bad value %q for %s: want 1 or 0", v, key)
	}
	return b, nil
}

type okBody struct {
	OK bool `json:"ok"`
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // a failed write means the client left
}
