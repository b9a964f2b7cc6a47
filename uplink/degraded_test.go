package uplink

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// lossyRounds feeds n rounds in which each target's probe is lost with probability loss.
func (h *harness) lossyRounds(rng *rand.Rand, n int, loss float64) {
	for range n {
		var answering []netip.Addr
		for _, tg := range h.m.p.Targets {
			if rng.Float64() >= loss {
				answering = append(answering, tg)
			}
		}
		h.round(answering...)
	}
}

func changes(h *harness) []string {
	var out []string
	for _, ev := range h.events {
		out = append(out, ev.From.String()+"→"+ev.To.String())
	}
	return out
}

// A steady 10 % loss line is under the 20 % limit: it stays up for 60 s of rounds at the
// shipped interval (120) and at 100 ms (600), but for the rare stretch where the line really
// lost more than 20 % for down_after rounds (1 and 2 of these 50 seeds; the machine before
// the pooled estimate and the dwell changed state in 4 and 17).
func TestASteadyTenPercentLossLineDoesNotAlternate(t *testing.T) {
	for _, c := range []struct{ rounds, allowed int }{{120, 1}, {600, 2}} {
		rounds := c.rounds
		bad := 0
		for seed := range uint64(50) {
			h := newHarness(t, testProbe())
			h.rounds(20, t1, t2, t3)
			h.events = nil
			h.lossyRounds(rand.New(rand.NewPCG(seed, 10)), rounds, 0.10)
			if len(h.events) > 0 {
				bad++
				t.Logf("%d rounds, seed %d: %v", rounds, seed, changes(h))
			}
		}
		if bad > c.allowed {
			t.Errorf("%d rounds of 10 %% loss: %d of 50 seeds changed state, want at most %d", rounds, bad, c.allowed)
		}
	}
}

// A 30 % loss line is degraded; when it heals it is up again within cleanNeeded rounds + 1 (the
// shipped up_after 10; cleanNeeded asks 15 for a 20 % limit over 3 targets every 500 ms).
func TestAThirtyPercentLossLineFailsBackWithinUpAfterRounds(t *testing.T) {
	for seed := range uint64(20) {
		h := newHarness(t, testProbe())
		h.rounds(20, t1, t2, t3)
		h.lossyRounds(rand.New(rand.NewPCG(seed, 30)), 60, 0.30)
		if h.m.State() != Degraded {
			t.Fatalf("seed %d: 30 %% loss left it %s", seed, h.m.State())
		}
		if n := h.roundsUntil(Up, 100, t1, t2, t3); n > h.m.cleanNeeded()+1 {
			t.Errorf("seed %d: up %d rounds after the heal, want at most cleanNeeded+1 = %d", seed, n, h.m.cleanNeeded()+1)
		}
	}
}

// Tuned (up_after 5): a 30 % loss line stays degraded once degraded; 5 clean rounds in a row
// happen by chance there, so leaving asks for 11 (cleanNeeded). Measured: 3 of these 50 seeds
// still left once in 60 s (23 with 5 clean rounds).
func TestATunedThirtyPercentLossLineDoesNotFlap(t *testing.T) {
	p := testProbe()
	p.UpAfter = 5
	flapped := 0
	for seed := range uint64(50) {
		h := newHarness(t, p)
		h.rounds(20, t1, t2, t3)
		rng := rand.New(rand.NewPCG(seed, 31))
		h.lossyRounds(rng, 40, 0.30)
		h.events = nil
		h.lossyRounds(rng, 600, 0.30) // 60 s at 100 ms
		if len(h.events) > 0 {
			flapped++
			t.Logf("seed %d: %v", seed, changes(h))
		}
	}
	if flapped > 3 {
		t.Errorf("%d of 50 seeds changed state in 600 rounds of steady 30 %% loss", flapped)
	}
}

// A line at the threshold settles: 10 % random loss each way is 19 % round trip, just under
// the 20 % max_loss. Over 5 minutes, on the shipped defaults (500 ms) and tuned (100 ms,
// up_after 5), it must enter degraded at most once and move new connections at most twice
// (in and out), in nearly every seeded run; the rate is logged for the note.
func TestALineJustUnderMaxLossSettlesInOneState(t *testing.T) {
	tuned := testProbe()
	tuned.Interval, tuned.UpAfter = 100e6, 5
	for _, c := range []struct {
		name string
		p    Probe
	}{{"defaults", testProbe()}, {"tuned", tuned}} {
		rounds := int(300e9 / c.p.Interval)
		const seeds = 100
		unsettled, entries, moves := 0, 0, 0
		for seed := range uint64(seeds) {
			h := newHarness(t, c.p)
			h.rounds(20, t1, t2, t3)
			h.events = nil
			h.lossyRounds(rand.New(rand.NewPCG(seed, 19)), rounds, 0.19)
			e, m := 0, len(h.events)
			for _, ev := range h.events {
				if ev.To == Degraded {
					e++
				}
			}
			entries, moves = entries+e, moves+m
			if e > 1 || m > 2 {
				unsettled++
				if unsettled <= 3 {
					t.Logf("%s seed %d: %v", c.name, seed, changes(h))
				}
			}
		}
		t.Logf("%s, %d rounds of 19 %% loss: %d of %d runs unsettled (> 1 entry or > 2 moves); %.2f entries and %.2f moves a run",
			c.name, rounds, unsettled, seeds, float64(entries)/seeds, float64(moves)/seeds)
		if unsettled > seeds/20 {
			t.Errorf("%s: %d of %d runs did not settle, want at most %d", c.name, unsettled, seeds, seeds/20)
		}
	}
}
