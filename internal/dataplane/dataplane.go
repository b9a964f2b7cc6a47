package dataplane

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Result says what one Set did.
type Result struct {
	// Messages counts the routing change messages sent: 0 when the kernel already matched.
	Messages int
	// Problems are inputs the routing plan had to ignore (an uplink without a usable table…),
	// for the caller to report when they are news.
	Problems []string
}

// A Part is one more piece of the box that follows the State (the DNS server's answers, the
// LAN's router advertisements). Set sees every State the Dataplane is given, in the run loop:
// it must be quick and must not block.
type Part interface {
	Set(State) error
}

// routes and pins are what the Dataplane needs of routing.Router and connmark.Table; tests of
// this package replace them.
type routes interface {
	Apply(routing.Plan) (routing.Changes, error)
	Link(ifname string) (routing.LinkInfo, error)
	Prefixes6(ifname string) ([]routing.AddrPrefix, error)
	FlushSNAT(netip.Addr) (int, error)
	FlushPrefix(netip.Prefix) (int, error)
	EndFlows(m routing.FlowMatch, mark, mask uint32) (int, error)
	Cleanup() (routing.Changes, error)
}

type pins interface {
	Replace(connmark.Plan) error
	Check(connmark.Plan) (damage string, err error)
	Exists() (bool, error)
	Cleanup() error
	Counts() (map[uint32]int, error)
	Received() (map[uint32]uint64, error)
}

var (
	_ routes = (*routing.Router)(nil)
	_ pins   = (*connmark.Table)(nil)
)

// Dataplane makes the box match a State. It is not safe for concurrent use: the engine's run
// loop owns it.
type Dataplane struct {
	settings routing.Settings
	routes   routes
	pins     pins
	parts    []Part
	log      *slog.Logger

	// What was last applied: the only cache. verify says the kernel may no longer hold it
	// (someone deleted our entries, netlink events were lost, an apply failed).
	appliedRoutes string
	appliedPins   string // nft text of the table; "" when not known
	pinsOff       bool   // the table is known to be absent (pinning off)
	verify        bool
	// stale is the set of addresses whose NAT state was flushed and that are still stale:
	// an address is flushed when it enters the set, not again while it stays.
	stale map[netip.Addr]string
	// stalePrefixes are the LAN prefixes of uplinks that lost their IPv6 connections, flushed
	// the same way.
	stalePrefixes map[netip.Prefix]string
	// ended is, per service, the last EndFlows Seq done.
	ended map[string]uint64
}

// New returns the dataplane of the namespace ns (netns.None(): the caller's own) acting
// through h, with the routing settings s (zero fields: defaults). Nothing touches the kernel
// until Set. log may be nil.
func New(h *netlink.Handle, ns netns.NsHandle, s routing.Settings, log *slog.Logger, parts ...Part) (*Dataplane, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s = s.WithDefaults()
	return newDataplane(s, routing.NewRouter(h, s, log), connmark.NewTable(ns, log), log, parts...), nil
}

func newDataplane(s routing.Settings, r routes, p pins, log *slog.Logger, parts ...Part) *Dataplane {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dataplane{settings: s, routes: r, pins: p, parts: parts, log: log, stale: map[netip.Addr]string{}, stalePrefixes: map[netip.Prefix]string{}, ended: map[string]uint64{}}
}

// Settings are the routing numbers in use, defaults filled in.
func (d *Dataplane) Settings() routing.Settings { return d.settings }

