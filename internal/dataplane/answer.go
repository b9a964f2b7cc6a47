package dataplane

import (
	"net/netip"
	"slices"

	"github.com/uplinkd/uplinkd/uplink"
)

// Answer is what one published name answers, and why: the one decision the DNS server, the
// status, the metrics and the updates all read.
type Answer struct {
	Addrs []netip.Addr
	// Sites are the sites whose addresses it carries (several sites only).
	Sites []string
	// Fallback: no site can serve the name, and it answers its fallback (with its own TTL).
	Fallback bool
	// Unverified: nothing can serve the name and it has no fallback: it carries every listed
	// address, an answer that may work beating none.
	Unverified bool
	// Nearest (the nearest policy) are the sites that can serve the name, in its order, each
	// with its client networks: the server answers a client from the site whose networks hold
	// it, and Addrs (the first site) when none does.
	Nearest []SiteAnswer
}

// SiteAnswer is one site's addresses for a name, and the client networks nearest to it.
type SiteAnswer struct {
	Site     string
	Addrs    []netip.Addr
	Networks []netip.Prefix
}

// Answer decides what the published name n answers. At one site: the addresses of its
// uplinks that the [dns] policy picks, while its servers pass. At several: each site of the
// name's that can serve it, in the name's order: this one while its servers pass and an
// uplink is usable, another while one of its addresses passes this site's checks (through
// this site's live uplinks; an address never checked passes when the name has no check).
// failover answers the first, spread all of them. When none can, the fallback.
func (s State) Answer(n uplink.DNSName) Answer {
	d := s.DNS
	localOK := !(n.Checked() && s.NamesDown[n.Name])
	local, live := s.uplinkAddrs(n)
	if !d.Multisite() {
		switch {
		case localOK:
			return Answer{Addrs: local}
		case len(n.Fallback) > 0:
			return Answer{Addrs: n.Fallback, Fallback: true}
		}
		return Answer{Addrs: local, Unverified: true}
	}
	var a Answer
	var listed []netip.Addr // every address the name has anywhere
	for _, name := range d.SitesOf(n) {
		var addrs []netip.Addr
		if name == d.Site {
			listed = append(listed, local...)
			if localOK && live {
				addrs = local
			}
		} else {
			site, _ := d.SiteNamed(name)
			listed = append(listed, site.AddressesFor(n.Name)...)
			addrs = site.AddressesFor(n.Name)
			if _, checked := d.CheckAt(n, name); checked {
				addrs = slices.DeleteFunc(slices.Clone(addrs), func(x netip.Addr) bool { return !s.SitesUp[n.Name][name][x] })
			}
		}
		if len(addrs) == 0 {
			continue
		}
		switch n.Policy {
		case uplink.SitePolicySpread:
			a.Sites, a.Addrs = append(a.Sites, name), append(a.Addrs, addrs...)
		case uplink.SitePolicyNearest:
			site, _ := d.SiteNamed(name)
			a.Nearest = append(a.Nearest, SiteAnswer{Site: name, Addrs: addrs, Networks: site.Networks})
			if len(a.Sites) == 0 { // the default: the first that can serve it
				a.Sites, a.Addrs = []string{name}, addrs
			}
		default: // failover: the first that can serve it
			if len(a.Sites) == 0 {
				a.Sites, a.Addrs = []string{name}, addrs
			}
		}
	}
	switch {
	case len(a.Addrs) > 0:
		return a
	case len(n.Fallback) > 0:
		return Answer{Addrs: n.Fallback, Fallback: true}
	}
	return Answer{Addrs: listed, Unverified: true}
}

// Published is what the published name n answers (Answer).
func (s State) Published(n uplink.DNSName) []netip.Addr { return s.Answer(n).Addrs }

// Fallback says whether n answers its fallback (Answer).
func (s State) Fallback(n uplink.DNSName) bool { return s.Answer(n).Fallback }

// uplinkAddrs are the addresses of n's uplinks that the [dns] policy picks, per family, and
// whether any was picked; when none qualifies, every one of its uplinks' addresses.
func (s State) uplinkAddrs(n uplink.DNSName) (addrs []netip.Addr, live bool) {
	policy := s.DNS.Policy
	var cands []Uplink
	for _, u := range s.Uplinks {
		if len(n.Uplinks) == 0 || slices.Contains(n.Uplinks, u.Name) {
			cands = append(cands, u)
		}
	}
	if len(n.Uplinks) > 0 { // the name's own order
		slices.SortStableFunc(cands, func(a, b Uplink) int {
			return slices.Index(n.Uplinks, a.Name) - slices.Index(n.Uplinks, b.Name)
		})
	}
	for _, v6 := range []bool{false, true} {
		var picked, all []netip.Addr
		for _, u := range cands {
			a, chosen := u.Public4, u.Active
			if policy == uplink.DNSPolicyAll {
				chosen = u.Usable
			}
			if v6 {
				a, chosen = u.Public6, u.Active6
				if policy == uplink.DNSPolicyAll {
					chosen = u.Usable6
				}
			}
			if !a.IsValid() {
				continue
			}
			all = append(all, a)
			if chosen {
				picked = append(picked, a)
			}
		}
		if len(picked) == 0 {
			picked = all
		} else {
			live = true
		}
		addrs = append(addrs, picked...)
	}
	return addrs, live
}
