package uplink

import (
	"testing"
	"time"
)

func TestDamping(t *testing.T) {
	p := DampingParams{HalfLife: 30 * time.Second, MaxHoldDown: 5 * time.Minute}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	type step struct {
		at         float64 // seconds after t0
		flap       bool
		suppressed bool
		hold       time.Duration // expected, to the second
	}
	for _, tc := range []struct {
		name  string
		p     DampingParams
		steps []step
	}{
		{"one flap never suppresses", p, []step{{at: 0, flap: true}, {at: 1}}},
		{"two flaps at once stay at the suppress level, not above", p, []step{{at: 0, flap: true}, {at: 0, flap: true}}},
		{"three quick flaps suppress until the penalty decays to 750", p, []step{
			{at: 0, flap: true}, {at: 0, flap: true},
			{at: 0, flap: true, suppressed: true, hold: 61 * time.Second}, // 30 s × log2(3000/750) = 60 s
			{at: 30, suppressed: true, hold: 31 * time.Second},            // 1500: one half-life later
			{at: 60.001}, // 750: released
		}},
		{"flaps a half-life apart accumulate slowly", p, []step{
			{at: 0, flap: true}, {at: 30, flap: true}, {at: 60, flap: true}, {at: 90, flap: true}, // 1000, 1500, 1750, 1875
		}},
		{"the penalty halves every half-life", p, []step{
			{at: 0, flap: true}, {at: 0, flap: true}, {at: 0, flap: true, suppressed: true, hold: 61 * time.Second},
			{at: 60.001},
			{at: 60.001, flap: true}, // 1750
			{at: 60.002, flap: true, suppressed: true, hold: 56 * time.Second}, // 2750: 30 × log2(2750/750) = 56.2 s
		}},
		{"the hold is capped at max_hold_down", DampingParams{HalfLife: 30 * time.Second, MaxHoldDown: 20 * time.Second}, []step{
			{at: 0, flap: true}, {at: 0, flap: true},
			{at: 0, flap: true, suppressed: true, hold: 20 * time.Second},
			{at: 20},
		}},
		{"no half-life, no damping", DampingParams{MaxHoldDown: time.Minute}, []step{
			{at: 0, flap: true}, {at: 0, flap: true}, {at: 0, flap: true}, {at: 0, flap: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Damping
			for i, s := range tc.steps {
				if s.flap {
					d.Flap(at(s.at), tc.p)
				}
				if got := d.Suppressed(at(s.at), tc.p); got != s.suppressed {
					t.Errorf("step %d at %gs: suppressed %v, want %v (penalty %.0f)", i, s.at, got, s.suppressed, d.Penalty(at(s.at), tc.p))
				}
				got := d.HoldDown(at(s.at), tc.p)
				if diff := got - s.hold; diff < -2*time.Second || diff > 2*time.Second {
					t.Errorf("step %d at %gs: hold-down %s, want about %s (penalty %.0f)", i, s.at, got, s.hold, d.Penalty(at(s.at), tc.p))
				}
			}
		})
	}
}

// The defaults: half-life 3 × hold_down = 30 s, cap max_hold_down = 5 min.
func TestDampingForTheDefaults(t *testing.T) {
	p := DampingFor(DefaultConfig().Defaults)
	if p.HalfLife != 30*time.Second || p.MaxHoldDown != 5*time.Minute {
		t.Errorf("DampingFor(defaults) = %+v", p)
	}
}