// Set makes the box match s with as little work as it can: an unchanged part sends nothing.
// It carries on past a failure and returns every failure joined; a failed part is checked
// against the kernel again on the next Set.
func (d *Dataplane) Set(s State) (Result, error) {
	var res Result
	var errs []error

	plan := s.RoutingPlan(d.settings)
	res.Problems = plan.Problems
	if text := plan.String(); text != d.appliedRoutes || d.verify {
		ch, err := d.routes.Apply(plan)
		res.Messages = ch.Messages
		d.appliedRoutes = text
		if err != nil {
			d.appliedRoutes = ""
			errs = append(errs, err)
		}
	}
	// The parts (DNS answers) right after the routes: they are quick, and customers should get
	// the new answer without waiting for the pins and the conntrack flush.
	for _, p := range d.parts {
		if err := p.Set(s); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.setPins(s); err != nil {
		errs = append(errs, err)
	}
	d.verify = false
	d.flushStale(s)
	d.endFlows(s)
	return res, errors.Join(errs...)
}

// setPins makes the connection-mark table match s. A provisional state installs a missing
// table (it also keeps probes from the operator's NAT) but keeps the one the last run left,
// whose pinned connections keep their uplink.
func (d *Dataplane) setPins(s State) error {
	if !s.Pinning {
		if d.pinsOff && !d.verify {
			return nil
		}
		if ok, err := d.pins.Exists(); err != nil {
			return err
		} else if ok {
			if err := d.pins.Cleanup(); err != nil {
				return fmt.Errorf("connection pinning is off, but removing its table failed: %w", err)
			}
		}
		d.appliedPins, d.pinsOff = "", true
		return nil
	}
	d.pinsOff = false
	plan := s.PinPlan()
	text := connmark.Render(plan)
	switch {
	case s.Provisional:
		if ok, err := d.pins.Exists(); err != nil || ok {
			return err
		}
	case text == d.appliedPins && !d.verify:
		return nil
	case text == d.appliedPins:
		damage, err := d.pins.Check(plan)
		if err != nil || damage == "" {
			return err
		}
		d.log.Info("connection-mark table damaged; replacing it", "damage", damage)
	}
	if err := d.pins.Replace(plan); err != nil {
		d.appliedPins = ""
		return err
	}
	d.appliedPins = text
	return nil
}

// flushStale deletes the NAT state of every address that has just become stale.
func (d *Dataplane) flushStale(s State) {
	d.stale = flushNew(d.log, d.stale, s.staleNAT(), d.routes.FlushSNAT, "addr", "conntrack cleanup")
	d.stalePrefixes = flushNew(d.log, d.stalePrefixes, s.stalePrefixes(), d.routes.FlushPrefix, "prefix",
		"conntrack cleanup: connections from a dead uplink's prefix start over translated")
}

// flushNew flushes the conntrack entries of every key of now (an address or a prefix, with its
// uplink's name) that was not in was, and returns now: each is flushed when it becomes stale.
func flushNew[K comparable](log *slog.Logger, was, now map[K]string, flush func(K) (int, error), what, done string) map[K]string {
	for k, name := range now {
		if _, ok := was[k]; ok {
			continue
		}
		n, err := flush(k)
		switch {
		case err != nil:
			log.Warn("conntrack cleanup failed", "uplink", name, what, k, "err", err)
		case n > 0:
			log.Info(done, "uplink", name, what, k, "deleted", n)
		}
	}
	return now
}

// endFlows ends the connections of services that moved theirs, once per move.
func (d *Dataplane) endFlows(s State) {
	for _, e := range s.EndFlows {
		if e.Seq <= d.ended[e.Service] {
			continue
		}
		d.ended[e.Service] = e.Seq
		n, err := d.routes.EndFlows(e.Match, e.Mark, uplink.MarkMask)
		if err != nil {
			d.log.Warn("ending a service's connections failed", "service", e.Service, "err", err)
			continue
		}
		d.log.Info("service connections ended: they start over on its new uplink", "service", e.Service, "mark", fmt.Sprintf("%#x", e.Mark), "ended", n)
	}
}

// Forget makes the next Set check every part against the kernel and repair what someone else
// deleted (a repair, a retry, lost netlink events). Stale NAT state is not flushed again.
func (d *Dataplane) Forget() { d.verify = true }

// Cleanup removes every rule, route and table uplinkd owns.
func (d *Dataplane) Cleanup() (routing.Changes, error) {
	ch, err := d.routes.Cleanup()
	d.appliedRoutes, d.appliedPins, d.pinsOff = "", "", false
	return ch, errors.Join(err, d.pins.Cleanup())
}

// Link learns an interface's state, addresses and gateways.
func (d *Dataplane) Link(ifname string) (routing.LinkInfo, error) { return d.routes.Link(ifname) }

// Prefixes6 reads an interface's global IPv6 addresses with their prefixes and lifetimes.
func (d *Dataplane) Prefixes6(ifname string) ([]routing.AddrPrefix, error) {
	return d.routes.Prefixes6(ifname)
}

// Counts returns the live connections per uplink mark (a conntrack walk: slow). Unlike the
// rest, it may be called from any goroutine.
func (d *Dataplane) Counts() (map[uint32]int, error) { return d.pins.Counts() }

// Received counts, per uplink mark, the replies that arrived for connections through it.
func (d *Dataplane) Received() (map[uint32]uint64, error) { return d.pins.Received() }
