package netlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// This file holds what the hostile-load benchmark (uplinklab bench-hostile) needs from a lab:
// many long-lived connections through the gateway, what the kernel holds for uplinkd (rules,
// routes, nftables, conntrack), a netlink handle in a lab namespace, and a process's
// threads, memory and open files.

// HoldPort is the port of the hold server: it accepts TCP connections on Server4 and keeps
// each open, reading and discarding, until the client closes it (or the lab closes).
const HoldPort = 10

// StartHold starts the hold server in the internet namespace. It runs until Close.
func (l *Lab) StartHold() error { return l.startTCPServer("hold", HoldPort, serveHold) }

func serveHold(c net.Conn) {
	defer c.Close()
	_, _ = io.Copy(io.Discard, c)
}

// ConnSet is a set of open TCP connections from a lab namespace; Close closes them all.
type ConnSet struct {
	mu    sync.Mutex
	conns []net.Conn
}

// Len is the number of connections in the set.
func (s *ConnSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close closes every connection; idempotent.
func (s *ConnSet) Close() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// openWorkers is how many namespace threads dial in parallel in OpenTCP.
const openWorkers = 4

// OpenTCP opens n TCP connections from role's namespace to dst and keeps them open (the hold
// server at Server4:HoldPort keeps its end open too). Each dial is bounded by 3 s and by ctx;
// on error, the connections opened so far are closed. The lab's Close closes the set too.
func (l *Lab) OpenTCP(ctx context.Context, role string, dst netip.AddrPort, n int) (*ConnSet, error) {
	if n < 0 || n > 60000 {
		return nil, fmt.Errorf("netlab: open %d connections: want 0..60000", n)
	}
	set := &ConnSet{}
	if !l.track(set.Close) {
		return nil, errors.New("netlab: OpenTCP on a closed lab")
	}
	ns := l.NS(role)
	var wg sync.WaitGroup
	errs := make([]error, openWorkers)
	for w := range openWorkers {
		count := n / openWorkers
		if w < n%openWorkers {
			count++
		}
		wg.Go(func() {
			errs[w] = l.InNS(role, func() error {
				d := net.Dialer{Control: inNSControl(ns), Timeout: 3 * time.Second}
				for range count { // bounded by count; each dial by its timeout
					if err := ctx.Err(); err != nil {
						return err
					}
					c, err := d.DialContext(ctx, "tcp", dst.String())
					if err != nil {
						return err
					}
					set.mu.Lock()
					set.conns = append(set.conns, c)
					set.mu.Unlock()
				}
				return nil
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		opened := set.Len()
		set.Close()
		return nil, fmt.Errorf("netlab: open %d tcp connections from %s to %s (%d opened): %w", n, ns, dst, opened, err)
	}
	return set, nil
}

// ConntrackCount is the number of conntrack entries in namespace ns.
func ConntrackCount(ns string) (int, error) {
	out, err := run(nil, "ip", "netns", "exec", ns, "sysctl", "-n", "net.netfilter.nf_conntrack_count")
	if err != nil {
		return 0, fmt.Errorf("netlab: conntrack count in %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}

// UplinkdProto is the route protocol number uplinkd marks its rules and routes with.
const UplinkdProto = 85

// Owned lists uplinkd's policy rules and routes (both families, every table) in namespace ns,
// as `ip` prints them, sorted: two readings compare equal when nothing was lost or added.
func Owned(ns string) (rules, routes []string, err error) {
	for _, fam := range []string{"-4", "-6"} {
		out, err := run(nil, "ip", "-n", ns, fam, "rule", "show")
		if err != nil {
			return nil, nil, fmt.Errorf("netlab: ip rule show in %s: %w: %s", ns, err, out)
		}
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, fmt.Sprintf(" proto %d", UplinkdProto)) {
				rules = append(rules, fam+" "+strings.TrimSpace(line))
			}
		}
		out, err = run(nil, "ip", "-n", ns, fam, "route", "show", "table", "all", "proto", strconv.Itoa(UplinkdProto))
		if err != nil {
			return nil, nil, fmt.Errorf("netlab: ip route show in %s: %w: %s", ns, err, out)
		}
		for line := range strings.Lines(string(out)) {
			if s := strings.TrimSpace(line); s != "" {
				routes = append(routes, fam+" "+s)
			}
		}
	}
	sort.Strings(rules)
	sort.Strings(routes)
	return rules, routes, nil
}

// NftTable returns `nft list table inet uplinkd` in namespace ns ("" when there is no such
// table).
func NftTable(ns string) (string, error) {
	out, err := run(nil, "ip", "netns", "exec", ns, "nft", "list", "table", "inet", "uplinkd")
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return "", nil
		}
		return "", fmt.Errorf("netlab: nft list table inet uplinkd in %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// NetlinkHandle opens a netlink handle in namespace ns, for fast kernel changes from a
// benchmark loop. Close the handle when done.
func NetlinkHandle(ns string) (*netlink.Handle, error) {
	h, err := netns.GetFromPath(nsPath(ns))
	if err != nil {
		return nil, fmt.Errorf("netlab: open namespace %s: %w", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlab: netlink handle in %s: %w", ns, err)
	}
	return nh, nil
}

// IPBatch runs an iproute2 batch script in namespace ns (with -force: one failing line does
// not stop the rest) and returns how long it took.
func IPBatch(ns, script string) (time.Duration, error) {
	start := time.Now()
	if out, err := run(strings.NewReader(script), "ip", "-n", ns, "-force", "-batch", "-"); err != nil {
		return time.Since(start), fmt.Errorf("netlab: ip -batch in %s: %w: %s", ns, err, lastLines(out, 3))
	}
	return time.Since(start), nil
}

// ProcStats is what /proc says about a process's threads, memory and open files.
type ProcStats struct {
	Threads int
	RSS     int64 // VmRSS, bytes
	HWM     int64 // VmHWM (peak RSS), bytes
	FDs     int   // entries in /proc/PID/fd
}

// ReadProcStats reads a process's ProcStats.
func ReadProcStats(pid int) (ProcStats, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcStats{}, err
	}
	var s ProcStats
	if s.RSS, err = parseStatusKiB(string(status), "VmRSS"); err != nil {
		return s, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	if s.HWM, err = parseStatusKiB(string(status), "VmHWM"); err != nil {
		return s, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	s.RSS *= 1024
	s.HWM *= 1024
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			s.Threads, err = strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return s, fmt.Errorf("/proc/%d/status: Threads: %w", pid, err)
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	return s, nil
}

// HTTPGetInNS fetches url (http://ADDR/PATH) from inside namespace ns, e.g. uplinkd's
// metrics on the gateway's loopback, and returns the body; bounded by 5 s.
func HTTPGetInNS(ns, addr, path string) ([]byte, error) {
	var body []byte
	err := InNamespace(ns, func() error {
		d := net.Dialer{Control: inNSControl(ns), Timeout: 5 * time.Second}
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr); err != nil {
			return err
		}
		all, err := io.ReadAll(io.LimitReader(c, 64<<20))
		if err != nil {
			return err
		}
		head, rest, ok := strings.Cut(string(all), "\r\n\r\n")
		if !ok {
			return errors.New("no end of headers in the answer")
		}
		if first, _, _ := strings.Cut(head, "\r\n"); !strings.Contains(first, " 200 ") {
			return fmt.Errorf("answer %q", first)
		}
		body = []byte(rest)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: GET http://%s%s in %s: %w", addr, path, ns, err)
	}
	return body, nil
}
