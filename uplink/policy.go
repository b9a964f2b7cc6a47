package uplink

import "slices"

// Decision is everything the policy decides from the uplinks' states in one pass: which uplinks
// carry new traffic, which keep the connections they have, where each service goes, and whose
// connections just lost their uplink.
type Decision struct {
	Active []string // carry new traffic, in configuration order
	Why    string   // why this active set
	// Active6 carry new IPv6 traffic: the same as Active unless an uplink's IPv6 is judged
	// apart (targets of both families) and differs from its IPv4.
	Active6 []string
	// Live uplinks keep their connections. With pinning, connections stay through failback,
	// re-weighting, reloads and a graceful drain, and move only when their uplink is down or
	// drained --now; without it, only the active uplinks carry anything.
	Live     []string
	Services []ServiceChoice // in configuration order
}

// ServiceChoice is where a service's new connections go.
type ServiceChoice struct {
	Service string
	Uplink  string // "" when none of its uplinks can carry it
	Block   bool   // no uplink and no fallback: refuse the connection
}

// Decide runs the policy. pinning says whether connections are pinned to their uplink.
func Decide(cands []Candidate, services []Service, pinning bool) Decision {
	sel, why := Select(cands)
	d := Decision{Active: Names(sel), Why: why}
	d.Active6 = d.Active
	v6 := cands // the candidates as their IPv6 is judged
	if slices.ContainsFunc(cands, func(c Candidate) bool { return c.State6 != nil }) {
		v6 = make([]Candidate, len(cands))
		for i, c := range cands {
			v6[i] = c
			if c.State6 != nil {
				v6[i].State = *c.State6
			}
		}
		sel6, _ := Select(v6)
		d.Active6 = Names(sel6)
	}
	for _, c := range cands {
		if slices.Contains(d.Active, c.Name) || (pinning && c.State != Down && !c.DrainNow) {
			d.Live = append(d.Live, c.Name)
		}
	}
	for _, s := range services {
		by := cands
		if s.IPv6Only() { // an IPv6 service follows the IPv6 judgement
			by = v6
		}
		ch := ServiceChoice{Service: s.Name, Uplink: serviceUplink(s, by)}
		ch.Block = ch.Uplink == "" && !s.Fallback
		d.Services = append(d.Services, ch)
	}
	return d
}

// serviceUplink walks a service's list in order: the first Up uplink that is not drained, else
// the first Degraded one, else none.
func serviceUplink(s Service, cands []Candidate) string {
	for _, want := range []State{Up, Degraded} {
		for _, name := range s.Uplinks {
			i := slices.IndexFunc(cands, func(c Candidate) bool { return c.Name == name })
			if i >= 0 && !cands[i].Drained && cands[i].State == want {
				return name
			}
		}
	}
	return ""
}

// Departed lists the uplinks that were live before and are not now: their connections have
// lost their uplink, and NAT state bound to its addresses must go.
func Departed(before, now []string) []string {
	var out []string
	for _, name := range before {
		if !slices.Contains(now, name) {
			out = append(out, name)
		}
	}
	return out
}
