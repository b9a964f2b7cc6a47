package uplink

import (
	"cmp"
	"slices"
)

// Candidate is what selection needs to know of one uplink.
type Candidate struct {
	Name     string
	Priority int // tier: lower is preferred
	Weight   int
	State    State
	Drained  bool
	DrainNow bool // drained with --now: its connections move too
	// State6 is its IPv6 health when judged apart from IPv4 (targets of both families); nil:
	// State holds for both.
	State6 *State
	// Quality is what it measured (for services with quality targets).
	Quality LineQuality
}

// Select returns the uplinks that carry traffic, in configuration order, and why.
//
// The best tier with an Up uplink carries traffic on all its Up members (weighted); failing
// that, the best tier with a Degraded one; then uplinks not yet judged. Drained uplinks carry
// traffic only when no other uplink can. When nothing can, the primary tier keeps the default
// route: a gateway without a default route helps nobody, and the uplink may come back first.
func Select(cands []Candidate) (active []Candidate, why string) {
	classes := []struct {
		state   State
		drained bool
		why     string
	}{
		{Up, false, "best tier that is up"},
		{Degraded, false, "no uplink is up: best degraded tier"},
		{Unknown, false, "not yet judged: best tier"},
		{Up, true, "only drained uplinks are up"},
		{Degraded, true, "only drained uplinks are usable (degraded)"},
		{Unknown, true, "only drained uplinks remain (not yet judged)"},
	}
	for _, c := range classes {
		if set := bestTier(cands, func(x Candidate) bool { return x.State == c.state && x.Drained == c.drained }); len(set) > 0 {
			return set, c.why
		}
	}
	if set := bestTier(cands, func(x Candidate) bool { return !x.Drained }); len(set) > 0 {
		return set, "every uplink is down: keeping the primary tier"
	}
	return bestTier(cands, func(Candidate) bool { return true }), "every uplink is down or drained: keeping the primary tier"
}

// bestTier returns the members of the lowest priority among those that match, in input order.
func bestTier(cands []Candidate, match func(Candidate) bool) []Candidate {
	var matching []Candidate
	for _, c := range cands {
		if match(c) {
			matching = append(matching, c)
		}
	}
	if len(matching) == 0 {
		return nil
	}
	best := slices.MinFunc(matching, func(a, b Candidate) int { return cmp.Compare(a.Priority, b.Priority) }).Priority
	return slices.DeleteFunc(matching, func(c Candidate) bool { return c.Priority != best })
}

// Names lists the candidates' names.
func Names(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}
