package uplink

import (
	"testing"
	"time"
)

// aliveRound is a round in which every target's probe was lost but each answered another
// probe while the round was open (a busy line dropping some probes).
func aliveRound(start time.Time, p Probe) Round {
	r := Round{Start: start}
	for _, t := range p.Targets {
		r.Results = append(r.Results, Result{Target: t, Alive: true, Err: "no reply within 1s, but it answered other probes meanwhile"})
	}
	return r
}

func TestRoundsWithProofOfLifeNeverTakeAnUplinkDownButDoNotBringItBack(t *testing.T) {
	p := testProbe()
	h := newHarness(t, p)
	if s := h.round(t1, t2, t3); s != Up {
		t.Fatalf("first round: %v", s)
	}
	for i := range 3 * p.DownAfter {
		h.now = h.now.Add(p.Interval)
		h.m.ObserveRound(aliveRound(h.now, p))
		if tr, ok := h.m.Decide(h.now); ok && tr.To == Down {
			t.Fatalf("round %d: down on rounds whose targets proved alive: %+v", i, tr)
		}
	}
	if loss, _ := h.m.Quality(); loss == 0 {
		t.Error("lost probes must still count as loss")
	}
	// Down by a silent stretch; then proof of life alone does not count as good rounds.
	for range p.DownAfter + 20 {
		h.round()
	}
	if h.m.State() != Down {
		t.Fatalf("state %v after silence", h.m.State())
	}
	for range p.UpAfter + 1 {
		h.now = h.now.Add(p.Interval)
		h.m.ObserveRound(aliveRound(h.now, p))
		h.m.Decide(h.now)
	}
	if h.m.State() != Down {
		t.Fatalf("state %v: recovery must be proven by answered probes", h.m.State())
	}
}
