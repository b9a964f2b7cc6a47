package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/uplink"
)

// rawSite is one [[site]]: a place that serves the same zone.
type rawSite struct {
	Name        string               `toml:"name"`
	NameServers []address            `toml:"nameservers"`
	Addresses   []address            `toml:"addresses"`
	Names       map[string][]address `toml:"names"`
	Networks    []string             `toml:"networks"`
	Servers     map[string][]string  `toml:"servers"`
}

// siteName is what a site may be called: one DNS label (its name servers are
// ns1.<site>.<zone>).
func validSiteName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}

// parseSites validates [[site]] and [dns] site against the zone d, and the names' sites and
// policies; it fills d.Sites, d.Site.
func parseSites(raw []rawSite, this *string, d *uplink.DNS, rawNames []rawDNSName, fail func(string, string, ...any)) {
	if len(raw) == 0 {
		if this != nil {
			fail("dns.site", "%q names no [[site]]: list every site that serves the zone, this one too", *this)
		}
		for i, rn := range rawNames {
			if rn.Policy != nil || len(rn.Sites) > 0 {
				fail(fmt.Sprintf("dns.name.%d", i), "policy and sites choose among [[site]] tables, and there are none")
			}
		}
		return
	}
	if d.Update.Enabled() {
		fail("dns.update", "[dns.update] with several sites: two sites would overwrite each other's records at the primary (and fight in a partition); delegate the zone to every site's name servers instead")
	}
	expects := map[string]string{} // the names' expected bodies, for the sites' servers
	for _, n := range d.Names {
		for _, srv := range n.Servers {
			if srv.Method.Expect != "" {
				expects[n.Name] = srv.Method.Expect
			}
		}
	}
	for _, rn := range rawNames {
		if rn.Expect != nil {
			expects[qualify(strings.ToLower(rn.Name), d.Zone)] = *rn.Expect
		}
	}
	named := true // every site has a good name: the checks that name sites may follow
	for i, r := range raw {
		k := func(key string) string { return fmt.Sprintf("site.%d.%s", i, key) }
		name := strings.ToLower(r.Name)
		switch {
		case !validSiteName(name):
			fail(k("name"), "%q is not a site name: one label of letters, digits and '-' (its name servers are ns1.<site>.%s)", r.Name, d.Zone)
			named = false
			continue
		case slices.ContainsFunc(d.Sites, func(s uplink.Site) bool { return s.Name == name }):
			fail(k("name"), "site %q is listed twice", r.Name)
			continue
		}
		s := uplink.Site{Name: name}
		for _, a := range r.NameServers {
			s.NameServers = append(s.NameServers, a.Addr)
		}
		if len(s.NameServers) == 0 {
			fail(k("nameservers"), "site %q has no name server: give the public addresses its uplinkd answers on", name)
		}
		for _, a := range r.Addresses {
			s.Addresses = append(s.Addresses, a.Addr)
		}
		for _, n := range r.Networks {
			p, err := netip.ParsePrefix(n)
			if err != nil || p != p.Masked() {
				fail(k("networks"), "%q is not a network such as \"192.0.2.0/24\" or \"2001:db8::/32\" (no host bits)", n)
				continue
			}
			s.Networks = append(s.Networks, p)
		}
		for n, addrs := range r.Names {
			fq := qualify(strings.ToLower(n), d.Zone)
			if !slices.ContainsFunc(d.Names, func(x uplink.DNSName) bool { return x.Name == fq }) {
				fail(k("names"), "%q is not a published name ([[dns.name]])", n)
				continue
			}
			if s.NameAddresses == nil {
				s.NameAddresses = map[string][]netip.Addr{}
			}
			for _, a := range addrs {
				s.NameAddresses[fq] = append(s.NameAddresses[fq], a.Addr)
			}
		}
		for n, servers := range r.Servers {
			fq := qualify(strings.ToLower(n), d.Zone)
			if !slices.ContainsFunc(d.Names, func(x uplink.DNSName) bool { return x.Name == fq }) {
				fail(k("servers"), "%q is not a published name ([[dns.name]])", n)
				continue
			}
			if s.Servers == nil {
				s.Servers = map[string][]uplink.Server{}
			}
			for _, text := range servers {
				srv, err := uplink.ParseServer(text)
				if err != nil {
					fail(k("servers"), "%s: %v", n, err)
					continue
				}
				if srv.Method.Name != uplink.MethodTCP {
					srv.Method.Expect = expects[fq]
				}
				s.Servers[fq] = append(s.Servers[fq], srv)
			}
		}
		d.Sites = append(d.Sites, s)
	}
	switch _, ok := d.SiteNamed(strings.ToLower(deref(this))); {
	case !named:
		return
	case this == nil:
		fail("dns", "[dns] has no site: name this gateway's [[site]], e.g. site = %q", d.Sites[0].Name)
		return
	case !ok:
		fail("dns.site", "%q is not a [[site]] (%s)", *this, strings.Join(siteNames(d.Sites), ", "))
		return
	}
	d.Site = strings.ToLower(*this)
	if here, _ := d.SiteNamed(d.Site); len(here.Servers) > 0 { // this site's own servers for its names
		for i := range d.Names {
			if servers := here.Servers[d.Names[i].Name]; len(servers) > 0 {
				d.Names[i].Servers = servers
			}
		}
	}
	for _, s := range d.Sites {
		for _, ns := range s.NSNames(d.Zone) {
			if slices.ContainsFunc(d.Names, func(n uplink.DNSName) bool { return n.Name == ns }) {
				fail("dns", "%s is site %s's name server name: publish another name", ns, s.Name)
			}
		}
	}
	if len(d.Names) != len(rawNames) {
		return // a name was refused already: its siblings' indexes would not match
	}
	for i := range d.Names {
		n := &d.Names[i]
		rn := rawNames[i]
		k := func(key string) string { return fmt.Sprintf("dns.name.%d.%s", i, key) }
		n.Policy = uplink.SitePolicyFailover
		if rn.Policy != nil {
			n.Policy = *rn.Policy
			if n.Policy != uplink.SitePolicyFailover && n.Policy != uplink.SitePolicySpread && n.Policy != uplink.SitePolicyNearest {
				fail(k("policy"), "%q is not %q, %q or %q", n.Policy, uplink.SitePolicyFailover, uplink.SitePolicySpread, uplink.SitePolicyNearest)
			} else if n.Policy == uplink.SitePolicyNearest && !slices.ContainsFunc(d.Sites, func(s uplink.Site) bool { return len(s.Networks) > 0 }) {
				fail(k("policy"), "nearest needs the sites' networks: give a [[site]] networks = [\"192.0.2.0/24\"]")
			}
		}
		for _, s := range rn.Sites {
			s = strings.ToLower(s)
			if _, ok := d.SiteNamed(s); !ok {
				fail(k("sites"), "no [[site]] is called %q", s)
			} else if slices.Contains(n.Sites, s) {
				fail(k("sites"), "site %q is listed twice", s)
			}
			n.Sites = append(n.Sites, s)
		}
		for _, s := range d.SitesOf(*n) {
			site, _ := d.SiteNamed(s)
			if s != d.Site && len(site.AddressesFor(n.Name)) == 0 {
				fail(k("sites"), "site %q has no addresses for %s: give it addresses (or names.%s)", s, n.Name, strings.TrimSuffix(n.Name, "."+d.Zone))
			}
		}
	}
}

// qualify makes a name as [[dns.name]] writes it fully qualified in zone.
func qualify(n, zone string) string {
	switch {
	case n == "@":
		return zone
	case strings.HasSuffix(n, "."):
		return n
	}
	return dns.Fqdn(n + "." + zone)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func siteNames(sites []uplink.Site) []string {
	out := make([]string, len(sites))
	for i, s := range sites {
		out[i] = s.Name
	}
	return out
}
