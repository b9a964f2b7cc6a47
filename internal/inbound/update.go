package inbound

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// Bounds of the updater.
const (
	updateTimeout    = 2 * time.Second // per exchange
	updateMaxBackoff = time.Minute
)

// Updater sends the published names to a zone's primary as RFC 2136 updates ([dns.update]),
// a dataplane.Part. Set only records what should be published; a goroutine of its own sends,
// so a slow or dead primary never blocks the engine. An update replaces each name's A and
// AAAA RRsets, is signed with TSIG, leaves through a live uplink with that uplink's own address
// (never the dead one, whose provider would drop it), is retried with backoff until the server
// confirms it, and is then checked with a query.
type Updater struct {
	log     *slog.Logger
	want    atomic.Pointer[updateJob]
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	start   sync.Once
	stopped sync.Once
	// Confirmed counts the updates the server confirmed and a query then found in place.
	Confirmed atomic.Uint64
	now       func() time.Time
}

// updateJob is one desired content of the names, and the ways to the server.
type updateJob struct {
	cfg   uplink.DNSUpdate
	ttl   uint32
	names []string // in configuration order
	addrs map[string][]netip.Addr
	paths []updatePath // live uplinks first
	text  string       // what the server must hold: names and addresses
	at    time.Time    // of the decision
}

// updatePath is one uplink to send through: its mark and its own address.
type updatePath struct {
	uplink string
	mark   uint32
	src    netip.Addr
}

// NewUpdater returns an updater that sends nothing until a State configures [dns.update].
func NewUpdater(log *slog.Logger) *Updater {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Updater{log: log, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), now: time.Now}
}

var _ dataplane.Part = (*Updater)(nil)

// Set records what st publishes; a provisional state (no verdict yet) publishes nothing.
func (u *Updater) Set(st dataplane.State) error {
	if st.Provisional {
		return nil
	}
	if !st.DNS.Enabled() || !st.DNS.Update.Enabled() {
		u.want.Store(nil)
		return nil
	}
	job := &updateJob{cfg: st.DNS.Update, ttl: uint32(st.DNS.TTL / time.Second), addrs: map[string][]netip.Addr{}, at: u.now()}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %d", job.cfg.Zone, job.cfg.Server, job.ttl)
	for _, n := range st.DNS.Names {
		a := st.Published(n)
		job.names = append(job.names, n.Name)
		job.addrs[n.Name] = a
		fmt.Fprintf(&b, " %s=%v", n.Name, a)
	}
	job.text = b.String()
	job.paths = paths(st, job.cfg.Server.Addr())
	if old := u.want.Load(); old != nil && old.text == job.text && slices.Equal(old.paths, job.paths) {
		return nil
	}
	u.want.Store(job)
	u.start.Do(func() { go u.run() })
	select {
	case u.kick <- struct{}{}:
	default:
	}
	return nil
}

// paths are the uplinks an update may leave by: those usable in the server's family (the
// active ones first), then, if none is, every uplink with an address of that family.
func paths(st dataplane.State, server netip.Addr) []updatePath {
	v6 := server.Is6() && !server.Is4In6()
	var usable, rest []updatePath
	for _, u := range st.Uplinks {
		i := slices.IndexFunc(u.Addrs, func(a netip.Addr) bool { return a.Is6() == v6 })
		if i < 0 {
			continue
		}
		p := updatePath{uplink: u.Name, mark: u.Mark, src: u.Addrs[i]}
		ok, active := u.Usable, u.Active
		if v6 {
			ok, active = u.Usable6, u.Active6
		}
		switch {
		case ok && active:
			usable = slices.Insert(usable, 0, p)
		case ok:
			usable = append(usable, p)
		default:
			rest = append(rest, p)
		}
	}
	if len(usable) > 0 {
		return usable
	}
	return rest
}

// Close stops the sender.
func (u *Updater) Close() {
	u.stopped.Do(func() { close(u.stop) })
	started := true
	u.start.Do(func() { started = false })
	if started {
		<-u.done
	}
}

