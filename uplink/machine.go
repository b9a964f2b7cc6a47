package uplink

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Result is one target's answer in a probe round.
type Result struct {
	Target netip.Addr
	OK     bool
	RTT    time.Duration
	Err    string // why it did not answer
	// Alive: no reply to this probe, but the target answered other probes while the round
	// was open (a busy line's dropped probe): it keeps the uplink from being judged down, but
	// counts as lost for loss and quality, and not as a good round for recovery.
	Alive bool
}

// Round is one probe round of an uplink: every target probed once.
type Round struct {
	Start   time.Time
	Results []Result
}

// HasQuorum says whether the round had quorum: quorum targets answered, or every target probed
// when the round probed fewer (a one-target round of a sparse or gentle schedule).
func (r Round) HasQuorum(quorum int) bool {
	return len(r.Results) > 0 && r.answered() >= min(quorum, len(r.Results))
}

func (r Round) answered() int {
	n := 0
	for _, x := range r.Results {
		if x.OK {
			n++
		}
	}
	return n
}

// Machine judges one uplink's health from probe rounds and link events. It is pure: no clock,
// no goroutines; the daemon feeds it observations and asks it to decide.
//
// Down: over the last down_after rounds fewer than quorum distinct targets answered even once
// (a silent failure on a clean link is judged after exactly down_after rounds; one target that
// filters ICMP does not count against the others), or the link cannot carry traffic (carrier,
// admin down, no address or gateway: immediately). On a lossy link the rounds of silence needed
// grow until a live target stays that silent by chance less than once in ten thousand rounds, so
// loss degrades an uplink instead of making it flap.
// Up again: up_after rounds in a row with quorum, and for a flapping uplink not before its flap
// penalty has decayed (damping.go). A flap is an Up or Degraded uplink judged Down by its probes,
// or a held-down uplink failing again. A link event is not a flap: the link is not what the
// probes judged, and the daemon reports an address or gateway that is briefly gone (a DHCP or
// PPPoE renumbering) as a link problem; see also ObserveRenumbered. Degraded: the quorum-th best target's loss or mean RTT over the
// window is beyond max_loss / max_rtt; it recovers after a window of rounds below half the loss and 80 % of the RTT.
type Machine struct {
	name   string
	p      Probe
	state  State
	since  time.Time
	reason string
	note   qualityNote // when noted, the reason (see Since)
	noted  bool

	linkProblem string  // non-empty: why the link cannot carry traffic
	rounds      []Round // newest last; at most max(DownAfter, Window)
	goodRun     int     // rounds in a row with quorum
	goodSince   time.Time

	damp       Damping     // flap penalty
	held       bool        // Down, good enough to return, but suppressed by damping
	hold       *HoldChange // a hold-down that began or ended, not yet taken (TakeHoldChange)
	renumbered time.Time   // rounds that started before this are about the old addresses
	lastNow    time.Time   // of the last Decide

	// baseLoss is the loss (percent) measured while the uplink last had quorum: on a lossy
	// link a live target can stay silent for a few rounds by chance, so silence is judged
	// over more rounds there (see judgeRounds).
	baseLoss float64
	// Degraded's hysteresis, in rounds in a row: overRun, an Up uplink over the limits;
	// cleanRun, a Degraded uplink's rounds that were each clean; belowRun, a Degraded uplink's
	// window below half the limits.
	overRun, cleanRun, belowRun int
}

// NewMachine starts an uplink in Unknown.
func NewMachine(name string, p Probe, now time.Time) *Machine {
	return &Machine{name: name, p: p, since: now, reason: "starting: no probe round yet", lastNow: now}
}

// State returns the current verdict.
func (m *Machine) State() State { return m.state }

// Since returns when the current state began, and why.
func (m *Machine) Since() (time.Time, string) {
	if m.noted {
		return m.since, m.note.String()
	}
	return m.since, m.reason
}

// qualityNote is the explanation of an Up or Degraded verdict, kept as numbers and written out
// only when asked: the verdict is re-judged every round, the reason read far less often.
type qualityNote struct {
	why         string
	loss        float64
	rtt, jitter time.Duration
	limits      bool // degraded: say the limits
	maxLoss     float64
	maxRTT      time.Duration
}

