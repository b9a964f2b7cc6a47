package probe

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// The detection logic of one uplink, pure and clock-free: the driver (uplink.go) feeds it the
// time, replies and send errors, and does the sends it asks for. No goroutines, no sockets.
//
// A probe is *late* when its reply misses a deadline derived from its target's RTT history:
// smoothed RTT + deadlineK × variation (RFC 6298), at least deadlineFloor, at most the
// configured timeout. A late probe raises doubt about its target, and doubt speeds the rounds
// up to the confirmation pace. A target fails a round only when nothing came back from it since
// the round began and either a later probe of it is late too (a confirmation) or the round's
// wait is over; any reply that arrives meanwhile — late ones included — is proof of life.
// So a dead line is judged down_after confirmation rounds after its first late probe, while a
// busy line's rising RTT only ever makes replies late, never missing.

const (
	// deadlineK is RFC 6298's K: a reply later than srtt + 4 × rttvar is unusual.
	deadlineK = 4
	// deadlineFloor keeps a LAN-short RTT from making every scheduling hiccup (the reader
	// goroutine waiting for a CPU) a late reply. Late only starts a confirmation, never a verdict.
	deadlineFloor = 10 * time.Millisecond
	// confirmFloor is the shortest gap between two rounds.
	confirmFloor = 20 * time.Millisecond
	// lateLimit is how old a reply may be and still be matched: a bufferbloated line's queue
	// delays replies past a short timeout, and they still prove the line alive.
	lateLimit = 3 * time.Second
)

// estimator is one target's smoothed RTT and its variation (RFC 6298, α = 1/8, β = 1/4).
type estimator struct {
	srtt, rttvar time.Duration
	samples      int
}

func (e *estimator) sample(rtt time.Duration) {
	if e.samples == 0 {
		e.srtt, e.rttvar = rtt, rtt/2
	} else {
		diff := e.srtt - rtt
		if diff < 0 {
			diff = -diff
		}
		e.rttvar = (3*e.rttvar + diff) / 4
		e.srtt = (7*e.srtt + rtt) / 8
	}
	e.samples++
}

// expected is srtt + K × rttvar: when a reply is overdue (0 without samples).
func (e *estimator) expected() time.Duration {
	if e.samples == 0 {
		return 0
	}
	return e.srtt + deadlineK*e.rttvar
}

// deadline is when a reply becomes late: expected(), within [deadlineFloor, timeout]; the
// timeout itself until there is a sample.
func (e *estimator) deadline(timeout time.Duration) time.Duration {
	if e.samples == 0 {
		return timeout
	}
	return min(max(e.expected(), deadlineFloor), timeout)
}

// wait is how long a round waits for its own reply before judging without it: the timeout,
// longer on a line whose RTT is beyond it (its replies are slow, not lost), up to lateLimit.
func (e *estimator) wait(timeout time.Duration) time.Duration {
	return max(timeout, min(e.expected(), lateLimit))
}

// schedConfig is what the schedule needs from uplink.Probe.
type schedConfig struct {
	Targets   []netip.Addr
	Interval  time.Duration
	Timeout   time.Duration
	DownAfter int
	// GentleInterval is the gap between the one-target rounds of ModeGentle.
	GentleInterval time.Duration
	Mode           Mode // the mode it starts in
}

// Mode is how many probes a healthy uplink gets. Any doubt (a late probe) makes the next
// rounds full confirmation rounds whatever the mode, so detection does not depend on it.
type Mode int

const (
	// ModeClose probes every target twice per interval: a degraded line, whose recovery must
	// be told from a lucky streak by clean rounds, gets them twice as fast.
	ModeClose Mode = iota - 1
	// ModeFull probes every target every interval.
	ModeFull
	// ModeSparse probes one target per interval, in turn: the uplink's own traffic already
	// proves it alive (its connections keep receiving packets).
	ModeSparse
	// ModeGentle probes one target per gentle interval: a metered uplink that carries nothing
	// and is not needed.
	ModeGentle
)

func (m Mode) String() string {
	switch m {
	case ModeClose:
		return "close"
	case ModeSparse:
		return "sparse"
	case ModeGentle:
		return "gentle"
	}
	return "full"
}

// send asks the driver to probe target Targets[Target] with sequence number Seq, giving up
// waiting after Wait (for methods that wait themselves: tcp, http, dns).
type send struct {
	Target int
	Seq    uint16
	Wait   time.Duration
}

// sched decides when rounds start and how each target fares in each round.
type sched struct {
	cfg     schedConfig
	targets []targetState
	open    []*openRound // rounds not yet emitted, oldest first
	probes  map[uint16]sentProbe
	seq     uint16

	started   bool
	lastStart time.Time
	nextStart time.Time

	mode Mode
	turn int // the next target of a one-target round
}

type targetState struct {
	est       estimator
	lastReply time.Time // when anything last came back from it
	doubt     bool      // a probe was late and nothing has come back since its round began
	fastLeft  int       // confirmation rounds left for the current doubt
}

