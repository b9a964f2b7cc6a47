package uplink

import (
	"fmt"
	"net/netip"
	"time"
)

// State is an uplink's health as judged by the Machine.
type State int

const (
	Unknown  State = iota // no verdict yet (startup, or after a reload added it)
	Up                    // fit to carry traffic
	Degraded              // answers, but loss or RTT is beyond the limits: usable, not preferred
	Down                  // must not carry traffic
)

var stateNames = [...]string{"unknown", "up", "degraded", "down"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("state(%d)", int(s))
	}
	return stateNames[s]
}

// Usable says whether an uplink in this state may carry traffic: Up, or Degraded when nothing
// better is there.
func (s State) Usable() bool { return s == Up || s == Degraded }

// MarshalText makes states read as words in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses the words MarshalText writes.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown uplink state %q", b)
}

// Transition is one change of an uplink's state, as the Machine decided it.
type Transition struct {
	Time     time.Time
	Uplink   string
	From, To State
	Reason   string
}

// TargetStats is what one probe target has shown over the sliding window.
type TargetStats struct {
	Address netip.Addr
	RTT     time.Duration // mean RTT of the answered probes in the window
	Loss    float64       // percent, 0..100
	Jitter  time.Duration // mean deviation of successive RTTs (see Jitter)
	Samples int
}
