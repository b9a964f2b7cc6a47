package engine

import (
	"context"
	"log/slog"
	"time"
)

const (
	// repairGap is the least time between two repairs while someone keeps deleting our
	// entries; it doubles with every repair that restored something, up to maxRepairGap, and
	// falls back after a quiet fightMemory.
	repairGap = 50 * time.Millisecond
	// repairSettle is how long a repair waits for the rest of a burst of deletions (a flush
	// of many rules is many events): a single deletion is repaired within it.
	repairSettle = 20 * time.Millisecond
	maxRepairGap = time.Second
	fightMemory  = time.Minute
	// remindEvery is how often a problem that persists is logged again.
	remindEvery = 5 * time.Minute
)

// repairs coalesces bursts of "owned entry deleted" into one repair and rate-limits repairs, so
// that a process fighting over a rule (systemd-networkd, a script) cannot make uplinkd spin.
// It also keeps persistent problems from flooding the log: note logs a problem when it
// appears or changes, reminds every remindEvery, and says when it is gone.
type repairs struct {
	timer    *time.Timer // pending repair; nil when none
	last     time.Time   // when the last repair ran
	gap      time.Duration
	restored int       // repairs that restored something since fightSince
	since    time.Time // start of the current fight
	warned   time.Time // last fight warning

	problems map[string]noted
}

type noted struct {
	text string
	at   time.Time
}

// request asks for a repair; bursts collapse into one.
func (r *repairs) request(now time.Time) {
	if r.timer != nil {
		return
	}
	wait := repairSettle
	if next := r.last.Add(r.gap); next.Sub(now) > wait {
		wait = next.Sub(now)
	}
	r.timer = time.NewTimer(wait)
}

// due fires when a requested repair may run (never when none is pending).
func (r *repairs) due() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C
}

// done records a repair; restored says whether it had to restore anything (otherwise the
// deletions were our own, reported back by the monitor).
func (r *repairs) done(log *slog.Logger, now time.Time, restored bool) {
	r.timer, r.last = nil, now
	if !restored {
		log.Debug("owned entries deleted: nothing to restore (our own change)")
		return
	}
	if now.Sub(r.since) > fightMemory {
		r.since, r.restored, r.gap = now, 0, 0
	}
	r.restored++
	r.gap = min(max(2*r.gap, repairGap), maxRepairGap)
	switch {
	case r.restored == 1:
		log.Warn("restored owned rules or routes that someone else deleted")
	case now.Sub(r.warned) >= fightMemory:
		r.warned = now
		log.Warn("another process keeps deleting uplinkd's rules or routes (systemd-networkd, NetworkManager or a script?); repairs are rate-limited",
			"repairs", r.restored, "during", now.Sub(r.since).Round(time.Second), "next_repair_after", r.gap)
	}
}

// note logs msg with the problem text when a problem of this key appears, changes, or has
// lasted another remindEvery, and once at info when it is gone. It returns true when it
// logged the problem (callers publish an event then, too).
func (r *repairs) note(log *slog.Logger, key, problem, msg string) bool {
	if r.problems == nil {
		r.problems = map[string]noted{}
	}
	was, had := r.problems[key]
	now := time.Now()
	switch {
	case problem == "" && had:
		delete(r.problems, key)
		log.Info("problem resolved", "was", was.text)
	case problem == "":
	case !had || was.text != problem || now.Sub(was.at) >= remindEvery:
		r.problems[key] = noted{problem, now}
		lv := slog.LevelWarn
		if key == "apply" || key == "pins" {
			lv = slog.LevelError
		}
		log.Log(context.Background(), lv, msg, "problem", problem)
		return true
	}
	return false
}
