package netlab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// Fault is a way an uplink breaks.
type Fault int

const (
	// SilentFailure: the ISP's upstream dies; the gateway's link stays up and the ISP's router
	// still answers on the wire (so "ping the gateway" says all is well), but nothing is forwarded.
	SilentFailure Fault = iota + 1
	// CarrierLoss: the gateway's wanN loses carrier (the ISP's end of the wire goes down).
	CarrierLoss
	// Loss30: 30 % round-trip loss, as ping or mtr would report it: the ISP drops 16.3 % of
	// the packets it forwards, either way, at random (1 − 0.837² ≈ 0.30).
	Loss30
	// Loss10: 10 % round-trip loss (the ISP drops 5.1 % either way: 1 − 0.949² ≈ 0.10).
	Loss10
	// IPv6Silent: the ISP stops forwarding IPv6 only; IPv4 works.
	IPv6Silent
	// Loss19: 10 % loss either way, 19 % round trip (1 − 0.9² = 0.19): just under the shipped
	// max_loss of 20 %, where degraded's hysteresis is tested.
	Loss19
)

func (f Fault) String() string {
	switch f {
	case SilentFailure:
		return "silent"
	case CarrierLoss:
		return "carrier"
	case Loss30:
		return "loss30"
	case Loss10:
		return "loss10"
	case IPv6Silent:
		return "ipv6-silent"
	case Loss19:
		return "loss19"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// ParseFault reads the names String gives.
func ParseFault(s string) (Fault, error) {
	for _, f := range []Fault{SilentFailure, CarrierLoss, Loss30, Loss10, Loss19, IPv6Silent} {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("netlab: unknown fault %q: want silent, carrier, loss30, loss19, loss10 or ipv6-silent", s)
}

// Break makes uplink isp (1 or 2) fail the given way. Faults add up; Heal clears them all.
func (l *Lab) Break(isp int, how Fault) error {
	u, err := uplink(isp)
	if err != nil {
		return err
	}
	switch how {
	case SilentFailure:
		return l.nft(u.Role, fmt.Sprintf("add rule inet %s fault drop\n", nftTable))
	case Loss30:
		return l.nft(u.Role, fmt.Sprintf("add rule inet %s fault numgen random mod 1000 < 163 drop\n", nftTable))
	case Loss10:
		return l.nft(u.Role, fmt.Sprintf("add rule inet %s fault numgen random mod 1000 < 51 drop\n", nftTable))
	case Loss19:
		return l.nft(u.Role, fmt.Sprintf("add rule inet %s fault numgen random mod 1000 < 100 drop\n", nftTable))
	case IPv6Silent:
		return l.nft(u.Role, fmt.Sprintf("add rule inet %s fault meta nfproto ipv6 drop\n", nftTable))
	case CarrierLoss:
		ns := l.NS(u.Role)
		return runIP(&ns, fmt.Sprintf("link set %s down\n", ifISPToGW))
	}
	return fmt.Errorf("netlab: break isp%d: unknown fault %v", isp, how)
}

// Heal undoes every Break of uplink isp.
func (l *Lab) Heal(isp int) error {
	u, err := uplink(isp)
	if err != nil {
		return err
	}
	if err := l.nft(u.Role, fmt.Sprintf("flush chain inet %s fault\n", nftTable)); err != nil {
		return err
	}
	ns := l.NS(u.Role)
	return runIP(&ns, fmt.Sprintf("link set %s up\n", ifISPToGW))
}

// DropICMP makes the internet drop ICMP echo requests to exactly these targets (replacing any
// earlier list; none clears it): a target that filters pings must not make an uplink look dead.
func (l *Lab) DropICMP(targets ...netip.Addr) error {
	var b strings.Builder
	fmt.Fprintf(&b, "flush chain inet %s fault\n", nftTable)
	for _, t := range targets {
		if t.Is4() {
			fmt.Fprintf(&b, "add rule inet %s fault ip daddr %s icmp type echo-request drop\n", nftTable, t)
		} else {
			fmt.Fprintf(&b, "add rule inet %s fault ip6 daddr %s icmpv6 type echo-request drop\n", nftTable, t)
		}
	}
	return l.nft(RoleInet, b.String())
}

// Counters are packet counts in an ISP's namespace, since the lab was built.
type Counters struct {
	Up      uint64 // packets forwarded from the gateway towards the internet
	UpICMP  uint64 // of those, ICMP and ICMPv6 echo requests: probes that left through this uplink
	Down    uint64 // packets forwarded from the internet to the gateway
	Spoofed uint64 // packets from the gateway dropped by BCP 38 (source not of this ISP)
}

// Counters reads uplink isp's counters; take two readings and subtract to see what a step did.
func (l *Lab) Counters(isp int) (Counters, error) {
	u, err := uplink(isp)
	if err != nil {
		return Counters{}, err
	}
	out, err := run(nil, "ip", "netns", "exec", l.NS(u.Role), "nft", "-j", "list", "counters", "table", "inet", nftTable)
	if err != nil {
		return Counters{}, fmt.Errorf("netlab: list counters in %s: %w: %s", l.NS(u.Role), err, out)
	}
	return parseCounters(out)
}

// parseCounters reads `nft -j list counters` output.
func parseCounters(js []byte) (Counters, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return Counters{}, fmt.Errorf("netlab: parse nft counters: %w", err)
	}
	var c Counters
	seen := 0
	for _, o := range doc.Nftables {
		if o.Counter == nil {
			continue
		}
		switch o.Counter.Name {
		case counterUp:
			c.Up = o.Counter.Packets
		case counterUpICMP:
			c.UpICMP = o.Counter.Packets
		case counterDown:
			c.Down = o.Counter.Packets
		case counterSpoofed:
			c.Spoofed = o.Counter.Packets
		default:
			continue
		}
		seen++
	}
	if seen != 4 {
		return c, fmt.Errorf("netlab: parse nft counters: found %d of the 4 lab counters", seen)
	}
	return c, nil
}

// Sub returns the counts since an earlier reading.
func (c Counters) Sub(earlier Counters) Counters {
	return Counters{Up: c.Up - earlier.Up, UpICMP: c.UpICMP - earlier.UpICMP, Down: c.Down - earlier.Down, Spoofed: c.Spoofed - earlier.Spoofed}
}
