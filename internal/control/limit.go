package control

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// Connection limits. Every connection costs a goroutine (and, while it
// blocks in a read, possibly a thread), so a local flood could otherwise
// create thousands. Non-root peers share one budget; the admin uid has a
// reserve of its own on top of it, so an operator's drain or reload gets
// through even while the shared budget is exhausted. A connection over the
// limit is closed as soon as it is accepted: the accept loop never blocks
// on a full budget, which would starve root along with everyone else.
const (
	maxSharedConns = 64 // any peer
	maxAdminConns  = 8  // reserved for the admin uid, used when the shared budget is full
)

// limitListener applies the connection budgets at accept time, from the
// peer's credentials (SO_PEERCRED), which it reads once per connection.
type limitListener struct {
	net.Listener
	admin  uint32
	peerOf func(net.Conn) peer // peerCred, or a fake in tests
	log    *slog.Logger

	mu            sync.Mutex
	shared, adm   int // connections open in each budget
	maxS, maxA    int
	refused       int       // connections closed at accept, in total
	lastLog       time.Time // of the last "refused" warning, to bound them
	refusedLogged int       // refused at that time
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
		if lc := l.admit(c, p); lc != nil {
			return lc, nil
		}
		c.Close()
	}
}

func (l *limitListener) admit(c net.Conn, p peer) net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	isAdmin := p.known && p.uid == l.admin
	switch {
	case l.shared < l.maxS:
		l.shared++
		return &limitedConn{Conn: c, peer: p, release: l.releaser(&l.shared)}
	case isAdmin && l.adm < l.maxA:
		l.adm++
		return &limitedConn{Conn: c, peer: p, release: l.releaser(&l.adm)}
	}
	l.refused++
	if now := time.Now(); now.Sub(l.lastLog) >= 10*time.Second {
		l.log.Warn("control: too many connections, closing new ones", "open", l.shared+l.adm,
			"limit", l.maxS, "admin_reserve", l.maxA, "refused", l.refused-l.refusedLogged, "uid", p.uid, "pid", p.pid)
		l.lastLog, l.refusedLogged = now, l.refused
	}
	return nil
}

func (l *limitListener) releaser(n *int) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			*n--
			l.mu.Unlock()
		})
	}
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
	peer    peer
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
