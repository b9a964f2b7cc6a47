package inbound

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/internal/metrics"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// Bounds of the server: what a query flood can cost.
const (
	udpWorkers   = 4  // per listening address: no goroutine per packet
	maxTCPConns  = 32 // in all; one more is closed at once
	tcpIdle      = 5 * time.Second
	tcpQueries   = 100  // per connection
	udpReadBytes = 4096 // a larger datagram is cut and answered FORMERR
	port         = 53
)

// Server is the authoritative DNS server, a dataplane.Part: every State rebuilds the zone and
// moves the listeners to the uplinks' current addresses. Queries are answered on the address
// they came to, so the answer leaves through the uplink the query came in on (the routing
// plan's `from <address>` rules).
type Server struct {
	log     *slog.Logger
	zone    atomic.Pointer[Zone]
	limiter *limiter
	tcpSem  chan struct{}
	stats   Stats

	mu        sync.Mutex // guards what follows; held briefly, never across I/O waits
	closed    bool
	keys      []config.DNSSECKey // the zone's signing key (and a key rolled in), read when their files are named
	keyFiles  [2]string
	last      dataplane.State // the last state set, built again to re-sign (resign)
	resign    *time.Timer
	listeners map[netip.Addr]*listener
	bindErr   map[netip.Addr]string // the last bind failure logged per address
	conns     map[*net.TCPConn]bool // open TCP connections, closed with the server
	wg        sync.WaitGroup
}

// Stats counts what the server did, for the metrics. Responses include the slipped ones.
type Stats struct {
	Queries, Responses, Slipped, Dropped, TCPRefused atomic.Uint64
}

// Counts returns the counters' values: answered excludes the slipped responses.
func (s *Stats) Counts() metrics.DNSCounts {
	slipped := s.Slipped.Load()
	return metrics.DNSCounts{Queries: s.Queries.Load(), Answered: s.Responses.Load() - min(slipped, s.Responses.Load()),
		Slipped: slipped, Dropped: s.Dropped.Load(), TCPRefused: s.TCPRefused.Load()}
}

type listener struct {
	udp *net.UDPConn
	tcp *net.TCPListener
}

// NewServer returns a server that listens on nothing until a State enables [dns].
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{log: log, limiter: newLimiter(0), tcpSem: make(chan struct{}, maxTCPConns),
		listeners: map[netip.Addr]*listener{}, bindErr: map[netip.Addr]string{}, conns: map[*net.TCPConn]bool{}}
}

var _ dataplane.Part = (*Server)(nil)

// Set publishes s: the new answers are in force when Set returns.
func (s *Server) Set(st dataplane.State) error {
	s.mu.Lock()
	keys := s.signingKeys(st.DNS)
	s.last = st
	if s.resign == nil && !s.closed {
		s.resign = time.AfterFunc(resignEvery, s.resignNow)
	} else if s.resign != nil {
		s.resign.Reset(resignEvery)
	}
	s.mu.Unlock()
	prev := s.zone.Load()
	z := BuildSigned(st, prev, time.Now(), keys...)
	if !st.DNS.Serve {
		z = nil // the names are published by updates only
	}
	s.zone.Store(z)
	if z != nil && (prev == nil || z.Serial != prev.Serial) {
		attrs := []any{"zone", z.Origin, "serial", z.Serial}
		for _, n := range st.DNS.Names {
			attrs = append(attrs, n.Name, z.Published[n.Name])
		}
		s.log.Info("dns answers", attrs...)
	}
	want := map[netip.Addr]bool{}
	if z != nil {
		s.limiter.setRate(st.DNS.RateLimit)
		for _, u := range st.Uplinks {
			for _, a := range u.Addrs {
				want[a] = true
			}
		}
	}
	s.listen(want)
	return nil
}

// resignEvery rebuilds an unchanged zone so that its signatures never come near their expiry
// (they are made again with less than resignBefore left).
const resignEvery = 6 * time.Hour

func (s *Server) resignNow() {
	s.mu.Lock()
	st, closed := s.last, s.closed
	s.mu.Unlock()
	if !closed && st.DNS.Enabled() && st.DNS.DNSSEC != "" {
		s.Set(st)
	}
}

