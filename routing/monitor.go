package routing

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Monitor watches links, addresses, routes and rules in one network namespace and reports
// what matters to the daemon.
type Monitor struct {
	ns  netns.NsHandle // netns.None(): the namespace of the calling thread
	s   Settings
	log *slog.Logger

	links     map[int]linkState
	subscribe func() (*subscription, error) // the kernel's; tests swap it

	subscribed     chan struct{} // closed once the first subscription is in place
	subscribedOnce sync.Once
}

type linkState struct {
	name        string
	up, carrier bool
}

// NewMonitor returns a monitor of namespace ns (netns.None() for the current one). log may be nil.
func NewMonitor(ns netns.NsHandle, s Settings, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{ns: ns, s: s.WithDefaults(), log: log, subscribed: make(chan struct{})}
	m.subscribe = m.subscribeKernel
	return m
}

// Subscribed is closed once Run listens to the kernel: a change made after it is reported.
func (m *Monitor) Subscribed() <-chan struct{} { return m.subscribed }

// resubscribeAttempts bounds how often in a row subscribing may fail before Run gives up.
const resubscribeAttempts = 5

// subscription is one set of kernel subscriptions; closing done ends them.
type subscription struct {
	done   chan struct{}
	links  chan netlink.LinkUpdate
	addrs  chan netlink.AddrUpdate
	routes chan netlink.RouteUpdate
	rules  chan ruleUpdate
	wg     sync.WaitGroup
}

type ruleUpdate struct {
	deleted  bool
	family   int
	priority int
	table    int
	protocol uint8
	err      error // non-nil: the socket failed (ENOBUFS); the channel closes after it
}

// Run reports events on out until ctx ends; it returns ctx's error then, or an error when it
// cannot subscribe. Events lost in the kernel (a closed subscription) are reported as one
// ResyncNeeded and the monitor subscribes again.
func (m *Monitor) Run(ctx context.Context, out chan<- Event) error {
	failures := 0
	first := true
	for {
		sub, err := m.subscribe()
		if err != nil {
			failures++
			if failures >= resubscribeAttempts {
				return fmt.Errorf("routing: monitor: subscribe %d times in a row: %w", failures, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(failures) * 100 * time.Millisecond):
			}
			continue
		}
		failures = 0
		m.subscribedOnce.Do(func() { close(m.subscribed) })
		m.links = map[int]linkState{} // re-seeded by the new link subscription's listing
		if !first && !m.send(ctx, out, Event{Kind: ResyncNeeded, Detail: "netlink subscription lost events; resubscribed"}) {
			sub.close()
			return ctx.Err()
		}
		first = false
		reason := m.loop(ctx, sub, out)
		sub.close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.log.Warn("routing: monitor resubscribes", "reason", reason)
	}
}

func (m *Monitor) send(ctx context.Context, out chan<- Event, e Event) bool {
	select {
	case out <- e:
		return true
	case <-ctx.Done():
		return false
	}
}

func newSubscription() *subscription {
	return &subscription{
		done:   make(chan struct{}),
		links:  make(chan netlink.LinkUpdate, 64),
		addrs:  make(chan netlink.AddrUpdate, 64),
		routes: make(chan netlink.RouteUpdate, 256),
		rules:  make(chan ruleUpdate, 64),
	}
}

