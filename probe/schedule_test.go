package probe

import (
	"errors"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

var simTargets = []netip.Addr{
	netip.MustParseAddr("192.0.2.53"),
	netip.MustParseAddr("198.51.100.53"),
	netip.MustParseAddr("203.0.113.53"),
}

var (
	defaults = schedConfig{Targets: simTargets, Interval: 500 * time.Millisecond, Timeout: time.Second, DownAfter: 3}
	tuned    = schedConfig{Targets: simTargets, Interval: 100 * time.Millisecond, Timeout: 200 * time.Millisecond, DownAfter: 3}
)

// network says what becomes of a probe of target i sent at offset `sent` from the start: its
// RTT and whether a reply comes at all; a non-nil err is a send error.
type network func(i int, sent time.Duration) (rtt time.Duration, ok bool, err error)

type emitted struct {
	at    time.Duration // when the round was complete
	round uplink.Round
}

// simulate runs a schedule against net on a fake clock for `span` and returns the rounds in
// the order they were emitted, with the round starts as offsets (Round.Start - t0 in at order).
func simulate(t *testing.T, cfg schedConfig, span time.Duration, net network) []emitted {
	t.Helper()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSched(cfg)
	type arrival struct {
		at  time.Time
		seq uint16
		to  netip.Addr
		rtt time.Duration
	}
	var pending []arrival
	var out []emitted
	now := t0
	for step := 0; step < 100000; step++ { // bounded
		sends, done := s.advance(now)
		for _, r := range done {
			out = append(out, emitted{at: now.Sub(t0), round: r})
		}
		for _, snd := range sends {
			rtt, ok, err := net(snd.Target, now.Sub(t0))
			if err != nil {
				s.failed(now, snd.Seq, err)
				continue
			}
			if ok {
				pending = append(pending, arrival{now.Add(rtt), snd.Seq, cfg.Targets[snd.Target], rtt})
			}
		}
		if len(sends) > 0 {
			if _, done := s.advance(now); len(done) > 0 { // errors may complete a round at once
				for _, r := range done {
					out = append(out, emitted{at: now.Sub(t0), round: r})
				}
			}
		}
		sort.SliceStable(pending, func(a, b int) bool { return pending[a].at.Before(pending[b].at) })
		next := s.next()
		if len(pending) > 0 && !pending[0].at.After(next) {
			a := pending[0]
			pending = pending[1:]
			now = a.at
			s.reply(now, a.seq, a.to, a.rtt)
			continue
		}
		if !next.After(now) {
			t.Fatalf("schedule does not advance at %s: next %s", now.Sub(t0), next.Sub(t0))
		}
		now = next
		if now.Sub(t0) > span {
			return out
		}
	}
	t.Fatal("simulation did not end")
	return nil
}

func answered(r uplink.Round) int {
	n := 0
	for _, x := range r.Results {
		if x.OK || x.Alive {
			n++
		}
	}
	return n
}

// downAt returns when the 3rd round in a row without quorum was emitted (-1: never), counting
// rounds as the health machine does: a one-target round lacks quorum when its target is silent.
func downAt(out []emitted, quorum, downAfter int) time.Duration {
	run := 0
	for _, e := range out {
		if answered(e.round) < min(quorum, len(e.round.Results)) {
			run++
			if run == downAfter {
				return e.at
			}
		} else {
			run = 0
		}
	}
	return -1
}

func TestEstimatorFollowsRFC6298(t *testing.T) {
	var e estimator
	if e.deadline(time.Second) != time.Second {
		t.Fatalf("without samples the deadline is the timeout, got %s", e.deadline(time.Second))
	}
	e.sample(100 * time.Millisecond)
	if e.srtt != 100*time.Millisecond || e.rttvar != 50*time.Millisecond {
		t.Fatalf("first sample: srtt %s rttvar %s", e.srtt, e.rttvar)
	}
	e.sample(200 * time.Millisecond)
	// rttvar = 3/4·50 + 1/4·100 = 62.5; srtt = 7/8·100 + 1/8·200 = 112.5
	if e.srtt != 112500*time.Microsecond || e.rttvar != 62500*time.Microsecond {
		t.Fatalf("second sample: srtt %s rttvar %s", e.srtt, e.rttvar)
	}
	if got := e.deadline(time.Second); got != 362500*time.Microsecond {
		t.Fatalf("deadline %s, want srtt + 4·rttvar = 362.5ms", got)
	}
	if got := e.deadline(200 * time.Millisecond); got != 200*time.Millisecond {
		t.Fatalf("the timeout caps the deadline, got %s", got)
	}
	if got := e.wait(200 * time.Millisecond); got != 362500*time.Microsecond {
		t.Fatalf("a round waits for a slow line's reply past the timeout, got %s", got)
	}
	var lan estimator
	for range 20 {
		lan.sample(100 * time.Microsecond)
	}
	if got := lan.deadline(time.Second); got != deadlineFloor {
		t.Fatalf("a LAN-short RTT is floored: %s", got)
	}
}

func TestAHealthyLineGetsOneRoundPerIntervalAllAnswered(t *testing.T) {
	out := simulate(t, defaults, 10*time.Second, func(int, time.Duration) (time.Duration, bool, error) {
		return 20 * time.Millisecond, true, nil
	})
	if len(out) < 19 || len(out) > 21 {
		t.Fatalf("%d rounds in 10 s at 500ms", len(out))
	}
	for _, e := range out {
		for _, x := range e.round.Results {
			if !x.OK || x.RTT != 20*time.Millisecond {
				t.Fatalf("round at %s: %+v", e.at, x)
			}
		}
		if e.at-e.round.Start.Sub(out[0].round.Start) > 30*time.Millisecond+out[0].at {
			t.Fatalf("a round answered in 20ms was emitted late: at %s, started %s", e.at, e.round.Start)
		}
	}
}

func TestASilentFailureIsJudgedWithinConfirmationRounds(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   schedConfig
		limit time.Duration // after the first probe that went unanswered
	}{
		// floor 10ms late, then rounds every 100ms (interval/5): the first three fail by the
		// time the third confirmation is late.
		{"defaults (500ms, 1s)", defaults, 300 * time.Millisecond},
		{"tuned (100ms, 200ms)", tuned, 100 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, cut := range []time.Duration{5 * time.Second, 5*time.Second + 7*time.Millisecond, 5*time.Second + 333*time.Millisecond} {
				firstLost := time.Duration(-1)
				out := simulate(t, tt.cfg, 9*time.Second, func(i int, sent time.Duration) (time.Duration, bool, error) {
					if sent+time.Millisecond >= cut {
						if firstLost < 0 {
							firstLost = sent
						}
						return 0, false, nil
					}
					return time.Millisecond, true, nil
				})
				down := downAt(out, 2, 3)
				if down < 0 {
					t.Fatalf("cut at %s: never judged down", cut)
				}
				if d := down - firstLost; d > tt.limit {
					t.Errorf("cut at %s: down %s after the first lost probe (at %s), want ≤ %s", cut, d, firstLost, tt.limit)
				}
				if d := down - cut; d > tt.cfg.Interval+tt.limit {
					t.Errorf("cut at %s: down %s after the cut", cut, d)
				}
				t.Logf("cut at %s: down after %s", cut, down-cut)
			}
		})
	}
}