// signingKeys are the keys of [dns] dnssec and dnssec_next, read when the files named change;
// a file that cannot be read later (the config judged it already) keeps the keys in use.
// Called with s.mu held.
func (s *Server) signingKeys(d uplink.DNS) []config.DNSSECKey {
	files := [2]string{d.DNSSEC, d.DNSSECNext}
	if d.DNSSEC == "" || !d.Enabled() {
		s.keys, s.keyFiles = nil, [2]string{}
		return nil
	}
	if files == s.keyFiles && len(s.keys) > 0 && s.keys[0].DNSKEY.Hdr.Name == d.Zone {
		return s.keys
	}
	var keys []config.DNSSECKey
	for _, f := range files {
		if f == "" {
			continue
		}
		k, err := config.LoadDNSSECKey(f, d.Zone)
		if err != nil {
			s.log.Error("dns: a signing key cannot be read; answers stay as they were signed", "file", f, "err", err)
			return s.keys
		}
		keys = append(keys, k)
	}
	s.keys, s.keyFiles = keys, files
	attrs := []any{"zone", d.Zone, "key_tag", keys[0].KeyTag(), "ds", keys[0].DS().String()}
	if len(keys) > 1 {
		attrs = append(attrs, "rolling_in", keys[1].KeyTag(), "next_ds", keys[1].DS().String())
	}
	s.log.Info("dns: signing the zone", attrs...)
	return s.keys
}

// Zone is the zone in force; nil when nothing is published.
func (s *Server) Zone() *Zone { return s.zone.Load() }

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// listen opens what is missing of want and closes what is no longer wanted.
func (s *Server) listen(want map[netip.Addr]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for a, l := range s.listeners {
		if !want[a] {
			l.close()
			delete(s.listeners, a)
			s.log.Info("dns listener closed", "addr", a)
		}
	}
	for a := range want {
		if s.listeners[a] != nil {
			continue
		}
		l, err := open(a)
		if err != nil {
			if msg := err.Error(); s.bindErr[a] != msg {
				s.bindErr[a] = msg
				s.log.Warn("dns listener", "addr", a, "err", err)
			}
			continue
		}
		delete(s.bindErr, a)
		s.listeners[a] = l
		s.log.Info("dns listening", "addr", netip.AddrPortFrom(a, port).String())
		for range udpWorkers {
			s.wg.Go(func() { s.serveUDP(l.udp) })
		}
		s.wg.Go(func() { s.acceptTCP(l.tcp) })
	}
}

func open(a netip.Addr) (*listener, error) {
	ap := netip.AddrPortFrom(a, port)
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, err
	}
	t, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
	if err != nil {
		u.Close()
		return nil, err
	}
	return &listener{udp: u, tcp: t}, nil
}

func (l *listener) close() {
	l.udp.Close()
	l.tcp.Close()
}

// Close stops every listener and waits for the workers.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	if s.resign != nil {
		s.resign.Stop()
	}
	for a, l := range s.listeners {
		l.close()
		delete(s.listeners, a)
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serveUDP(c *net.UDPConn) {
	buf := make([]byte, udpReadBytes)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n == 0 {
			continue
		}
		s.stats.Queries.Add(1)
		v := s.limiter.check(from.Addr(), time.Now())
		if v == drop {
			s.stats.Dropped.Add(1)
			continue
		}
		out := RespondTo(s.zone.Load(), buf[:n], from.Addr(), false, v == slip)
		if out == nil {
			continue
		}
		if v == slip {
			s.stats.Slipped.Add(1)
		}
		if _, err := c.WriteToUDPAddrPort(out, from); err == nil {
			s.stats.Responses.Add(1)
		}
	}
}

func (s *Server) acceptTCP(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond) // e.g. out of descriptors: don't spin
			continue
		}
		select {
		case s.tcpSem <- struct{}{}:
		default:
			s.stats.TCPRefused.Add(1)
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			<-s.tcpSem
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				<-s.tcpSem
			}()
			s.serveTCP(c)
		})
	}
}

// serveTCP answers the queries of one connection (RFC 7766), one at a time, until it is idle
// for tcpIdle, has asked tcpQueries, or the server closes.
func (s *Server) serveTCP(c *net.TCPConn) {
	defer c.Close()
	var client netip.Addr
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		client = a.AddrPort().Addr()
	}
	var lenBuf [2]byte
	for range tcpQueries {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		s.stats.Queries.Add(1)
		out := RespondTo(s.zone.Load(), q, client, true, false)
		if out == nil {
			return
		}
		c.SetWriteDeadline(time.Now().Add(tcpIdle))
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
			return
		}
		s.stats.Responses.Add(1)
	}
}