type sentProbe struct {
	target int
	sent   time.Time
	round  *openRound // nil once the round is emitted
}

type openRound struct {
	start    time.Time
	probed   []bool // targets probed in this round (all but in a one-target round)
	results  []uplink.Result
	done     []bool
	seq      []uint16
	deadline []time.Time // late after this
	close    []time.Time // judged without its own reply after this
	late     []bool      // the deadline passed (or the send failed) without a reply
}

func newSched(cfg schedConfig) *sched {
	cfg.Interval = max(cfg.Interval, confirmFloor)
	cfg.Timeout = max(cfg.Timeout, time.Millisecond)
	cfg.DownAfter = max(cfg.DownAfter, 1)
	cfg.GentleInterval = max(cfg.GentleInterval, cfg.Interval)
	return &sched{cfg: cfg, targets: make([]targetState, len(cfg.Targets)), probes: map[uint16]sentProbe{}, mode: cfg.Mode}
}

// confirmRounds is how many quick rounds one doubt may trigger: enough for the machine's
// down_after, with room for a lossy line's longer judgement.
func (s *sched) confirmRounds() int { return 2 * s.cfg.DownAfter }

// pace is the gap between confirmation rounds: a fifth of the interval, at least confirmFloor,
// and no quicker than a late reply can be told from a missing one (the longest deadline of a
// doubted target), never slower than the interval.
func (s *sched) pace() time.Duration {
	p := max(s.cfg.Interval/5, confirmFloor)
	for i := range s.targets {
		if s.targets[i].doubt {
			p = max(p, s.targets[i].est.deadline(s.cfg.Timeout))
		}
	}
	return min(p, s.cfg.Interval)
}

// next is when advance must run again, if nothing arrives before.
func (s *sched) next() time.Time {
	if !s.started {
		return time.Time{}
	}
	t := s.nextStart
	for _, r := range s.open {
		for i := range r.done {
			if r.done[i] {
				continue
			}
			if !r.late[i] && r.deadline[i].Before(t) {
				t = r.deadline[i]
			}
			if r.close[i].Before(t) {
				t = r.close[i]
			}
		}
	}
	return t
}

// advance applies the time: late probes, judgements, a new round when one is due. It returns
// the probes to send now and the rounds that are complete, oldest first.
func (s *sched) advance(now time.Time) (sends []send, done []uplink.Round) {
	s.judge(now)
	if !s.started || !now.Before(s.nextStart) {
		sends = s.startRound(now)
		s.judge(now) // a round without targets is complete at once
	}
	return sends, s.emit()
}

// judge marks late probes and settles what can be settled at now.
func (s *sched) judge(now time.Time) {
	for _, r := range s.open {
		for i := range r.done {
			if r.done[i] || r.late[i] || now.Before(r.deadline[i]) {
				continue
			}
			s.markLate(now, r, i)
		}
	}
	for ri, r := range s.open {
		for i := range r.done {
			if r.done[i] {
				continue
			}
			t := &s.targets[i]
			alive := t.lastReply.After(r.start)
			switch {
			case !alive && r.late[i] && s.confirmed(ri, i):
				r.results[i].Err = fmt.Sprintf("no reply within %s, nor to the confirmation probe", r.deadline[i].Sub(r.start).Round(time.Millisecond))
				r.done[i] = true
			case !now.Before(r.close[i]) && alive:
				r.results[i].Alive = true
				r.results[i].Err = fmt.Sprintf("no reply within %s, but it answered other probes meanwhile", r.close[i].Sub(r.start).Round(time.Millisecond))
				r.done[i] = true
			case !now.Before(r.close[i]):
				if r.results[i].Err == "" {
					r.results[i].Err = fmt.Sprintf("no reply within %s", r.close[i].Sub(r.start).Round(time.Millisecond))
				}
				r.done[i] = true
			}
		}
	}
}

// confirmed: a probe of target i in a round after open[ri] is late as well.
func (s *sched) confirmed(ri, i int) bool {
	for _, later := range s.open[ri+1:] {
		if later.late[i] {
			return true
		}
	}
	return false
}

// markLate records that round r's probe of target i missed its deadline (or could not be sent).
func (s *sched) markLate(now time.Time, r *openRound, i int) {
	r.late[i] = true
	t := &s.targets[i]
	if t.lastReply.After(r.start) || t.doubt {
		return
	}
	t.doubt, t.fastLeft = true, s.confirmRounds()
	// Confirm at once (but not sooner than confirmFloor after the last round).
	s.nextStart = minTime(s.nextStart, maxTime(now, s.lastStart.Add(confirmFloor)))
}

// setMode changes how many probes the next rounds send. More probes start at once: a mode
// that asks for more is asked because the uplink may be needed now.
func (s *sched) setMode(now time.Time, m Mode) {
	more := m < s.mode
	s.mode = m
	if more && s.started {
		s.nextStart = minTime(s.nextStart, maxTime(now, s.lastStart.Add(confirmFloor)))
	}
}

