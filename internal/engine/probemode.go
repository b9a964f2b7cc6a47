package engine

import (
	"math"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// bytesTau is the time constant of the probe bytes rate in the status.
const bytesTau = 10 * time.Minute

// probeCost is what one member's probes cost: bytes on the wire, in all and as a rate.
type probeCost struct {
	bytes  uint64
	perDay float64 // smoothed over bytesTau
	last   uint64  // bytes at the last rate update
	at     time.Time
}

func (c *probeCost) add(p uplink.Probe, r uplink.Round) {
	for _, x := range r.Results {
		c.bytes += uint64(probe.WireBytes(p.MethodOf(x.Target), x.Target.Is6(), x.OK))
	}
}

func (c *probeCost) update(now time.Time) {
	if c.at.IsZero() {
		c.at, c.last = now, c.bytes
		return
	}
	dt := now.Sub(c.at)
	if dt <= 0 {
		return
	}
	rate := float64(c.bytes-c.last) / dt.Seconds() * 86400
	c.perDay += (rate - c.perDay) * (1 - math.Exp(-dt.Seconds()/bytesTau.Seconds()))
	c.at, c.last = now, c.bytes
}

// noteDoubt records that an active uplink's round lacked quorum: metered backups are probed at
// full rate until the doubt has had time to become a verdict. One lost probe is no doubt: a
// line with 1 % loss would keep the backup at full rate.
func (e *Engine) noteDoubt(m *member, r uplink.Round, now time.Time) {
	if !slices.Contains(e.decision.Active, m.cfg.Name) && !slices.Contains(e.decision.Active6, m.cfg.Name) {
		return
	}
	if r.HasQuorum(m.cfg.Probe.Quorum) {
		return
	}
	p := m.cfg.Probe
	until := now.Add(time.Duration(p.DownAfter+p.UpAfter)*p.Interval + p.Timeout)
	wasDoubt := now.Before(e.doubtUntil)
	e.doubtUntil = maxTime(e.doubtUntil, until)
	if !wasDoubt {
		e.weighProbeModes(now, false) // at once: the backup may be needed within rounds
	}
}

// weighProbeModes tells each prober how many probes its uplink needs now (see probe.Mode):
//   - gentle: a metered uplink that carries nothing while no active uplink is in doubt;
//   - sparse: an uplink that is up and whose connections keep receiving packets (their
//     replies prove it works; one target per round still measures it, and a late probe
//     brings full confirmation rounds at once), unless a service steers by quality;
//   - close: a degraded uplink, twice per interval, so that a healed line shows the clean
//     rounds that bring it back (enough to tell it from a lucky streak) twice as fast;
//   - full otherwise.
//
// readRx reads the counters of received packets per uplink (the passive evidence).
func (e *Engine) weighProbeModes(now time.Time, readRx bool) {
	var got map[uint32]uint64
	if readRx && e.cfg.Daemon.Pinning {
		got, _ = e.opt.Kernel.Received()
	}
	doubt := now.Before(e.doubtUntil)
	for _, m := range e.members {
		if got != nil {
			n := got[m.cfg.Mark()]
			m.receiving = m.rxSeen && n > m.rx
			m.rx, m.rxSeen = n, true
		}
		m.cost.update(now)
		want := e.probeMode(m, doubt)
		if want == m.mode || m.prober == nil {
			continue
		}
		e.log.Debug("probe mode", "uplink", m.cfg.Name, "from", m.mode, "to", want)
		m.mode = want
		m.prober.SetMode(want)
	}
}

func (e *Engine) probeMode(m *member, doubt bool) probe.Mode {
	if !e.ready {
		return probe.ModeFull
	}
	name := m.cfg.Name
	carrying := slices.Contains(e.decision.Active, name) || slices.Contains(e.decision.Active6, name) || m.receiving
	up := m.machine.State() == uplink.Up && (m.machine6 == nil || m.machine6.State() == uplink.Up)
	degraded := m.machine.State() == uplink.Degraded || m.machine6 != nil && m.machine6.State() == uplink.Degraded
	switch {
	case m.cfg.Metered && !carrying && !doubt:
		return probe.ModeGentle
	case degraded:
		return probe.ModeClose
	case up && m.receiving && !e.steered():
		return probe.ModeSparse
	}
	return probe.ModeFull
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
