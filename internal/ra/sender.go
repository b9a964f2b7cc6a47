package ra

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/internal/metrics"
	"github.com/uplinkd/uplinkd/internal/statefile"
	"golang.org/x/net/ipv6"
)

// Bounds: what a LAN host soliciting in a loop can cost.
const (
	solicitBurst  = 10 // answers in a row before the rate applies
	solicitPerSec = 10 // then this many answers a second per interface
	reopenEvery   = 5 * time.Second
	foreignQuiet  = 10 * time.Minute // a foreign router is warned about again after this
	// goneFor is how long a prefix that left the LAN (a DHCPv6-PD renumbering) is still
	// advertised with lifetimes 0, so hosts stop using it at once (RFC 9096 §3.5, RFC 8978):
	// after 2 h no host holds it any more (RFC 4862 §5.5.3e).
	goneFor = 2 * time.Hour
	maxGone = 16
)

// Sender owns the LAN's router advertisements, a dataplane.Part: every State may change what
// is advertised, and a change goes out at once on every interface, then twice more.
type Sender struct {
	log   *slog.Logger
	stats Stats
	store *statefile.Store // the prefixes that left, remembered across a restart

	mu      sync.Mutex
	closed  bool
	adverts map[string]Advert
	ifaces  map[string]*iface
	openErr map[string]string // the last open failure logged per interface
	reopen  *time.Timer
	wg      sync.WaitGroup
}

// Stats counts what the sender did, for the metrics.
type Stats struct {
	Sent, Solicited, Foreign atomic.Uint64
}

// Last is the last RA sent on one interface.
type Last struct {
	Interface string
	At        time.Time
	Advert    Advert
}

type iface struct {
	name    string
	conn    *ndp.Conn
	mac     net.HardwareAddr
	self    netip.Addr
	kick    chan struct{} // the advert changed
	stop    chan struct{}
	mu      sync.Mutex
	advert  Advert
	last    Last
	tokens  float64
	refill  time.Time
	foreign map[netip.Addr]time.Time   // when each foreign router was last warned about
	gone    map[netip.Prefix]time.Time // prefixes no longer ours, and since when
	// goneChanged: withGone changed gone, which the state file must learn.
	goneChanged bool
}

// NewSender returns a sender that sends nothing until a State has prefixes to advertise. The
// prefixes that left the LAN are kept in store (nil: not across a restart), so a restart
// within their two hours still advertises them dead.
func NewSender(log *slog.Logger, store *statefile.Store) *Sender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{log: log, store: store, ifaces: map[string]*iface{}, openErr: map[string]string{}}
}

var _ dataplane.Part = (*Sender)(nil)

// Set makes the RAs say what st wants. It never blocks on the network.
func (s *Sender) Set(st dataplane.State) error {
	want := Adverts(st)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.adverts = want
	s.sync()
	return nil
}

// sync opens, updates and closes the interfaces to match s.adverts. Called with s.mu held.
func (s *Sender) sync() {
	for n, f := range s.ifaces {
		if _, ok := s.adverts[n]; !ok {
			f.close()
			delete(s.ifaces, n)
			s.log.Info("router advertisements stopped", "interface", n)
		}
	}
	missing := false
	for n, a := range s.adverts {
		f := s.ifaces[n]
		if f == nil {
			var err error
			if f, err = s.open(n); err != nil {
				if msg := err.Error(); s.openErr[n] != msg {
					s.openErr[n] = msg
					s.log.Warn("router advertisements: cannot use the LAN interface yet; retrying", "interface", n, "err", err)
				}
				missing = true
				continue
			}
			delete(s.openErr, n)
			s.ifaces[n] = f
			s.log.Info("router advertisements started", "interface", n, "source", f.self)
		}
		now := time.Now()
		a = f.withGone(a, now)
		if f.goneChanged {
			f.goneChanged = false
			gone := maps.Clone(f.gone)
			s.store.Update(func(st *statefile.State) {
				if st.GonePrefixes == nil {
					st.GonePrefixes = map[string]map[netip.Prefix]time.Time{}
				}
				st.GonePrefixes[n] = gone
				if len(gone) == 0 {
					delete(st.GonePrefixes, n)
				}
			})
		}
		f.set(a)
	}
	if missing && s.reopen == nil {
		s.reopen = time.AfterFunc(reopenEvery, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.reopen = nil
			if !s.closed {
				s.sync()
			}
		})
	}
}

