// Package netlab builds a small internet in network namespaces for end-to-end tests, the demo
// and the benchmark:
//
//	lan (client) --lan0-- gw (uplinkd runs here) --wan1-- isp1 --\
//	                                             --wan2-- isp2 ---- inet (targets + server)
//
// Documentation addresses only (see addr.go). Nothing is ever configured in the caller's own
// namespace: namespaces are created with `ip netns add`, veth peers are created straight inside
// them, and sockets the lab opens itself are created on a thread switched into a lab namespace.
package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NAT modes of the gateway.
const (
	NATMasquerade = "masquerade" // LAN traffic takes the address of the uplink it leaves by
	NATSNAT       = "snat"       // LAN traffic takes a fixed secondary address per uplink (business lines)
)

// Options shape a lab.
type Options struct {
	// Prefix starts every namespace name ("<prefix>-gw"). Empty: a unique one per lab ("ul" +
	// pid + counter), so parallel labs never clash. A fixed prefix is for the CLI.
	Prefix string
	// NAT is NATMasquerade (default) or NATSNAT.
	NAT string
	// Servers starts the UDP echo and TCP servers in the internet namespace (see StartServers).
	Servers bool
	// IPv6Prefixes gives the LAN a /64 from each ISP (LANPrefixISP1, LANPrefixISP2) instead of
	// NAT66: each ISP routes its prefix to the gateway and drops other sources, and the client
	// configures itself by SLAAC from the gateway's RAs.
	IPv6Prefixes bool
}

// Lab is a built set of namespaces. Its methods are safe for concurrent use.
type Lab struct {
	prefix   string
	nat      string
	prefixes bool     // IPv6 prefixes per ISP, no NAT66
	roles    []string // the lab's namespaces; nil: the single-gateway lab's (see NewPair)

	mu      sync.Mutex
	closed  bool
	servers bool
	procs   []*Proc
	closers []func() // servers and flows to stop before the namespaces go
}

var labSeq atomic.Int64

// New builds a lab. On error it removes whatever it had built.
func New(opts Options) (*Lab, error) {
	nat := opts.NAT
	if nat == "" {
		nat = NATMasquerade
	}
	if nat != NATMasquerade && nat != NATSNAT {
		return nil, fmt.Errorf("netlab: NAT mode %q: want %q or %q", nat, NATMasquerade, NATSNAT)
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "ul" + strconv.FormatInt(int64(os.Getpid()), 36) + strconv.FormatInt(labSeq.Add(1), 36)
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	l := &Lab{prefix: prefix, nat: nat, prefixes: opts.IPv6Prefixes}
	for _, r := range roles {
		if nsExists(l.NS(r)) {
			return nil, fmt.Errorf("netlab: namespace %s already exists (a lab with prefix %q is up; remove it with `uplinklab down -prefix %s`)", l.NS(r), prefix, prefix)
		}
	}
	if err := l.build(); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	if opts.Servers {
		if err := l.StartServers(); err != nil {
			return nil, errors.Join(err, l.Close())
		}
	}
	return l, nil
}

// Attach returns the lab that another process built with prefix, for the CLI's break, heal and
// down. Close on it removes the namespaces.
func Attach(prefix, nat string) (*Lab, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if nat == "" {
		nat = NATMasquerade
	}
	l := &Lab{prefix: prefix, nat: nat}
	for _, r := range roles {
		if !nsExists(l.NS(r)) {
			return nil, fmt.Errorf("netlab: no lab with prefix %q: namespace %s does not exist", prefix, l.NS(r))
		}
	}
	return l, nil
}

// checkPrefix keeps namespace names short and free of characters ip(8) or a path would mind.
func checkPrefix(p string) error {
	if len(p) == 0 || len(p) > 16 {
		return fmt.Errorf("netlab: prefix %q: want 1 to 16 characters", p)
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("netlab: prefix %q: only a-z, 0-9, '-' and '_' are allowed", p)
		}
	}
	return nil
}

// Prefix returns the prefix of the lab's namespace names.
func (l *Lab) Prefix() string { return l.prefix }

// NAT returns the gateway's NAT mode.
func (l *Lab) NAT() string { return l.nat }

// NS returns the namespace name of a role ("lan", "gw", "isp1", "isp2", "inet").
func (l *Lab) NS(role string) string { return l.prefix + "-" + role }

