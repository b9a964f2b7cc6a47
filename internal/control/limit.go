package control

import (
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Connection limits. Every connection costs a goroutine (and, while it
// blocks in a read, possibly a thread), so a local flood could otherwise
// create thousands. Non-root peers share one budget; the admin uid has a
// reserve of its own on top of it, so an operator's drain or reload gets
// through even while the shared budget is exhausted. When a new connection
// finds no room, the oldest idle connection it may take the place of (one
// with no request in flight: accepted and silent, or between requests) is
// closed to make room; only when every one of them is busy is the new one
// closed. The accept loop never blocks on a full budget, which would starve
// root along with everyone else, and holding idle connections (even 2,000 of
// root's own) locks nobody out.
const (
	maxSharedConns = 64 // any peer
	maxAdminConns  = 8  // reserved for the admin uid, used when the shared budget is full
)

// limitListener applies the connection budgets at accept time, from the
// peer's credentials (SO_PEERCRED), which it reads once per connection. Its
// track method must see the server's connection states (http.Server.ConnState).
type limitListener struct {
	net.Listener
	admin  uint32
	peerOf func(net.Conn) peer // peerCred, or a fake in tests
	log    *slog.Logger

	mu            sync.Mutex
	open          []*limitedConn // admitted and not yet released, oldest first
	shared, adm   int            // connections open in each budget
	maxS, maxA    int
	refused       int       // connections closed at accept, in total
	evicted       int       // idle connections closed to make room, in total
	lastLog       time.Time // of the last warning, to bound them
	refusedLogged int       // refused and evicted at that time
}

func newLimitListener(ln net.Listener, admin uint32, peerOf func(net.Conn) peer, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, admin: admin, peerOf: peerOf, log: log, maxS: maxSharedConns, maxA: maxAdminConns}
}

// Accept returns the next connection within budget; connections over it
// are closed and never reach the server.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		p := l.peerOf(c)
		lc, victim := l.admit(c, p)
		if victim != nil {
			victim.Conn.Close() // its server goroutine sees the error and ends
		}
		if lc != nil {
			return lc, nil
		}
		c.Close()
	}
}

// admit finds c a place in a budget, if need be by evicting the oldest idle
// connection, which it returns for closing.
func (l *limitListener) admit(c net.Conn, p peer) (admitted *limitedConn, victim *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	isAdmin := p.known && p.uid == l.admin
	budget := func() *int {
		switch {
		case l.shared < l.maxS:
			return &l.shared
		case isAdmin && l.adm < l.maxA:
			return &l.adm
		}
		return nil
	}
	b := budget()
	if b == nil {
		// A place held by a connection with nothing in flight is as good as free.
		if victim = l.oldestIdle(isAdmin); victim != nil {
			l.release(victim)
			l.evicted++
			b = budget()
		}
	}
	if b == nil {
		l.refused++
	} else {
		*b++
		admitted = &limitedConn{Conn: c, peer: p, l: l, budget: b, since: time.Now()}
		admitted.idle.Store(true) // accepted, no request yet
		l.open = append(l.open, admitted)
	}
	if total := l.refused + l.evicted; total > l.refusedLogged {
		if now := time.Now(); now.Sub(l.lastLog) >= 10*time.Second {
			l.log.Warn("control: too many connections; closing idle ones to make room, and new ones when none is idle", "open", l.shared+l.adm,
				"limit", l.maxS, "admin_reserve", l.maxA, "refused", l.refused, "evicted", l.evicted, "uid", p.uid, "pid", p.pid)
			l.lastLog, l.refusedLogged = now, total
		}
	}
	return admitted, victim
}

// oldestIdle is the idle connection that has been idle longest among those
// a new one may replace: shared ones for anyone, reserved ones for the admin.
// l.mu is held.
func (l *limitListener) oldestIdle(admin bool) *limitedConn {
	var best *limitedConn
	for _, c := range l.open {
		if !c.idle.Load() || (c.budget == &l.adm && !admin) {
			continue
		}
		if best == nil || c.since.Before(best.since) {
			best = c
		}
	}
	return best
}

// release gives c's place back, once. l.mu is held.
func (l *limitListener) release(c *limitedConn) {
	if c.released {
		return
	}
	c.released = true
	*c.budget--
	if i := slices.Index(l.open, c); i >= 0 {
		l.open = slices.Delete(l.open, i, i+1)
	}
}

// track follows the server's view of each connection: idle (new, or between
// requests) or busy (a request in flight, or hijacked).
func (l *limitListener) track(c net.Conn, s http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	idle := s == http.StateNew || s == http.StateIdle
	if idle && !lc.idle.Load() {
		l.mu.Lock()
		lc.since = time.Now() // idle from now: the oldest idle goes first
		l.mu.Unlock()
	}
	lc.idle.Store(idle)
}

// counts returns the open connections in each budget and the refused ones.
func (l *limitListener) counts() (shared, admin, refused int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shared, l.adm, l.refused
}

// limitedConn is an admitted connection: it knows its peer and gives its
// place in the budget back when closed.
type limitedConn struct {
	net.Conn
	peer     peer
	l        *limitListener
	budget   *int        // the budget it counts in
	idle     atomic.Bool // no request in flight
	since    time.Time   // admitted, or last became idle; l.mu
	released bool        // l.mu
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return err
}

// handled counts the connections accepted so far: open, closed at accept or
// evicted (for tests).
func (l *limitListener) handled() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shared + l.adm + l.refused + l.evicted
}

// busy counts the open connections with a request in flight (for tests).
func (l *limitListener) busy() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.open {
		if !c.idle.Load() {
			n++
		}
	}
	return n
}
