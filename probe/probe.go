// Package probe checks that targets answer through one particular uplink. Every probe is pinned:
// it carries the uplink's firewall mark (routed by the daemon's `fwmark → uplink table` rule)
// and its source address, so it leaves through that uplink even while traffic uses another one.
// One file per method; New finds them by name; Once is the one-shot check, Start the daemon's
// continuous probing.
package probe

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// Pin makes a probe leave through one uplink even while traffic uses another: the uplink's
// firewall mark (SO_MARK, routed by the daemon's `fwmark → uplink table` rule) and its source
// address. A zero Mark or an invalid source is simply not applied.
type Pin struct {
	Mark             uint32
	Source4, Source6 netip.Addr
}

// source returns the pin's source address for target's family (invalid if none).
func (p Pin) source(target netip.Addr) netip.Addr {
	if target.Is4() {
		return p.Source4
	}
	return p.Source6
}

// describe says how a probe to target is pinned, for error messages: "mark 0x100 from 198.51.100.2".
func (p Pin) describe(target netip.Addr) string {
	var parts []string
	if p.Mark != 0 {
		parts = append(parts, fmt.Sprintf("mark %#x", p.Mark))
	}
	if s := p.source(target); s.IsValid() {
		parts = append(parts, "from "+s.String())
	}
	if len(parts) == 0 {
		return "unpinned"
	}
	return strings.Join(parts, " ")
}

// Result is the outcome of one probe. OK means a reply came within the timeout; otherwise Err
// says why not ("no reply within 1s", "... network is unreachable").
type Result struct {
	Target netip.Addr
	OK     bool
	RTT    time.Duration
	Err    error
}

// Prober probes one target through a pinned uplink. Implementations are safe for concurrent use.
type Prober interface {
	Probe(ctx context.Context, pin Pin, target netip.Addr, timeout time.Duration) Result
}

// methods maps a method name to its constructor, which gets the parsed method.
var methods = map[string]func(m uplink.Method) Prober{
	uplink.MethodICMP:  newICMP,
	uplink.MethodTCP:   newTCP,
	uplink.MethodHTTP:  newHTTP,
	uplink.MethodHTTPS: newHTTP,
	uplink.MethodDNS:   newDNS,
}

// New returns the prober for a method: icmp (echo request, raw socket: needs CAP_NET_RAW, and
// CAP_NET_ADMIN for the mark), tcp (a connect to the method's port), http/https (a GET on a
// fresh connection) or dns (one query). It probes once per call (Once); Start probes
// continuously, with long-lived ICMP sockets of its own.
func New(m uplink.Method) (Prober, error) {
	mk, ok := methods[m.Name]
	if !ok {
		names := make([]string, 0, len(methods))
		for n := range methods {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("probe: unknown method %q: want one of %s", m.Name, strings.Join(names, ", "))
	}
	return mk(m), nil
}

// Once probes every target of p once through pin, each with its own method and p's timeout,
// all at once, and returns the results in target order: the operator's one-shot check
// (uplinkd --check --probe). Start probes continuously.
func Once(ctx context.Context, p uplink.Probe, pin Pin) ([]Result, error) {
	probers := make(map[netip.Addr]Prober, len(p.Targets))
	for _, t := range p.Targets {
		pr, err := New(p.MethodOf(t))
		if err != nil {
			return nil, err
		}
		probers[t] = pr
	}
	return round(ctx, func(t netip.Addr) Prober { return probers[t] }, pin, p.Targets, p.Timeout), nil
}

// round probes all targets concurrently, each with its prober, and returns the results in
// target order. It returns when every probe has (each bounded by timeout and ctx).
func round(ctx context.Context, proberOf func(netip.Addr) Prober, pin Pin, targets []netip.Addr, timeout time.Duration) []Result {
	res := make([]Result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { res[i] = proberOf(t).Probe(ctx, pin, t, timeout) })
	}
	wg.Wait()
	return res
}

// check rejects what no method can probe, before any socket exists.
func check(method string, pin Pin, target netip.Addr, timeout time.Duration) error {
	switch {
	case !target.IsValid():
		return fmt.Errorf("probe: %s: no target address", method)
	case timeout <= 0:
		return fmt.Errorf("probe: %s %s: timeout %v is not positive", method, target, timeout)
	}
	if s := pin.source(target); s.IsValid() && s.Is4() != target.Is4() {
		return fmt.Errorf("probe: %s %s: source %s is of the other address family", method, target, s)
	}
	return nil
}

// noReply is the error of a probe that got no (timely) answer.
func noReply(method string, target netip.Addr, pin Pin, timeout time.Duration) error {
	return fmt.Errorf("probe: %s %s %s: no reply within %v", method, target, pin.describe(target), timeout)
}

// WireBytes estimates what one probe of method m costs on the wire (IP packets, both ways): an
// ICMP echo is exact (the payload sent here); a connection's handshake, request and close are
// typical sizes. answered: the reply came (a lost probe costs only what was sent).
func WireBytes(m uplink.Method, v6, answered bool) int {
	ip := 20
	if v6 {
		ip = 40
	}
	var out, in int
	switch m.Name {
	case uplink.MethodICMP:
		out, in = ip+8+payloadLen, ip+8+payloadLen
	case uplink.MethodTCP:
		out, in = 3*(ip+32), 2*(ip+32) // SYN, ACK, FIN; SYN-ACK, FIN-ACK
	case uplink.MethodDNS:
		out, in = ip+8+45, ip+8+120
	default: // http, https: a connection, a request, a short response
		out, in = 4*(ip+32)+300, 3*(ip+32)+1200
	}
	if !answered {
		return out
	}
	return out + in
}