func (s *sched) startRound(now time.Time) []send {
	n := len(s.cfg.Targets)
	r := &openRound{
		start: now, results: make([]uplink.Result, n), done: make([]bool, n), seq: make([]uint16, n),
		deadline: make([]time.Time, n), close: make([]time.Time, n), late: make([]bool, n), probed: make([]bool, n),
	}
	doubt := false
	for i := range s.targets {
		doubt = doubt || s.targets[i].doubt && s.targets[i].fastLeft > 0
	}
	one := -1 // a one-target round: the uplink is healthy and the mode asks for few probes
	if (s.mode == ModeSparse || s.mode == ModeGentle) && !doubt && n > 0 {
		one = s.turn % n
		s.turn++
	}
	var sends []send
	fast := false
	for i, target := range s.cfg.Targets {
		r.results[i].Target = target
		if one >= 0 && i != one {
			r.done[i] = true
			continue
		}
		t := &s.targets[i]
		s.seq++
		for _, used := s.probes[s.seq]; used || s.seq == 0; _, used = s.probes[s.seq] { // bounded: len(probes)+1 steps
			s.seq++
		}
		r.probed[i] = true
		r.seq[i] = s.seq
		r.deadline[i] = now.Add(t.est.deadline(s.cfg.Timeout))
		wait := t.est.wait(s.cfg.Timeout)
		r.close[i] = now.Add(wait)
		s.probes[s.seq] = sentProbe{target: i, sent: now, round: r}
		sends = append(sends, send{Target: i, Seq: s.seq, Wait: wait})
		if t.doubt && t.fastLeft > 0 {
			t.fastLeft--
			fast = true
		}
	}
	s.open = append(s.open, r)
	gap := s.cfg.Interval
	switch {
	case fast:
		gap = s.pace()
	case one >= 0 && s.mode == ModeGentle:
		gap = s.cfg.GentleInterval
	case s.mode == ModeClose:
		gap = max(s.cfg.Interval/2, confirmFloor)
	}
	s.started, s.lastStart, s.nextStart = true, now, now.Add(gap)
	s.forget(now)
	return sends
}

// forget drops probes too old for their replies to be matched.
func (s *sched) forget(now time.Time) {
	for seq, p := range s.probes {
		if p.round == nil && now.Sub(p.sent) > s.matchLimit() {
			delete(s.probes, seq)
		}
	}
}

// matchLimit is how old a probe's reply may be and still count: lateLimit, or the timeout when
// that is longer (a reply within the timeout always counts).
func (s *sched) matchLimit() time.Duration { return max(lateLimit, s.cfg.Timeout) }

// reply records a reply from target to probe seq that took rtt.
func (s *sched) reply(now time.Time, seq uint16, from netip.Addr, rtt time.Duration) {
	p, ok := s.probes[seq]
	if !ok || s.cfg.Targets[p.target] != from || now.Sub(p.sent) > s.matchLimit() {
		return // not ours, or a stale sequence number
	}
	delete(s.probes, seq)
	t := &s.targets[p.target]
	t.est.sample(rtt)
	t.lastReply = now
	t.doubt = false
	if r := p.round; r != nil && !r.done[p.target] {
		r.results[p.target].OK = true
		r.results[p.target].RTT = rtt
		r.results[p.target].Err = ""
		r.done[p.target] = true
	}
}

// failed records that probe seq got an error instead of a reply (it could not be sent, the
// connection was refused): it is late at once.
func (s *sched) failed(now time.Time, seq uint16, err error) {
	p, ok := s.probes[seq]
	if !ok {
		return
	}
	delete(s.probes, seq)
	r := p.round
	if r == nil || r.done[p.target] {
		return
	}
	r.results[p.target].Err = err.Error()
	if !r.late[p.target] {
		s.markLate(now, r, p.target)
	}
	// An error is an answer of sorts: judge the round now rather than at its close, unless
	// the target proved alive since the round began (then wait for the close as usual).
	if !s.targets[p.target].lastReply.After(r.start) {
		r.close[p.target] = minTime(r.close[p.target], now)
	}
}

// emit removes and returns the complete rounds at the head of open.
func (s *sched) emit() []uplink.Round {
	var out []uplink.Round
	for len(s.open) > 0 {
		r := s.open[0]
		for _, d := range r.done {
			if !d {
				return out
			}
		}
		for i, seq := range r.seq {
			if p, ok := s.probes[seq]; ok && r.probed[i] && p.round == r {
				p.round = nil
				s.probes[seq] = p
			}
		}
		s.open = s.open[1:]
		results := r.results
		if slices.Contains(r.probed, false) {
			results = nil
			for i, x := range r.results {
				if r.probed[i] {
					results = append(results, x)
				}
			}
		}
		out = append(out, uplink.Round{Start: r.start, Results: results})
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