func nsPath(name string) string { return "/run/netns/" + name }

func nsExists(name string) bool {
	_, err := os.Stat(nsPath(name))
	return err == nil
}

// roleList is the lab's namespaces: the single gateway's, or the pair's.
func (l *Lab) roleList() []string {
	if l.roles != nil {
		return l.roles
	}
	return roles
}

func (l *Lab) validRole(role string) error {
	for _, r := range l.roleList() {
		if r == role {
			return nil
		}
	}
	return fmt.Errorf("netlab: no role %q: want one of %s", role, strings.Join(l.roleList(), ", "))
}

// build creates namespaces, links, addresses, routes and nftables tables, in that order.
func (l *Lab) build() error {
	var add strings.Builder
	for _, r := range roles {
		fmt.Fprintf(&add, "netns add %s\n", l.NS(r))
	}
	if err := runIP(nil, add.String()); err != nil {
		return err
	}
	for _, r := range roles {
		args := append([]string{"netns", "exec", l.NS(r), "sysctl", "-q", "-w"}, sysctls(r, l.prefixes)...)
		if out, err := run(nil, "ip", args...); err != nil {
			return fmt.Errorf("netlab: sysctl in %s: %w: %s", l.NS(r), err, out)
		}
	}
	for _, r := range []string{RoleGW, RoleInet} {
		ns := l.NS(r)
		if err := runIP(&ns, linkScript(r, l.NS)); err != nil {
			return err
		}
	}
	// The LAN host comes up last: a host whose link gets carrier only after it went up sends
	// its first neighbour solicitation a second late, which would stall the first IPv6 packet.
	for _, r := range []string{RoleGW, RoleISP1, RoleISP2, RoleInet, RoleLAN} {
		ns := l.NS(r)
		if err := runIP(&ns, addrScript(r, l.nat, l.prefixes)); err != nil {
			return err
		}
	}
	for _, r := range roles {
		script := nftScript(r, l.nat, l.prefixes)
		if script == "" {
			continue
		}
		if err := l.nft(r, script); err != nil {
			return err
		}
	}
	return nil
}

// runIP runs an iproute2 batch script, in namespace *ns when ns is not nil.
func runIP(ns *string, script string) error {
	args := []string{"-batch", "-"}
	where := "root namespace"
	if ns != nil {
		args = append([]string{"-n", *ns}, args...)
		where = *ns
	}
	if out, err := run(strings.NewReader(script), "ip", args...); err != nil {
		return fmt.Errorf("netlab: ip -batch in %s: %w: %s", where, err, bytes.TrimSpace(out))
	}
	return nil
}

// nft runs an nft script in role's namespace.
func (l *Lab) nft(role, script string) error {
	if out, err := run(strings.NewReader(script), "ip", "netns", "exec", l.NS(role), "nft", "-f", "-"); err != nil {
		return fmt.Errorf("netlab: nft in %s: %w: %s", l.NS(role), err, bytes.TrimSpace(out))
	}
	return nil
}

// run is the one place the lab starts a short-lived tool; bounded so a hung tool cannot hang a test.
func run(stdin *strings.Reader, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	return cmd.CombinedOutput()
}

// Close stops what the lab started (processes, servers, flows) and removes its namespaces, which
// takes their links, routes and nftables tables with them. It is idempotent.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	errs := []error{l.Release()}
	for _, r := range l.roleList() {
		ns := l.NS(r)
		if !nsExists(ns) {
			continue
		}
		if out, err := run(nil, "ip", "netns", "del", ns); err != nil && nsExists(ns) {
			errs = append(errs, fmt.Errorf("netlab: ip netns del %s: %w: %s", ns, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

// Release stops what this process started in the lab (processes, servers, flows) and leaves
// the namespaces up: for a lab that another process built and will remove (Attach).
func (l *Lab) Release() error {
	l.mu.Lock()
	procs, closers := l.procs, l.closers
	l.procs, l.closers = nil, nil
	l.servers = false
	l.mu.Unlock()
	var errs []error
	for _, p := range procs {
		if err := p.stopForClose(); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	return errors.Join(errs...)
}

// track registers a closer to run on Close; it reports false (and runs nothing) if the lab is
// already closed.
func (l *Lab) track(closer func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closers = append(l.closers, closer)
	return true
}