func TestABusyLinesRisingRTTIsNeverJudgedDead(t *testing.T) {
	// A queue filling at 40% over the line rate (0.4 s of delay per second) up to a 330 ms
	// plateau, with every 4th probe tail-dropped.
	for _, cfg := range []schedConfig{defaults, tuned} {
		t.Run(cfg.Interval.String(), func(t *testing.T) {
			n := 0
			out := simulate(t, cfg, 20*time.Second, func(i int, sent time.Duration) (time.Duration, bool, error) {
				n++
				rtt := time.Millisecond
				if sent > 2*time.Second {
					rtt = min(330*time.Millisecond, time.Millisecond+(sent-2*time.Second)*4/10)
				}
				return rtt, n%4 != 0, nil
			})
			if d := downAt(out, 2, 3); d >= 0 {
				t.Fatalf("judged down at %s", d)
			}
			last := out[len(out)-1].round
			ok := 0
			for _, x := range last.Results {
				if x.OK {
					ok++
					if x.RTT != 330*time.Millisecond {
						t.Errorf("plateau RTT %s", x.RTT)
					}
				}
			}
			if ok == 0 {
				t.Errorf("late replies at 330ms (beyond a %s timeout) must count: %+v", cfg.Timeout, last)
			}
		})
	}
}

func TestADeadTargetDoesNotKeepTheRoundsFast(t *testing.T) {
	out := simulate(t, defaults, 20*time.Second, func(i int, sent time.Duration) (time.Duration, bool, error) {
		return time.Millisecond, i != 1, nil
	})
	// 2·down_after confirmation rounds at the start, then the interval again.
	if len(out) > 40+2*defaults.DownAfter+1 {
		t.Fatalf("%d rounds in 20 s", len(out))
	}
	for _, e := range out[10:] {
		if e.round.Results[1].OK || e.round.Results[1].Alive || !e.round.Results[0].OK || !e.round.Results[2].OK {
			t.Fatalf("round %+v", e.round)
		}
	}
}