func (q qualityNote) String() string {
	s := fmt.Sprintf("loss %.0f%%, rtt %s, jitter %s", q.loss, q.rtt.Round(time.Microsecond*100), q.jitter.Round(time.Microsecond*100))
	if q.why != "" {
		s = q.why + "; " + s
	}
	if q.limits {
		s = fmt.Sprintf("%s (limits %.0f%%, %s)", s, q.maxLoss, q.maxRTT)
	}
	return s
}

// SetProbe changes the probe settings (a reload) without forgetting what was seen.
func (m *Machine) SetProbe(p Probe) {
	m.p = p
	m.trim()
}

// ObserveRound records a finished probe round. A round that started before the last
// renumbering is ignored: it probed from addresses the uplink no longer has.
func (m *Machine) ObserveRound(r Round) {
	if r.Start.Before(m.renumbered) {
		return
	}
	m.rounds = append(m.rounds, r)
	m.trim()
	if r.HasQuorum(m.p.Quorum) {
		if m.goodRun == 0 {
			m.goodSince = r.Start
		}
		m.goodRun++
	} else {
		m.goodRun = 0
	}
}

// ObserveLink records whether the link can carry traffic; reason says why not.
func (m *Machine) ObserveLink(ok bool, reason string) {
	if ok {
		m.linkProblem = ""
		return
	}
	m.linkProblem = reason
	// Rounds from before the link failed say nothing about the link that comes back.
	m.rounds = m.rounds[:0]
	m.goodRun = 0
}

// ObserveRenumbered records that the uplink's addresses or gateway changed at now while its link
// stayed up (DHCP or PPPoE renumbering). That is not a failure of the uplink: rounds from before
// the change (and those still in flight) are forgotten, so probes that failed from the old
// address neither take the uplink down nor count as a flap; the new address is judged afresh.
func (m *Machine) ObserveRenumbered(now time.Time) {
	m.renumbered = now
	m.rounds = m.rounds[:0]
	m.goodRun = 0
}

func (m *Machine) trim() {
	keep := max(m.p.DownAfter, m.p.Window, 1)
	if len(m.rounds) > keep {
		m.rounds = slices.Delete(m.rounds, 0, len(m.rounds)-keep)
	}
}

// Decide applies the rules at time now and returns the state change, if any.
func (m *Machine) Decide(now time.Time) (Transition, bool) {
	m.lastNow = now
	damping := DampingFor(m.p)
	if m.linkProblem != "" {
		m.release(now, "the link failed: "+m.linkProblem, damping)
		return m.set(now, Down, m.linkProblem)
	}
	if len(m.rounds) == 0 {
		return Transition{}, false
	}
	last := m.rounds[len(m.rounds)-1]
	total := len(last.Results)
	switch m.state {
	case Unknown:
		if last.HasQuorum(m.p.Quorum) {
			return m.setQuality(now, fmt.Sprintf("first round: %d/%d targets answered", last.answered(), total))
		}
		if alive, silent := m.silent(); silent {
			return m.set(now, Down, m.downReason(alive, total))
		}
	case Up, Degraded:
		if alive, silent := m.silent(); silent {
			m.damp.Flap(now, damping)
			return m.set(now, Down, m.downReason(alive, total))
		}
		if !last.HasQuorum(m.p.Quorum) {
			m.cleanRun = 0
			return Transition{}, false // a failing streak is judged by down_after, not as loss
		}
		return m.setQuality(now, "")
	case Down:
		if m.held {
			// Held back by damping after it was good enough to return: failing again is
			// another flap, and what keeps a flapping uplink out for longer.
			if alive, silent := m.silent(); silent {
				m.damp.Flap(now, damping)
				m.release(now, "failed again, a flap: "+m.downReason(alive, total), damping)
				m.reason, m.noted = m.downReason(alive, total), false
				return Transition{}, false
			}
		}
		if m.goodRun < m.p.UpAfter {
			return Transition{}, false
		}
		if hold := m.damp.HoldDown(now, damping); hold > 0 {
			if !m.held {
				m.held = true
				m.noted = false
				m.reason = fmt.Sprintf("%d good rounds in a row, held down %s more for flapping (penalty %.0f)",
					m.goodRun, hold.Round(time.Second), m.damp.Penalty(now, damping))
				m.hold = &HoldChange{Time: now, Uplink: m.name, Held: true, Penalty: m.damp.Penalty(now, damping), For: hold,
					Reason: fmt.Sprintf("%d good rounds in a row, but flapping", m.goodRun)}
			}
			return Transition{}, false
		}
		m.release(now, "the penalty decayed", damping)
		// Judge quality on the rounds since it recovered, not on the outage.
		m.rounds = slices.Delete(m.rounds, 0, len(m.rounds)-min(m.goodRun, len(m.rounds)))
		return m.setQuality(now, fmt.Sprintf("%d good rounds in a row", m.goodRun))
	}
	return Transition{}, false
}

