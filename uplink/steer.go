package uplink

import (
	"slices"
	"time"
)

// LineQuality is what an uplink measured over its window.
type LineQuality struct {
	Loss        float64 // percent
	RTT, Jitter time.Duration
	MOS         float64
	Known       bool // false until the uplink has rounds in its window
}

// ServiceTargets is what a service needs of the uplink its new connections take ([[service]]
// max_rtt, max_jitter, max_loss, min_mos); a zero field sets no limit.
type ServiceTargets struct {
	MaxRTT, MaxJitter time.Duration
	MaxLoss           float64 // percent; 0: no limit
	MinMOS            float64
}

// Set says whether any target is given.
func (t ServiceTargets) Set() bool { return t != ServiceTargets{} }

// Met says whether q meets every target. An uplink not yet measured meets none.
func (t ServiceTargets) Met(q LineQuality) bool {
	return q.Known &&
		(t.MaxRTT == 0 || q.RTT <= t.MaxRTT) &&
		(t.MaxJitter == 0 || q.Jitter <= t.MaxJitter) &&
		(t.MaxLoss == 0 || q.Loss <= t.MaxLoss) &&
		(t.MinMOS == 0 || q.MOS >= t.MinMOS)
}

// Steering keeps, for every service with quality targets, the uplink its new connections take,
// with hysteresis: leaving an uplink takes a violation sustained for Leave, coming back to a
// preferred one a recovery sustained for Return, and a service moves at most once per
// direction (away from its preference, back towards it) per HoldDown. It is not safe for
// concurrent use: the engine's loop owns it.
type Steering struct {
	Leave, Return, HoldDown time.Duration
	services                map[string]*steer
}

type steer struct {
	cur                string
	bad, good          map[string]time.Time // since when each uplink has violated / met the targets
	lastAway, lastBack time.Time
	left               string // the uplink it last left for missing its targets
	leftSeq            uint64 // counts those moves
}

// Observe records the candidates' quality at now and moves each service with targets where
// the rules say; it reports whether any service's uplink changed. Services without targets,
// and services that are gone, are dropped.
func (st *Steering) Observe(cands []Candidate, services []Service, now time.Time) (changed bool) {
	if st.services == nil {
		st.services = map[string]*steer{}
	}
	seen := map[string]bool{}
	for _, s := range services {
		if !s.Targets.Set() {
			continue
		}
		seen[s.Name] = true
		sv := st.services[s.Name]
		if sv == nil {
			sv = &steer{bad: map[string]time.Time{}, good: map[string]time.Time{}}
			st.services[s.Name] = sv
		}
		if next := st.choose(sv, s, cands, now); next != sv.cur {
			sv.cur, changed = next, true
		}
	}
	for name := range st.services {
		if !seen[name] {
			delete(st.services, name)
		}
	}
	return changed
}

// Uplink is where service name's new connections go ("" when no uplink of it is usable, or it
// has no targets: then the plain rule applies).
func (st *Steering) Uplink(name string) string {
	if sv := st.services[name]; sv != nil {
		return sv.cur
	}
	return ""
}

func (st *Steering) choose(sv *steer, s Service, cands []Candidate, now time.Time) string {
	var usable []string // the service's usable uplinks, in its order of preference
	for _, name := range s.Uplinks {
		i := slices.IndexFunc(cands, func(c Candidate) bool { return c.Name == name })
		if i < 0 {
			continue
		}
		c := cands[i]
		if s.Targets.Met(c.Quality) {
			delete(sv.bad, name)
			if _, ok := sv.good[name]; !ok {
				sv.good[name] = now
			}
		} else {
			delete(sv.good, name)
			if _, ok := sv.bad[name]; !ok {
				sv.bad[name] = now
			}
		}
		if !c.Drained && c.State.Usable() {
			usable = append(usable, name)
		}
	}
	if len(usable) == 0 {
		return ""
	}
	meets := func(name string, d time.Duration) bool {
		since, ok := sv.good[name]
		return ok && now.Sub(since) >= d
	}
	rank := func(name string) int { return slices.Index(s.Uplinks, name) }
	if !slices.Contains(usable, sv.cur) {
		// Its uplink is gone (down, drained, first decision): no hysteresis, the best one
		// that meets the targets now, else the best usable.
		for _, u := range usable {
			if meets(u, 0) {
				return u
			}
		}
		return usable[0]
	}
	// Back towards the preference: a better uplink that has met the targets for Return.
	if now.Sub(sv.lastBack) >= st.HoldDown {
		for _, u := range usable {
			if rank(u) >= rank(sv.cur) {
				break
			}
			if meets(u, st.Return) {
				sv.lastBack = now
				return u
			}
		}
	}
	// Away: the current uplink has violated the targets for Leave.
	if since, bad := sv.bad[sv.cur]; bad && now.Sub(since) >= st.Leave && now.Sub(sv.lastAway) >= st.HoldDown {
		for _, u := range usable {
			if u != sv.cur && meets(u, 0) {
				sv.lastAway = now
				sv.left, sv.leftSeq = sv.cur, sv.leftSeq+1
				return u
			}
		}
		if usable[0] != sv.cur { // none meets them: the best usable uplink
			sv.lastBack = now
			return usable[0]
		}
	}
	return sv.cur
}

// Apply puts the steered uplinks into d: a service with targets goes where Observe moved it.
func (st *Steering) Apply(d *Decision, services []Service) {
	for i, s := range services {
		if i < len(d.Services) {
			if u := st.Uplink(s.Name); u != "" {
				d.Services[i].Uplink, d.Services[i].Block = u, false
			}
		}
	}
}

// Left is the uplink service name last left for missing its targets, and how many such moves
// it made (0: none yet): a service that moves its existing connections ends those on it.
func (st *Steering) Left(name string) (uplink string, seq uint64) {
	if sv := st.services[name]; sv != nil {
		return sv.left, sv.leftSeq
	}
	return "", 0
}
