package netlab

import (
	"fmt"
	"net/netip"
	"slices"
)

// A second site (AddSite): the business's other place, a gateway with one uplink straight on
// the lab's Internet, which runs its own uplinkd and serves its own web server. The first site
// is the lab's gateway with its two ISPs.
const (
	RoleSiteB = "siteb"
	ifSiteB   = "siteb" // in inet: the wire to site B
)

var (
	SiteBPrefix4 = netip.MustParsePrefix("198.51.100.128/26")
	SiteBInet4   = netip.MustParseAddr("198.51.100.129") // the Internet's end: site B's gateway
	SiteBAddr4   = netip.MustParseAddr("198.51.100.130") // site B's public address
)

// AddSite adds site B to a single-gateway lab: namespace siteb, its wan1 wired to the
// internet namespace, address SiteBAddr4, default route through the Internet. Close removes it.
func (l *Lab) AddSite() error {
	l.mu.Lock()
	if l.roles == nil {
		l.roles = slices.Clone(roles)
	}
	if slices.Contains(l.roles, RoleSiteB) {
		l.mu.Unlock()
		return nil
	}
	l.roles = append(l.roles, RoleSiteB)
	l.mu.Unlock()
	ns := l.NS(RoleSiteB)
	if err := runIP(nil, fmt.Sprintf("netns add %s\n", ns)); err != nil {
		return err
	}
	if out, err := run(nil, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.disable_ipv6=1"); err != nil {
		return fmt.Errorf("netlab: sysctl in %s: %w: %s", ns, err, out)
	}
	inet := l.NS(RoleInet)
	// The Internet now carries traffic between the sites: it forwards.
	if out, err := run(nil, "ip", "netns", "exec", inet, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return fmt.Errorf("netlab: sysctl in %s: %w: %s", inet, err, out)
	}
	bits := SiteBPrefix4.Bits()
	script := fmt.Sprintf("link add %s type veth peer name %s netns %s\naddr add %s/%d dev %s\nlink set %s up\n",
		ifSiteB, IfWAN1, ns, SiteBInet4, bits, ifSiteB, ifSiteB)
	if err := runIP(&inet, script); err != nil {
		return err
	}
	return runIP(&ns, fmt.Sprintf("link set lo up\naddr add %s/%d dev %s\nlink set %s up\nroute add default via %s dev %s\n",
		SiteBAddr4, bits, IfWAN1, IfWAN1, SiteBInet4, IfWAN1))
}

// PowerCut cuts site role's power: its uplinks lose carrier and whatever runs there stops
// answering (the processes are the caller's to stop). role is RoleGW (site A) or RoleSiteB.
func (l *Lab) PowerCut(role string) error { return l.power(role, "down") }

// PowerBack undoes PowerCut.
func (l *Lab) PowerBack(role string) error { return l.power(role, "up") }

// power sets the far ends of site role's uplinks up or down.
func (l *Lab) power(role, state string) error {
	switch role {
	case RoleSiteB:
		inet := l.NS(RoleInet)
		return runIP(&inet, fmt.Sprintf("link set %s %s\n", ifSiteB, state))
	case RoleGW:
		for _, u := range Uplinks {
			ns := l.NS(u.Role)
			if err := runIP(&ns, fmt.Sprintf("link set %s %s\n", ifISPToGW, state)); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("netlab: power %s: no site %q", state, role)
}

// Partition breaks the path between the sites while customers on the Internet still reach
// both: the Internet drops what site B and the lab's gateway (its ISPs' ranges) send each
// other. Heal with Unpartition.
func (l *Lab) Partition() error {
	a := netip.MustParsePrefix("198.51.100.0/25") // both of the gateway's ISPs' ranges
	return l.nft(RoleInet, fmt.Sprintf("table ip labpartition {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tip saddr %s ip daddr %s drop\n\t\tip saddr %s ip daddr %s drop\n\t}\n}\n",
		SiteBPrefix4, a, a, SiteBPrefix4))
}

// Unpartition undoes Partition.
func (l *Lab) Unpartition() error { return l.nft(RoleInet, "delete table ip labpartition\n") }