// HoldChange is flap damping beginning or ending the hold-down of an uplink that was good
// enough to return: the status shows the hold, the log, events and hooks its edges.
type HoldChange struct {
	Time    time.Time
	Uplink  string
	Held    bool          // true: the hold began; false: it ended
	Penalty float64       // the flap penalty then
	For     time.Duration // when it began: how long it lasts unless the uplink fails again
	Reason  string
}

// release ends a hold-down, if one is in force, for reason.
func (m *Machine) release(now time.Time, reason string, damping DampingParams) {
	if !m.held {
		return
	}
	m.held = false
	m.hold = &HoldChange{Time: now, Uplink: m.name, Penalty: m.damp.Penalty(now, damping), Reason: reason}
}

// TakeHoldChange returns the hold-down's last edge since it was last taken, if any.
func (m *Machine) TakeHoldChange() (HoldChange, bool) {
	if m.hold == nil {
		return HoldChange{}, false
	}
	h := *m.hold
	m.hold = nil
	return h, true
}

// HoldDown is how much longer flap damping keeps the uplink down, as of the last Decide: 0 unless
// it is suppressed (see damping.go).
func (m *Machine) HoldDown() time.Duration {
	return m.damp.HoldDown(m.lastNow, DampingFor(m.p))
}

// silent says whether the uplink lacked quorum over the last judgeRounds rounds: fewer than
// quorum distinct targets answered even once (fewer than were probed, when one-target rounds
// probed fewer than quorum distinct targets). alive is how many answered; never silent until
// there are that many rounds.
func (m *Machine) silent() (alive int, silent bool) {
	k := m.judgeRounds()
	if len(m.rounds) < k {
		return 0, false
	}
	seen := map[netip.Addr]bool{}
	probed := map[netip.Addr]bool{}
	for _, r := range m.rounds[len(m.rounds)-k:] {
		for _, x := range r.Results {
			probed[x.Target] = true
			if x.OK || x.Alive {
				seen[x.Target] = true
			}
		}
	}
	return len(seen), len(probed) > 0 && len(seen) < min(m.p.Quorum, len(probed))
}

// judgeRounds is down_after on a clean link; with loss l, the rounds after which a live
// target's silence has a chance below 1/10,000 (l^k < 1/10,000), at most the window.
func (m *Machine) judgeRounds() int {
	k := m.p.DownAfter
	if l := m.baseLoss / 100; l > 0 && l < 1 {
		k = max(k, int(math.Ceil(math.Log(1e-4)/math.Log(l))))
	}
	return min(k, max(m.p.Window, m.p.DownAfter))
}

func (m *Machine) downReason(alive, total int) string {
	return fmt.Sprintf("%d rounds without quorum: %d/%d targets answered (quorum %d)", m.judgeRounds(), alive, total, m.p.Quorum)
}

