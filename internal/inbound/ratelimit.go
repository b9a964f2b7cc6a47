package inbound

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// A verdict of the rate limiter.
type verdict int

const (
	send verdict = iota
	slip         // send a truncated, empty response: a real client retries over TCP
	drop
)

// limiter is response rate limiting after BIND's RRL: each client network (/24, /56) gets
// rate responses a second over UDP; beyond that every slip-th response is sent truncated and
// the rest are dropped, so a spoofed flood cannot turn the box into an amplifier while a real
// resolver behind the same prefix still gets through over TCP. Its memory is fixed: networks
// hash into a fixed table, and networks that collide share a bucket (they are limited
// together, never more loosely).
type limiter struct {
	rate float64
	slip uint32
	seed maphash.Seed

	mu      sync.Mutex
	buckets [4096]bucket
}

type bucket struct {
	net     netip.Prefix
	tokens  float64
	last    time.Time
	dropped uint32
}

func newLimiter(rate int) *limiter {
	return &limiter{rate: float64(rate), slip: 2, seed: maphash.MakeSeed()}
}

// setRate changes the responses per second of every network.
func (l *limiter) setRate(rate int) {
	l.mu.Lock()
	l.rate = float64(rate)
	l.mu.Unlock()
}

// check spends one response of src's network at now. A rate of 0 sends all.
func (l *limiter) check(src netip.Addr, now time.Time) verdict {
	bits := 24
	if src = src.Unmap(); src.Is6() {
		bits = 56
	}
	n, _ := src.Prefix(bits)
	raw, _ := n.Addr().MarshalBinary()
	b := &l.buckets[maphash.Bytes(l.seed, raw)%uint64(len(l.buckets))]

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate <= 0 {
		return send
	}
	if b.net != n && (b.last.IsZero() || now.Sub(b.last) > time.Second) {
		*b = bucket{net: n, tokens: l.rate, last: now} // a bucket idle for a second is anyone's
	}
	b.tokens = min(l.rate, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return send
	}
	b.dropped++
	if l.slip > 0 && b.dropped%l.slip == 0 {
		return slip
	}
	return drop
}