func (u *Updater) run() {
	defer close(u.done)
	var confirmed string
	backoff := time.Second
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-u.kick:
			backoff = time.Second
		case <-retry.C:
		}
		job := u.want.Load()
		if job == nil || job.text == confirmed {
			continue
		}
		via, err := u.send(job)
		if err == nil {
			confirmed = job.text
			u.Confirmed.Add(1)
			u.log.Info("dns update confirmed", "server", job.cfg.Server, "zone", job.cfg.Zone, "via", via,
				"after", u.now().Sub(job.at).Round(time.Millisecond))
			continue
		}
		u.log.Warn("dns update failed; retrying", "server", job.cfg.Server, "zone", job.cfg.Zone, "in", backoff, "err", err)
		retry.Reset(backoff)
		backoff = min(2*backoff, updateMaxBackoff)
	}
}

// send tries each path in turn until one reaches the server; a server's refusal is final for
// this attempt. It returns the uplink that carried the confirmed update.
func (u *Updater) send(job *updateJob) (string, error) {
	key, err := config.LoadTSIGKey(job.cfg.KeyFile)
	if err != nil {
		return "", fmt.Errorf("tsig key: %w", err)
	}
	if len(job.paths) == 0 {
		return "", errors.New("no uplink has an address of the server's family")
	}
	var errs []error
	for _, p := range job.paths {
		err := u.sendVia(job, key, p)
		if err == nil {
			return p.uplink, nil
		}
		var refused serverError
		if errors.As(err, &refused) {
			return "", fmt.Errorf("via %s: %w", p.uplink, err)
		}
		errs = append(errs, fmt.Errorf("via %s: %w", p.uplink, err))
	}
	return "", errors.Join(errs...)
}

// serverError is an answer of the server that is not NOERROR: another path will not help.
type serverError struct{ rcode int }

func (e serverError) Error() string {
	if e.rcode == dns.RcodeNotAuth {
		return "the server refused the TSIG signature (NOTAUTH): the key's name or secret differs from the server's"
	}
	return fmt.Sprintf("the server answered %s", dns.RcodeToString[e.rcode])
}

func (u *Updater) sendVia(job *updateJob, key config.TSIGKey, p updatePath) error {
	c := &dns.Client{Net: "tcp", Timeout: updateTimeout, TsigSecret: map[string]string{key.Name: key.Secret},
		Dialer: &net.Dialer{Timeout: updateTimeout, LocalAddr: &net.TCPAddr{IP: p.src.AsSlice()}, Control: probe.MarkControl(p.mark)}}
	m := new(dns.Msg)
	m.SetUpdate(job.cfg.Zone)
	for _, name := range job.names {
		m.RemoveRRset([]dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET}},
			&dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}}})
		var add []dns.RR
		for _, a := range job.addrs[name] {
			if a.Is4() {
				add = append(add, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: job.ttl}, A: a.AsSlice()})
			} else {
				add = append(add, &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: job.ttl}, AAAA: a.AsSlice()})
			}
		}
		m.Insert(add)
	}
	m.SetTsig(key.Name, dns.HmacSHA256, 300, u.now().Unix())
	server := job.cfg.Server.String()
	r, _, err := c.Exchange(m, server)
	switch {
	case r != nil && r.Rcode != dns.RcodeSuccess:
		return serverError{r.Rcode}
	case errors.Is(err, dns.ErrAuth):
		return serverError{dns.RcodeNotAuth}
	case err != nil:
		return err
	}
	// Check with a query, through the same uplink, that the server holds what was sent.
	c.TsigSecret = nil
	for _, name := range job.names {
		var got []netip.Addr
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			q := new(dns.Msg)
			q.SetQuestion(name, t)
			r, _, err := c.Exchange(q, server)
			if err != nil {
				return fmt.Errorf("checking %s: %w", name, err)
			}
			for _, rr := range r.Answer {
				switch x := rr.(type) {
				case *dns.A:
					a, _ := netip.AddrFromSlice(x.A.To4())
					got = append(got, a)
				case *dns.AAAA:
					a, _ := netip.AddrFromSlice(x.AAAA)
					got = append(got, a)
				}
			}
		}
		want := slices.Clone(job.addrs[name])
		slices.SortFunc(got, netip.Addr.Compare)
		slices.SortFunc(want, netip.Addr.Compare)
		if !slices.Equal(got, want) {
			return fmt.Errorf("the server confirmed the update, but %s holds %v, not %v", name, got, want)
		}
	}
	return nil
}