// setQuality moves to Up or Degraded by the window's loss and RTT, with hysteresis: an Up
// uplink degrades after down_after rounds in a row over the limits (one unlucky stretch of a
// 10 % loss line must not move traffic); a Degraded one recovers after up_after rounds in a
// row that were each clean (a line that healed comes back as fast as a dead one), or after two
// windows whose loss is surely below max_loss (lossUpperBound) and RTT below 80 % of max_rtt (a
// line that got better but not clean). A line whose loss sits just under the limit stays put.
// Unknown and Down uplinks are judged at once.
func (m *Machine) setQuality(now time.Time, why string) (Transition, bool) {
	w := m.window()
	loss, rtt := w.loss, w.rtt
	m.baseLoss = loss // measured with quorum: what judgeRounds weighs silence against
	over := loss > m.p.MaxLoss || rtt > m.p.MaxRTT
	degraded := over
	switch m.state {
	case Up:
		m.overRun++
		if !over {
			m.overRun = 0
		}
		degraded = m.overRun >= max(m.p.DownAfter, 1)
	case Degraded:
		m.cleanRun++
		if !m.clean(m.rounds[len(m.rounds)-1]) {
			m.cleanRun = 0
		}
		m.belowRun++
		if lossUpperBound(loss, w.samples) > m.p.MaxLoss || rtt > m.p.MaxRTT*8/10 {
			m.belowRun = 0 // not surely below max_loss: a line at the limit stays degraded
		}
		need := m.cleanNeeded()
		degraded = m.cleanRun < need && m.belowRun < 2*m.p.Window
		if !degraded && m.cleanRun >= need {
			// Judge quality on the clean rounds since it healed, not on the bad ones before.
			m.rounds = slices.Delete(m.rounds, 0, len(m.rounds)-min(m.cleanRun, len(m.rounds)))
			w = m.window()
			loss, rtt = w.loss, w.rtt
		}
	}
	note := qualityNote{why: why, loss: loss, rtt: rtt, jitter: w.jitter, limits: degraded, maxLoss: m.p.MaxLoss, maxRTT: m.p.MaxRTT}
	to := Up
	if degraded {
		to = Degraded
	}
	if to == m.state {
		m.note, m.noted = note, true // the newest explanation, written out when the status asks
		return Transition{}, false
	}
	return m.set(now, to, note.String())
}

// lossUpperBound is the upper end of the Wilson score interval (one-sided 99 %) of a loss of
// pct percent measured on n probes: what the line's loss surely stays under. A window of 40
// probes at 19 % gives 36 %: a line just under max_loss is not "surely below" it, where the
// bare estimate dips under half the limit by chance every minute or so.
func lossUpperBound(pct float64, n int) float64 {
	if n <= 0 {
		return 100
	}
	const z = 2.326 // one-sided 99 %
	p, fn := pct/100, float64(n)
	center := p + z*z/(2*fn)
	spread := z * math.Sqrt(p*(1-p)/fn+z*z/(4*fn*fn))
	return 100 * min(1, (center+spread)/(1+z*z/fn))
}

// falseReturnsPerHour bounds how often a line still at max_loss gives cleanNeeded clean rounds
// in a row by chance.
const falseReturnsPerHour = 0.25

// cleanNeeded is how many clean rounds in a row bring a Degraded uplink back: up_after, or more
// where a line still at max_loss would give that many by chance more than once in a thousand:
// a 20 %-loss line's 3 targets all answer a round half the time, so 5 in a row (up_after
// tuned) come every few dozen rounds; 11 do not (max_loss 20 %, 3 targets: 11 rounds).
func (m *Machine) cleanNeeded() int {
	l := m.p.MaxLoss / 100
	if l <= 0 || l >= 1 {
		return m.p.UpAfter
	}
	perRound := math.Pow(1-l, float64(max(len(m.p.Targets), 1)))
	// Runs start after a round that was not clean: per hour, that many chances.
	starts := max(time.Hour.Seconds()/max(m.p.Interval.Seconds(), 1e-3)*(1-perRound), 1)
	return max(m.p.UpAfter, int(math.Ceil(math.Log(falseReturnsPerHour/starts)/math.Log(perRound))))
}

// clean says whether round r was clean: every target that answered in the window answered
// in it, and the quorum-th fastest within 80 % of max_rtt.
func (m *Machine) clean(r Round) bool {
	var rtts []time.Duration
	for _, x := range r.Results {
		if x.OK {
			rtts = append(rtts, x.RTT)
			continue
		}
		for _, w := range m.rounds[max(0, len(m.rounds)-m.p.Window):] {
			for _, y := range w.Results {
				if y.Target == x.Target && y.OK {
					return false // a live target missed this round
				}
			}
		}
	}
	slices.Sort(rtts)
	q := min(max(m.p.Quorum, 1), len(rtts)) - 1
	return len(rtts) > 0 && rtts[q] <= m.p.MaxRTT*8/10
}

// Quality is the uplink's loss (percent) and mean RTT over the window: the loss of the quorum
// best targets together, the RTT of the quorum-th best, so that one target filtering ICMP does
// not degrade a good uplink.
func (m *Machine) Quality() (loss float64, rtt time.Duration) {
	w := m.window()
	return w.loss, w.rtt
}