func (m *Monitor) subscribeKernel() (*subscription, error) {
	sub := newSubscription()
	var ns *netns.NsHandle
	if m.ns.IsOpen() {
		ns = &m.ns
	}
	logErr := func(what string) func(error) {
		return func(err error) {
			select {
			case <-sub.done: // our own close, not news
			default:
				m.log.Warn("routing: monitor "+what+" subscription failed", "err", err)
			}
		}
	}
	// ListExisting on links only: it seeds the link state, so later changes are transitions.
	if err := netlink.LinkSubscribeWithOptions(sub.links, sub.done, netlink.LinkSubscribeOptions{
		Namespace: ns, ListExisting: true, ErrorCallback: logErr("link")}); err != nil {
		close(sub.done)
		return nil, fmt.Errorf("links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(sub.addrs, sub.done, netlink.AddrSubscribeOptions{
		Namespace: ns, ErrorCallback: logErr("address")}); err != nil {
		close(sub.done)
		return nil, fmt.Errorf("addresses: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(sub.routes, sub.done, netlink.RouteSubscribeOptions{
		Namespace: ns, ErrorCallback: logErr("route")}); err != nil {
		close(sub.done)
		return nil, fmt.Errorf("routes: %w", err)
	}
	if err := m.subscribeRules(sub); err != nil {
		close(sub.done)
		return nil, fmt.Errorf("rules: %w", err)
	}
	return sub, nil
}

// drainLimit bounds how long close waits for the netlink readers to see their sockets closed.
const drainLimit = 2 * time.Second

// close ends the subscriptions. The netlink package's readers block on a full channel, so
// close drains the channels until the readers close them (or drainLimit passes).
func (s *subscription) close() {
	close(s.done)
	limit := time.After(drainLimit)
	links, addrs, routes, rules := s.links, s.addrs, s.routes, s.rules
	for links != nil || addrs != nil || routes != nil || rules != nil {
		select {
		case _, ok := <-links:
			if !ok {
				links = nil
			}
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
			}
		case _, ok := <-routes:
			if !ok {
				routes = nil
			}
		case _, ok := <-rules:
			if !ok {
				rules = nil
			}
		case <-limit:
			return
		}
	}
	s.wg.Wait()
}

// subscribeRules listens to rule changes; the netlink package has no subscription for them.
func (m *Monitor) subscribeRules(sub *subscription) error {
	var sock *nl.NetlinkSocket
	var err error
	if m.ns.IsOpen() {
		// SubscribeAt switches the thread's namespace; keep the goroutine on its thread meanwhile.
		runtime.LockOSThread()
		var cur netns.NsHandle
		cur, err = netns.Get()
		if err == nil {
			sock, err = nl.SubscribeAt(m.ns, cur, unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE)
			cur.Close()
		}
		runtime.UnlockOSThread()
	} else {
		sock, err = nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE)
	}
	if err != nil {
		return err
	}
	sub.wg.Add(2)
	go func() { // closes the socket when the subscription ends, which wakes Receive
		defer sub.wg.Done()
		<-sub.done
		sock.Close()
	}()
	go func() {
		defer sub.wg.Done()
		defer close(sub.rules)
		for {
			msgs, _, err := sock.Receive()
			if err != nil {
				select {
				case <-sub.done:
				case sub.rules <- ruleUpdate{err: err}:
				}
				return
			}
			for _, msg := range msgs {
				u, ok := parseRuleMsg(msg.Header.Type, msg.Data)
				if !ok {
					continue
				}
				select {
				case sub.rules <- u:
				case <-sub.done:
					return
				}
			}
		}
	}()
	return nil
}

// loop turns updates into events until a channel closes or ctx ends; it returns why it stopped.
func (m *Monitor) loop(ctx context.Context, sub *subscription, out chan<- Event) string {
	for {
		var evs []Event
		select {
		case <-ctx.Done():
			return "stopped"
		case u, ok := <-sub.links:
			if !ok {
				return "link subscription closed"
			}
			evs = m.linkEvents(u)
		case u, ok := <-sub.addrs:
			if !ok {
				return "address subscription closed"
			}
			evs = m.addrEvents(u)
		case u, ok := <-sub.routes:
			if !ok {
				return "route subscription closed"
			}
			evs = m.routeEvents(u)
		case u, ok := <-sub.rules:
			if !ok {
				return "rule subscription closed"
			}
			if u.err != nil {
				return "rule subscription: " + u.err.Error()
			}
			evs = m.ruleEvents(u)
		}
		for _, e := range evs {
			m.log.Debug("routing: monitor event", "event", e.String())
			if !m.send(ctx, out, e) {
				return "stopped"
			}
		}
	}
}
