package uplink

import (
	"net/netip"
	"strconv"
)

// Site is one place that serves the zone's names ([[site]]): this gateway's own, or another
// site's (an office and a data centre, two cities), so that no site is a single point of
// failure. Every site serves the same zone; each decides from what it can verify itself.
type Site struct {
	Name string
	// NameServers are its name servers' public addresses: the zone's NS set names every
	// site's, with glue, so resolvers reach whichever site is alive.
	NameServers []netip.Addr
	// Addresses are what customers use there, for every name; NameAddresses override them per
	// name (fully qualified). This site's own answers come from its live uplinks instead.
	Addresses     []netip.Addr
	NameAddresses map[string][]netip.Addr
	// Networks are the client networks this site is nearest to (the nearest policy).
	Networks []netip.Prefix
	// Servers are, per name (fully qualified), the servers behind it at this site, so that one
	// file serves every site: at this site they are the name's servers, and the other sites
	// check this site's addresses for the name with their method.
	Servers map[string][]Server
}

// AddressesFor are the addresses customers use at s for the name n (fully qualified).
func (s Site) AddressesFor(n string) []netip.Addr {
	if a, ok := s.NameAddresses[n]; ok {
		return a
	}
	return s.Addresses
}

// NSNames are the names of s's name servers in zone: "ns1.paris.lb.example.com." …, the
// same at every site.
func (s Site) NSNames(zone string) []string {
	out := make([]string, len(s.NameServers))
	for i := range s.NameServers {
		out[i] = "ns" + strconv.Itoa(i+1) + "." + s.Name + "." + zone
	}
	return out
}

// Name policies: how a name's answer picks among the healthy sites.
const (
	SitePolicyFailover = "failover" // the first healthy site in the name's order answers
	SitePolicySpread   = "spread"   // every healthy site's addresses
	// SitePolicyNearest: the site whose networks hold the client (its EDNS Client Subnet, or
	// its resolver's address), else as failover.
	SitePolicyNearest = "nearest"
)

// Multisite says whether the zone is served by several sites.
func (d DNS) Multisite() bool { return len(d.Sites) > 0 }

// SiteNamed returns the site called name.
func (d DNS) SiteNamed(name string) (Site, bool) {
	for _, s := range d.Sites {
		if s.Name == name {
			return s, true
		}
	}
	return Site{}, false
}

// SitesOf are the sites that serve n, in its order: its own list, or every site.
func (d DNS) SitesOf(n DNSName) []string {
	if len(n.Sites) > 0 {
		return n.Sites
	}
	out := make([]string, len(d.Sites))
	for i, s := range d.Sites {
		out[i] = s.Name
	}
	return out
}

// CheckAt is how n is checked at site's addresses: the method of site's own servers for n
// when [[site]] lists them, else of n's first server (the same port, path and expected body);
// none when neither exists.
func (d DNS) CheckAt(n DNSName, site string) (Method, bool) {
	if s, ok := d.SiteNamed(site); ok && len(s.Servers[n.Name]) > 0 {
		return s.Servers[n.Name][0].Method, true
	}
	if len(n.Servers) == 0 {
		return Method{}, false
	}
	return n.Servers[0].Method, true
}