// Line is the uplink's loss, RTT, jitter and the MOS a voice call would get (see MOS), from one
// pass over the window; Known once the uplink is usable.
func (m *Machine) Line() LineQuality {
	w := m.window()
	return LineQuality{Loss: w.loss, RTT: w.rtt, Jitter: w.jitter, MOS: MOS(w.rtt, w.jitter, w.loss), Known: m.state.Usable()}
}

// windowQuality is what one pass over the window measures.
type windowQuality struct {
	loss        float64 // of the quorum best targets' probes together
	samples     int     // how many probes loss is measured on
	rtt, jitter time.Duration
}

// window measures the uplink over its window: the loss of the quorum best targets' probes
// together (with quorum 2, twice the samples of one target, so a 10 % line's estimate wanders
// over a 20 % limit by chance far less often), and the quorum-th best RTT and jitter.
func (m *Machine) window() windowQuality {
	stats := m.Targets()
	var w windowQuality
	if len(stats) == 0 {
		return w
	}
	quorum := min(max(m.p.Quorum, 1), len(stats))
	var rb, jb [8]time.Duration // no allocation for up to 8 targets
	rtts, jitters := rb[:0], jb[:0]
	for _, s := range stats {
		if s.Loss < 100 {
			rtts = append(rtts, s.RTT)
			jitters = append(jitters, s.Jitter)
		}
	}
	slices.Sort(rtts)
	slices.Sort(jitters)
	if len(rtts) >= quorum {
		w.rtt, w.jitter = rtts[quorum-1], jitters[quorum-1]
	}
	slices.SortStableFunc(stats, func(a, b TargetStats) int { return cmp.Compare(a.Loss, b.Loss) })
	lost, samples := 0.0, 0
	for _, s := range stats[:quorum] {
		lost += s.Loss * float64(s.Samples) / 100
		samples += s.Samples
	}
	w.samples = samples
	if samples > 0 {
		w.loss = 100 * lost / float64(samples)
	}
	return w
}

// Targets returns per-target loss and mean RTT over the window, in configuration order. It is
// called for every round (the quality verdict): one pass over the window, not one per target.
func (m *Machine) Targets() []TargetStats {
	targets := m.p.Targets
	out := make([]TargetStats, len(targets))
	type sums struct {
		rtt      time.Duration
		answered int
		jit      jitter
	}
	var onStack [8]sums
	acc := onStack[:]
	if len(targets) > len(onStack) {
		acc = make([]sums, len(targets))
	}
	for _, r := range m.rounds[max(0, len(m.rounds)-m.p.Window):] {
		next := 0
		for _, x := range r.Results {
			i := indexFrom(targets, next, x.Target)
			if i < 0 {
				continue
			}
			next = i + 1
			out[i].Samples++
			if x.OK {
				acc[i].jit.add(x.RTT)
				acc[i].answered++
				acc[i].rtt += x.RTT
			}
		}
	}
	for i, t := range targets {
		st, a := &out[i], acc[i]
		st.Address, st.Jitter = t, a.jit.value()
		if st.Samples > 0 {
			st.Loss = 100 * float64(st.Samples-a.answered) / float64(st.Samples)
		}
		if a.answered > 0 {
			st.RTT = a.rtt / time.Duration(a.answered)
		}
	}
	return out
}

// indexFrom is t's index in targets, looked for from `from` on first: a round's results come
// in configuration order (a one-target round's one among them), so it is usually right there.
func indexFrom(targets []netip.Addr, from int, t netip.Addr) int {
	from = min(from, len(targets))
	if k := slices.Index(targets[from:], t); k >= 0 {
		return from + k
	}
	return slices.Index(targets[:from], t)
}

func (m *Machine) set(now time.Time, to State, reason string) (Transition, bool) {
	m.noted = false
	if to == m.state {
		m.reason = reason // keep the newest explanation without announcing a change
		return Transition{}, false
	}
	ev := Transition{Time: now, Uplink: m.name, From: m.state, To: to, Reason: reason}
	m.state, m.since, m.reason = to, now, reason
	m.overRun, m.cleanRun, m.belowRun = 0, 0, 0
	return ev, true
}
