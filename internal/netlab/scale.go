package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// ScaleLab is a lab for measuring the daemon's cost with many uplinks: a gateway namespace
// with N uplinks (veth "up0".."upN-1"), all wired to one ISP namespace that holds the M
// targets on its loopback. Up to 64 uplinks, uplink k is 198.51.100.4k+2/30 with gateway
// .4k+1; beyond (up to 250, uplinkd's limit), /31s: gateway 198.51.100.2k, address .2k+1, and
// from k = 128 on the same in 192.0.2.0/24. Targets are 203.0.113.1..M (M ≤ 32). Real sockets,
// real kernel, documentation addresses.
type ScaleLab struct {
	prefix  string
	N, M    int
	closed  bool
	Targets []netip.Addr
}

// MaxScaleUplinks is uplinkd's limit (ids 1..250); 256 /31s fit in the two /24s.
const MaxScaleUplinks = 250

// maxScale30 is how many /30s fit in 198.51.100.0/24: labs up to this size keep them.
const maxScale30 = 64

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
	if s.N <= maxScale30 {
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(4*k + 1)})
	}
	return s.addr31(k, 0)
}

// Address is the gateway's address on uplink k.
func (s *ScaleLab) Address(k int) netip.Addr {
	if s.N <= maxScale30 {
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(4*k + 2)})
	}
	return s.addr31(k, 1)
}

// addr31 is end (0: the ISP's, 1: the gateway's) of uplink k's /31.
func (s *ScaleLab) addr31(k, end int) netip.Addr {
	base := [2][3]byte{{198, 51, 100}, {192, 0, 2}}[k/128]
	return netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(2*(k%128) + end)})
}

// bits is the prefix length of every uplink's subnet.
func (s *ScaleLab) bits() int {
	if s.N <= maxScale30 {
		return 30
	}
	return 31
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
		fmt.Fprintf(&gw, "addr add %s/%d dev %s\nlink set %s up\n", s.Address(k), s.bits(), s.Interface(k), s.Interface(k))
	}
	for k := range s.N {
		fmt.Fprintf(&isp, "addr add %s/%d dev gw%d\nlink set gw%d up\n", s.Gateway(k), s.bits(), k, k)
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
// given interval and timeout, connection pinning off (it is not what bench-scale measures).
func (s *ScaleLab) DaemonConfig(socket string, interval, timeout string) string {
	return s.Config(ScaleConfig{Socket: socket, Interval: interval, Timeout: timeout})
}

// ScaleConfig shapes a scale lab's uplinkd configuration.
type ScaleConfig struct {
	Socket            string
	Interval, Timeout string // durations as the config writes them ("500ms")
	Pinning           bool   // pin_connections (the nftables table with a pin_N chain per uplink)
}

// Config renders an uplinkd configuration for the lab: every uplink in one tier.
func (s *ScaleLab) Config(c ScaleConfig) string {
	socket, interval, timeout := c.Socket, c.Interval, c.Timeout
	var b strings.Builder
	fmt.Fprintf(&b, "[daemon]\nsocket = %q\nstate_file = %q\nlog_level = \"info\"\npin_connections = %t\ntable_base = 1000\n\n",
		socket, filepath.Join(filepath.Dir(socket), "state.json"), c.Pinning)
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
