package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// PushPort is the port of the push server: on every connection it writes a numbered line every
// PushInterval until the connection breaks, while the client never sends anything — the shape
// of a download or a server-pushed stream, which only survives a takeover if the new master
// knows the connection (its NAT mapping) before the server's next segment arrives.
const PushPort = 19

// PushInterval is the push server's pace.
const PushInterval = 10 * time.Millisecond

// StartPush starts the push server on Server4 in the internet namespace. It runs until Close.
func (l *Lab) StartPush() error { return l.startTCPServer("push", PushPort, servePush) }

// servePush writes "push N\n" every PushInterval until a write fails (the connection broke or
// was closed). A write that cannot complete within 30 s counts as broken.
func servePush(c net.Conn) {
	defer c.Close()
	t := time.NewTicker(PushInterval)
	defer t.Stop()
	for n := 0; ; n++ {
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(c, "push %d\n", n); err != nil {
			return
		}
		<-t.C
	}
}

// Push is the client end of a push stream: it only reads, and records when lines arrive.
type Push struct {
	conn net.Conn
	done chan struct{}

	mu      sync.Mutex
	last    time.Time
	lines   int
	longest time.Duration // longest gap between two lines
	gapEnd  time.Time     // when the longest gap ended
	err     error
}

// DialPush opens a push stream from role's namespace and starts reading it.
func (l *Lab) DialPush(ctx context.Context, role string) (*Push, error) {
	c, err := l.dialServer(ctx, role, "push", PushPort)
	if err != nil {
		return nil, err
	}
	p := &Push{conn: c, done: make(chan struct{})}
	go p.read() // owned by p: ends when the connection is closed or breaks
	if !l.track(func() { p.Close() }) {
		p.Close()
		return nil, errors.New("netlab: DialPush on a closed lab")
	}
	return p, nil
}

func (p *Push) read() {
	defer close(p.done)
	r := bufio.NewScanner(p.conn)
	for r.Scan() {
		now := time.Now()
		p.mu.Lock()
		if !p.last.IsZero() {
			if gap := now.Sub(p.last); gap > p.longest {
				p.longest, p.gapEnd = gap, now
			}
		}
		p.last = now
		p.lines++
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.err = r.Err()
	if p.err == nil {
		p.err = errors.New("closed by the server")
	}
	p.mu.Unlock()
}

// Stats returns the lines received, when the last one arrived, the longest gap between two
// lines, and the error that ended the stream (nil while it runs).
func (p *Push) Stats() (lines int, last time.Time, longest time.Duration, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lines, p.last, p.longest, p.err
}

// WaitData waits until a line arrives after since, the stream ends, ctx ends or limit passes.
func (p *Push) WaitData(ctx context.Context, since time.Time, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		p.mu.Lock()
		last, err := p.last, p.err
		p.mu.Unlock()
		if last.After(since) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("netlab: push stream ended: %w", err)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("netlab: push stream: nothing since %s within %v", since.Format("15:04:05.000"), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(PushInterval):
		}
	}
}

// Close closes the stream and waits for its reader.
func (p *Push) Close() error {
	err := p.conn.Close()
	<-p.done
	return err
}