func TestASendErrorFailsTheTargetAtOnce(t *testing.T) {
	out := simulate(t, defaults, 2*time.Second, func(i int, sent time.Duration) (time.Duration, bool, error) {
		if i == 0 {
			return 0, false, errors.New("network is unreachable")
		}
		return time.Millisecond, true, nil
	})
	first := out[0]
	if first.round.Results[0].OK || !strings.Contains(first.round.Results[0].Err, "unreachable") {
		t.Fatalf("got %+v", first.round.Results[0])
	}
	if first.at > 2*time.Millisecond {
		t.Fatalf("the first round was complete at %s, want at once", first.at)
	}
}

func TestRoundsAreEmittedInOrderWithTargetOrder(t *testing.T) {
	out := simulate(t, tuned, 5*time.Second, func(i int, sent time.Duration) (time.Duration, bool, error) {
		return time.Duration(3-i) * 40 * time.Millisecond, (int(sent/time.Millisecond)+i)%7 != 0, nil
	})
	for k, e := range out {
		if k > 0 && e.round.Start.Before(out[k-1].round.Start) {
			t.Fatalf("round %d started before round %d", k, k-1)
		}
		for i, x := range e.round.Results {
			if x.Target != simTargets[i] {
				t.Fatalf("result %d is for %s", i, x.Target)
			}
		}
	}
}

func TestSparseAndGentleRoundsProbeOneTargetInTurn(t *testing.T) {
	for _, tt := range []struct {
		mode   Mode
		rounds int // in 60 s
	}{{ModeSparse, 120}, {ModeGentle, 4}} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			cfg := defaults
			cfg.Mode, cfg.GentleInterval = tt.mode, 15*time.Second
			out := simulate(t, cfg, 60*time.Second, func(int, time.Duration) (time.Duration, bool, error) {
				return 20 * time.Millisecond, true, nil
			})
			if len(out) < tt.rounds-1 || len(out) > tt.rounds+1 {
				t.Fatalf("%d rounds in 60 s, want %d", len(out), tt.rounds)
			}
			for i, e := range out {
				if len(e.round.Results) != 1 || !e.round.Results[0].OK || e.round.Results[0].Target != simTargets[i%3] {
					t.Fatalf("round %d: %+v, want target %s alone, answered", i, e.round.Results, simTargets[i%3])
				}
			}
		})
	}
}

// One target per round must not slow detection: the first late probe brings full confirmation
// rounds, as in full mode.
func TestFewerProbesDetectAsFast(t *testing.T) {
	for _, mode := range []Mode{ModeSparse, ModeGentle} {
		for _, cut := range []time.Duration{5 * time.Second, 5*time.Second + 7*time.Millisecond, 5*time.Second + 333*time.Millisecond} {
			run := func(m Mode) (time.Duration, int) {
				cfg := defaults
				cfg.Mode, cfg.GentleInterval = m, 500*time.Millisecond // gentle at the interval: compare detection alone
				probes := 0
				out := simulate(t, cfg, 9*time.Second, func(i int, sent time.Duration) (time.Duration, bool, error) {
					probes++
					if sent+time.Millisecond >= cut {
						return 0, false, nil
					}
					return time.Millisecond, true, nil
				})
				return downAt(out, 2, 3), probes
			}
			full, fullProbes := run(ModeFull)
			fewer, fewerProbes := run(mode)
			if fewer < 0 || fewer > full+defaults.Interval/5 {
				t.Errorf("%s, cut at %s: down at %s, full mode at %s", mode, cut, fewer, full)
			}
			if fewerProbes >= fullProbes {
				t.Errorf("%s sent %d probes, full mode %d", mode, fewerProbes, fullProbes)
			}
			t.Logf("%s, cut at %s: down after %s (full mode %s), %d probes (full %d)", mode, cut, fewer-cut, full-cut, fewerProbes, fullProbes)
		}
	}
}

func TestCloseRoundsProbeEveryTargetTwicePerInterval(t *testing.T) {
	cfg := defaults
	cfg.Mode = ModeClose
	out := simulate(t, cfg, 10*time.Second, func(int, time.Duration) (time.Duration, bool, error) {
		return time.Millisecond, true, nil
	})
	if len(out) < 39 || len(out) > 41 {
		t.Errorf("%d rounds in 10 s, want 40 (every 250 ms)", len(out))
	}
	for _, e := range out {
		if len(e.round.Results) != len(simTargets) {
			t.Fatalf("a close round probed %d targets, want all %d", len(e.round.Results), len(simTargets))
		}
	}
}
