package uplink

import (
	"math"
	"time"
)

// Flap damping after RFC 2439 (BGP route flap damping), scaled from minutes
// to seconds.
//
// Every flap (an Up or Degraded uplink judged Down by its probes, or a held
// uplink failing again) adds FlapPenalty to a penalty that decays
// exponentially with a half-life. While the penalty is above
// SuppressPenalty the uplink is suppressed: it stays Down however well it
// answers, until the penalty has decayed to ReusePenalty. One incident
// (1000) never suppresses; three in quick succession do. Unrelated
// incidents minutes apart decay away in between and are never punished
// (with the defaults four incidents in seven minutes reach at most ~1,100).
//
// The half-life is 3 × hold_down (30 s by default): short enough that
// incidents minutes apart are forgotten, long enough that an uplink
// flapping every few seconds builds up penalty. The penalty is capped at
// the value that decays to ReusePenalty in max_hold_down, so no hold-down
// is ever longer than max_hold_down (5 min by default).
const (
	FlapPenalty     = 1000.0
	SuppressPenalty = 2000.0
	ReusePenalty    = 750.0
	// halfLivesPerHoldDown: the penalty's half-life is this many hold_downs.
	halfLivesPerHoldDown = 3
)

// Damping is an uplink's flap penalty. The zero value has none. Pure and
// clock-free: every method takes the time.
type Damping struct {
	penalty    float64   // as of at
	at         time.Time // when penalty was last brought up to date
	suppressed bool
}

// DampingParams are the knobs, from the uplink's probe settings.
type DampingParams struct {
	HalfLife    time.Duration
	MaxHoldDown time.Duration
}

// DampingFor derives the damping of probe settings p: half-life 3 × hold_down,
// capped by max_hold_down.
func DampingFor(p Probe) DampingParams {
	return DampingParams{HalfLife: halfLivesPerHoldDown * p.HoldDown, MaxHoldDown: p.MaxHoldDown}
}

// Penalty is the penalty at now.
func (d *Damping) Penalty(now time.Time, p DampingParams) float64 {
	if d.penalty == 0 || p.HalfLife <= 0 {
		return 0
	}
	dt := now.Sub(d.at)
	if dt <= 0 {
		return d.penalty
	}
	return d.penalty * math.Exp2(-dt.Seconds()/p.HalfLife.Seconds())
}

// ceiling is the largest penalty: the one that takes max_hold_down to decay to the reuse level.
func (p DampingParams) ceiling() float64 {
	if p.HalfLife <= 0 || p.MaxHoldDown <= 0 {
		return 0
	}
	return ReusePenalty * math.Exp2(min(p.MaxHoldDown.Seconds()/p.HalfLife.Seconds(), 64))
}

// Flap records a flap at now and says whether the uplink is now suppressed.
func (d *Damping) Flap(now time.Time, p DampingParams) bool {
	if p.HalfLife <= 0 {
		return false // damping off
	}
	raw := d.Penalty(now, p) + FlapPenalty
	if raw > SuppressPenalty {
		d.suppressed = true
	}
	// Capped after the check: with a max_hold_down short against the half-life the ceiling
	// is below the suppress level, and suppression then lasts exactly max_hold_down.
	d.penalty, d.at = min(raw, p.ceiling()), now
	return d.suppressed
}

// Suppressed says whether the uplink is held down at now: from the moment its
// penalty rose above SuppressPenalty until it decays to ReusePenalty.
func (d *Damping) Suppressed(now time.Time, p DampingParams) bool {
	if d.suppressed && d.Penalty(now, p) <= ReusePenalty {
		d.suppressed = false
	}
	return d.suppressed
}

// HoldDown is how much longer the uplink stays suppressed at now: the time for
// its penalty to decay to ReusePenalty (at most max_hold_down), or 0.
func (d *Damping) HoldDown(now time.Time, p DampingParams) time.Duration {
	if !d.Suppressed(now, p) {
		return 0
	}
	pen := d.Penalty(now, p)
	secs := p.HalfLife.Seconds() * math.Log2(pen/ReusePenalty)
	h := time.Duration(math.Ceil(secs * float64(time.Second)))
	return min(max(h, 0), p.MaxHoldDown)
}