// open starts advertising on interface name: its link-local address must exist (the
// interface is up).
func (s *Sender) open(name string) (*iface, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	c, self, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("no link-local address to send from: %w", err)
	}
	var filter ipv6.ICMPFilter
	filter.SetAll(true)
	filter.Accept(ipv6.ICMPTypeRouterSolicitation)
	filter.Accept(ipv6.ICMPTypeRouterAdvertisement)
	err = errors.Join(c.SetICMPFilter(&filter), c.SetControlMessage(ipv6.FlagHopLimit, true),
		c.JoinGroup(netip.MustParseAddr("ff02::2"))) // all-routers: where solicitations go
	if err != nil {
		c.Close()
		return nil, err
	}
	f := &iface{name: name, conn: c, mac: ifi.HardwareAddr, self: self, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), tokens: solicitBurst, refill: time.Now(), foreign: map[netip.Addr]time.Time{}, gone: map[netip.Prefix]time.Time{}}
	for p, since := range s.store.State().GonePrefixes[name] { // left before a restart
		if len(f.gone) < maxGone && p.IsValid() {
			f.gone[p] = since
		}
	}
	s.wg.Go(func() { s.advertise(f) })
	s.wg.Go(func() { s.listen(f) })
	return f, nil
}

func (f *iface) set(a Advert) {
	f.mu.Lock()
	changed := !f.advert.Equal(a) || f.last.At.IsZero()
	f.advert = a
	f.mu.Unlock()
	if changed {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

// withGone adds to a the prefixes this interface advertised before and that are no longer an
// uplink's (a renumbered delegation), with both lifetimes 0, for goneFor after they left.
func (f *iface) withGone(a Advert, now time.Time) Advert {
	f.mu.Lock()
	defer f.mu.Unlock()
	have := map[netip.Prefix]bool{}
	for _, p := range a.Prefixes {
		have[p.Prefix] = true
		if _, known := f.gone[p.Prefix]; known {
			delete(f.gone, p.Prefix) // back (the delegation returned)
			f.goneChanged = true
		}
	}
	for _, p := range f.advert.Prefixes {
		if _, known := f.gone[p.Prefix]; !have[p.Prefix] && p.Uplink != "" && !known && len(f.gone) < maxGone {
			f.gone[p.Prefix] = now
			f.goneChanged = true
		}
	}
	var gone []PIO
	for p, since := range f.gone {
		if now.Sub(since) >= goneFor {
			delete(f.gone, p)
			f.goneChanged = true
			continue
		}
		gone = append(gone, PIO{Prefix: p}) // no uplink, lifetimes 0
	}
	slices.SortFunc(gone, func(x, y PIO) int { return x.Prefix.Addr().Compare(y.Prefix.Addr()) })
	a.Prefixes = append(slices.Clone(a.Prefixes), gone...)
	return a
}

func (f *iface) close() {
	close(f.stop)
	f.conn.Close() // ends the listener's read
}

// advertise sends the periodic RAs, and a burst after each change.
func (s *Sender) advertise(f *iface) {
	left := 0 // RAs left in the current burst
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-f.kick:
			left = burst
		case <-t.C:
		}
		s.send(f, netip.IPv6LinkLocalAllNodes())
		next := minInterval + rand.N(maxInterval-minInterval)
		if left > 0 {
			left--
			if left > 0 {
				next = burstInterval
			}
		}
		t.Reset(next)
	}
}

// send sends the interface's advert to dst.
func (s *Sender) send(f *iface, dst netip.Addr) {
	now := time.Now()
	f.mu.Lock()
	a := f.advert.At(now) // periodic, solicited and after a change alike
	f.mu.Unlock()
	if err := f.conn.WriteTo(a.Message(f.mac), nil, dst.WithZone(f.name)); err != nil {
		select {
		case <-f.stop:
		default:
			s.log.Warn("router advertisement not sent", "interface", f.name, "to", dst, "err", err)
		}
		return
	}
	s.stats.Sent.Add(1)
	f.mu.Lock()
	f.last = Last{Interface: f.name, At: now, Advert: a}
	f.mu.Unlock()
}

