package uplink

import (
	"encoding/json"
	"fmt"
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

// TargetStatus is what one probe target has shown over the sliding window.
type TargetStatus struct {
	Address string        `json:"address"`
	RTT     time.Duration `json:"rtt_ns"`   // mean RTT of the answered probes in the window
	Loss    float64       `json:"loss_pct"` // 0..100
	Samples int           `json:"samples"`
}

// UplinkStatus is one uplink as the daemon reports it.
type UplinkStatus struct {
	Name        string         `json:"name"`
	Interface   string         `json:"interface"`
	State       State          `json:"state"`
	Since       time.Time      `json:"since"`
	Reason      string         `json:"reason"`
	Drained     bool           `json:"drained"`
	Active      bool           `json:"active"`
	Priority    int            `json:"priority"`
	Weight      int            `json:"weight"`
	Mark        uint32         `json:"mark"`  // firewall mark routed through its table
	Table       int            `json:"table"` // its routing table
	Gateway     string         `json:"gateway,omitempty"`
	Gateway6    string         `json:"gateway6,omitempty"`
	Addresses   []string       `json:"addresses,omitempty"`
	RTT         time.Duration  `json:"rtt_ns"`
	Loss        float64        `json:"loss_pct"`
	HoldDown    time.Duration  `json:"hold_down_ns,omitempty"`
	Targets     []TargetStatus `json:"targets"`
	Connections int            `json:"connections"` // tracked connections pinned to this uplink, -1 if unknown
}

// Status is the whole daemon's state: GET /v1/status.
type Status struct {
	Version     string         `json:"version"`
	Started     time.Time      `json:"started"`
	Uptime      time.Duration  `json:"uptime_ns"`
	Config      string         `json:"config"`
	Active      []string       `json:"active"`
	ActiveRoute string         `json:"active_route"` // the active table's default route(s), as ip route prints them
	Uplinks     []UplinkStatus `json:"uplinks"`
}

// Carrying reports whether any uplink carries traffic.
func (s Status) Carrying() bool {
	for _, u := range s.Uplinks {
		if u.Active && u.State != Down {
			return true
		}
	}
	return false
}

// Event is one decision: a state change, a drain, a reload, a route switch.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"` // "state", "drain", "undrain", "active", "reload", "error"
	Uplink string    `json:"uplink,omitempty"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Reason string    `json:"reason"`
	Active []string  `json:"active,omitempty"`
	// Took is how long the switch took from the decision to the kernel's acknowledgement.
	Took time.Duration `json:"took_ns,omitempty"`
}

// String renders an event as one line a person reads.
func (e Event) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}
