package uplink

import (
	"fmt"
	"time"
)

// ServerHealth is one checked server's verdict, judged from its checks with hysteresis: down
// after down_after failed checks in a row, up again after up_after passed ones. Until its
// first verdict it counts as passing (a starting gateway withdraws nothing it has not judged);
// the first passed check makes it up at once. Pure and clock-free.
type ServerHealth struct {
	Known  bool      // a verdict was reached
	Up     bool      // its verdict (true while not Known)
	Since  time.Time // of the verdict
	Reason string    // the last check's outcome: "200 OK in 1.2ms", "connection refused"
	good   int       // passed checks in a row
	bad    int       // failed checks in a row
}

// Passing says whether the server counts for its name: up, or not judged yet.
func (h *ServerHealth) Passing() bool { return !h.Known || h.Up }

// Failing says whether its last check failed (whatever the verdict so far).
func (h *ServerHealth) Failing() bool { return h.bad > 0 }

// Observe takes one check's outcome at now and says whether the verdict changed.
func (h *ServerHealth) Observe(ok bool, reason string, now time.Time, c ServerCheck) bool {
	h.Reason = reason
	if ok {
		h.good, h.bad = h.good+1, 0
	} else {
		h.good, h.bad = 0, h.bad+1
	}
	switch {
	case ok && (!h.Known || !h.Up) && (!h.Known || h.good >= max(c.UpAfter, 1)):
		h.Known, h.Up, h.Since = true, true, now
		return true
	case !ok && (!h.Known || h.Up) && h.bad >= max(c.DownAfter, 1):
		h.Known, h.Up, h.Since = true, false, now
		return true
	}
	return false
}

// String says the verdict as a person reads it: "up since …: 200 OK".
func (h *ServerHealth) String() string {
	switch {
	case !h.Known:
		return "not judged yet"
	case h.Up:
		return fmt.Sprintf("up: %s", h.Reason)
	}
	return fmt.Sprintf("down: %s", h.Reason)
}