// listen answers router solicitations and notices other routers.
func (s *Sender) listen(f *iface) {
	b := make([]byte, 1500)
	for {
		n, cm, src, err := f.conn.ReadRaw(b)
		if err != nil {
			select {
			case <-f.stop:
				return
			default:
			}
			s.log.Warn("router advertisements: reading the LAN failed", "interface", f.name, "err", err)
			time.Sleep(time.Second) // a broken socket must not spin
			continue
		}
		hops := 0
		if cm != nil {
			hops = cm.HopLimit
		}
		switch h := hear(b[:n], src.WithZone(""), hops, f.self.WithZone("")); h.kind {
		case solicited:
			if f.allow(time.Now()) {
				s.stats.Solicited.Add(1)
				// RFC 4861 §6.2.6 allows a unicast answer: it reaches the host at once, where a
				// multicast one would wait out MIN_DELAY_BETWEEN_RAS.
				dst := h.from
				if !dst.IsValid() {
					dst = netip.IPv6LinkLocalAllNodes()
				}
				s.send(f, dst)
			}
		case foreignRA:
			s.stats.Foreign.Add(1)
			f.warnForeign(s.log, h)
		}
	}
}

// allow is a token bucket over the answers to solicitations.
func (f *iface) allow(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = min(solicitBurst, f.tokens+now.Sub(f.refill).Seconds()*solicitPerSec)
	f.refill = now
	if f.tokens < 1 {
		return false
	}
	f.tokens--
	return true
}

func (f *iface) warnForeign(log *slog.Logger, h heard) {
	now := time.Now()
	f.mu.Lock()
	last, seen := f.foreign[h.from]
	if seen && now.Sub(last) < foreignQuiet {
		f.mu.Unlock()
		return
	}
	if len(f.foreign) > 64 { // bounded: a flood of forged sources forgets the oldest warnings
		clear(f.foreign)
	}
	f.foreign[h.from] = now
	f.mu.Unlock()
	log.Warn("another router advertises on this LAN: hosts mix its lifetimes with uplinkd's and may flap between prefixes; stop it, or set [ipv6] advertise = \"lifetimes\" and let it advertise",
		"interface", f.name, "router", h.from, "prefixes", h.prefixes, "router_lifetime", h.routerLifetime)
}

// Last returns the last RA sent on each interface, by interface name.
func (s *Sender) Last() []Last {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Last
	for _, f := range s.ifaces {
		f.mu.Lock()
		if !f.last.At.IsZero() {
			out = append(out, f.last)
		}
		f.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Last) int { return strings.Compare(a.Interface, b.Interface) })
	return out
}

// Sent returns Last in the control API's form.
func (s *Sender) Sent() []api.RASent {
	var out []api.RASent
	for _, l := range s.Last() {
		r := api.RASent{Interface: l.Interface, At: l.At, RouterLife: l.Advert.RouterLifetime}
		for _, p := range l.Advert.Prefixes {
			if p.Deprecated() {
				r.Deprecated = append(r.Deprecated, p.Prefix.String())
			} else {
				r.Preferred = append(r.Preferred, p.Prefix.String())
			}
		}
		out = append(out, r)
	}
	return out
}

// Counts returns the counters' values for the metrics.
func (s *Stats) Counts() metrics.RACounts {
	return metrics.RACounts{Sent: s.Sent.Load(), Solicited: s.Solicited.Load(), Foreign: s.Foreign.Load()}
}

// Stats returns the sender's counters.
func (s *Sender) Stats() *Stats { return &s.stats }

// Close stops every interface's RAs (without a final RA: a restart must not tell hosts the
// router left) and waits for its goroutines.
func (s *Sender) Close() {
	s.mu.Lock()
	s.closed = true
	if s.reopen != nil {
		s.reopen.Stop()
	}
	for n, f := range s.ifaces {
		f.close()
		delete(s.ifaces, n)
	}
	s.mu.Unlock()
	s.wg.Wait()
}
