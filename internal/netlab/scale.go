package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ScaleLab is a lab for measuring the daemon's cost with many uplinks: a gateway namespace
// with N uplinks (veth "up0".."upN-1"), all wired to one ISP namespace that holds the M
// targets on its loopback. Uplink k is 198.51.100.4k+2/30 with gateway .4k+1 (so N ≤ 64);
// targets are 203.0.113.1..M (M ≤ 32). Real sockets, real kernel, documentation addresses.
type ScaleLab struct {
	prefix  string
	N, M    int
	closed  bool
	Targets []netip.Addr
}

// MaxScaleUplinks is how many /30s fit in 198.51.100.0/24.
const MaxScaleUplinks = 64

// NewScale builds a scale lab; on error it removes what it built.
func NewScale(prefix string, n, m int) (*ScaleLab, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if n < 1 || n > MaxScaleUplinks || m < 1 || m > 32 {
		return nil, fmt.Errorf("netlab: scale lab %d uplinks × %d targets: want 1..%d × 1..32", n, m, MaxScaleUplinks)
	}
	s := &ScaleLab{prefix: prefix, N: n, M: m}
	for i := range m {
		s.Targets = append(s.Targets, netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}))
	}
	for _, ns := range []string{s.GWNS(), s.ispNS()} {
		if nsExists(ns) {
			return nil, fmt.Errorf("netlab: namespace %s already exists", ns)
		}
	}
	if err := s.build(); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// GWNS is the gateway's namespace (where uplinkd runs).
func (s *ScaleLab) GWNS() string { return s.prefix + "-sgw" }

func (s *ScaleLab) ispNS() string { return s.prefix + "-sisp" }

// Interface is uplink k's interface in the gateway.
func (s *ScaleLab) Interface(k int) string { return fmt.Sprintf("up%d", k) }

// Gateway is uplink k's gateway (the ISP's end).
func (s *ScaleLab) Gateway(k int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(4*k + 1)})
}

// Address is the gateway's address on uplink k.
func (s *ScaleLab) Address(k int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(4*k + 2)})
}

func (s *ScaleLab) build() error {
	if err := runIP(nil, fmt.Sprintf("netns add %s\nnetns add %s\n", s.GWNS(), s.ispNS())); err != nil {
		return err
	}
	for _, ns := range []string{s.GWNS(), s.ispNS()} {
		if out, err := run(nil, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"); err != nil {
			return fmt.Errorf("netlab: sysctl in %s: %w: %s", ns, err, out)
		}
	}
	var gw, isp strings.Builder
	gw.WriteString("link set lo up\n")
	isp.WriteString("link set lo up\n")
	for k := range s.N {
		fmt.Fprintf(&gw, "link add %s type veth peer name gw%d netns %s\n", s.Interface(k), k, s.ispNS())
		fmt.Fprintf(&gw, "addr add %s/30 dev %s\nlink set %s up\n", s.Address(k), s.Interface(k), s.Interface(k))
	}
	for k := range s.N {
		fmt.Fprintf(&isp, "addr add %s/30 dev gw%d\nlink set gw%d up\n", s.Gateway(k), k, k)
	}
	for _, t := range s.Targets {
		fmt.Fprintf(&isp, "addr add %s/32 dev lo\n", t)
	}
	gwNS, ispNS := s.GWNS(), s.ispNS()
	if err := runIP(&gwNS, gw.String()); err != nil {
		return err
	}
	return runIP(&ispNS, isp.String())
}

// DaemonConfig renders an uplinkd configuration for the lab: every uplink in one tier, the
// given interval and timeout, connection pinning off (it is not what this lab measures).
func (s *ScaleLab) DaemonConfig(socket string, interval, timeout string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[daemon]\nsocket = %q\nlog_level = \"info\"\npin_connections = false\ntable_base = 1000\n\n", socket)
	targets := make([]string, len(s.Targets))
	for i, t := range s.Targets {
		targets[i] = fmt.Sprintf("%q", t.String())
	}
	fmt.Fprintf(&b, "[defaults]\ntargets = [%s]\ninterval = %q\ntimeout = %q\n\n", strings.Join(targets, ", "), interval, timeout)
	for k := range s.N {
		fmt.Fprintf(&b, "[[uplink]]\nname = \"u%d\"\ninterface = %q\ngateway = %q\npriority = 1\n\n", k, s.Interface(k), s.Gateway(k))
	}
	return b.String()
}

// Close removes the namespaces (and with them every link); idempotent.
func (s *ScaleLab) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, ns := range []string{s.GWNS(), s.ispNS()} {
		if !nsExists(ns) {
			continue
		}
		if out, err := run(nil, "ip", "netns", "del", ns); err != nil && nsExists(ns) {
			errs = append(errs, fmt.Errorf("netlab: ip netns del %s: %w: %s", ns, err, out))
		}
	}
	return errors.Join(errs...)
}
