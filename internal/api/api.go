// Package api holds the control API's wire types: what GET /v1/status and GET /v1/events send,
// and what uplinkctl and scripts read. The domain (package uplink) decides; this says it.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// TargetStatus is what one probe target has shown over the sliding window.
type TargetStatus struct {
	Address string        `json:"address"`
	RTT     time.Duration `json:"rtt_ns"`    // mean RTT of the answered probes in the window
	Loss    float64       `json:"loss_pct"`  // 0..100
	Jitter  time.Duration `json:"jitter_ns"` // mean deviation of successive RTTs
	Samples int           `json:"samples"`
}

// UplinkStatus is one uplink as the daemon reports it.
type UplinkStatus struct {
	Name      string       `json:"name"`
	Interface string       `json:"interface"`
	State     uplink.State `json:"state"`
	// State6 and Reason6: IPv6 judged apart from IPv4 (targets of both families); then State
	// and Reason are IPv4's.
	State6      *uplink.State  `json:"state6,omitempty"`
	Reason6     string         `json:"reason6,omitempty"`
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
	Jitter      time.Duration  `json:"jitter_ns"` // over the window, of the quorum-th best target
	MOS         float64        `json:"mos"`       // a voice call's estimated mean opinion score, 1..4.5
	HoldDown    time.Duration  `json:"hold_down_ns,omitempty"`
	Targets     []TargetStatus `json:"targets"`
	Connections int            `json:"connections"` // tracked connections pinned to this uplink, -1 if unknown
	Metered     bool           `json:"metered,omitempty"`
	// ProbeMode is how many probes it gets now: full (every target every interval), sparse (one
	// target per interval: its traffic proves it alive) or gentle (metered and not needed).
	ProbeMode string `json:"probe_mode"`
	// ProbeBytes are the bytes its probes and their replies cost since the start (IP packets);
	// ProbeBytesPerDay is that rate over the last ten minutes or so, per day.
	ProbeBytes       uint64  `json:"probe_bytes"`
	ProbeBytesPerDay float64 `json:"probe_bytes_per_day"`
}

// Status is the whole daemon's state: GET /v1/status.
type Status struct {
	Version string        `json:"version"`
	Started time.Time     `json:"started"`
	Uptime  time.Duration `json:"uptime_ns"`
	Config  string        `json:"config"`
	Active  []string      `json:"active"`
	// Active6 carry new IPv6 traffic when that differs from Active (dead IPv6 moves only IPv6).
	Active6     []string `json:"active6,omitempty"`
	ActiveRoute string   `json:"active_route"` // the active table's default route(s), as ip route prints them
	// Route4 and Route6 are the active default route of each family as ip route prints it
	// ("default via 192.0.2.1 dev wan1", or "default" and a tab-indented nexthop a line);
	// empty when no active uplink has a gateway of that family.
	Route4  string         `json:"route4,omitempty"`
	Route6  string         `json:"route6,omitempty"`
	Uplinks []UplinkStatus `json:"uplinks"`
	HA      *HAStatus      `json:"ha,omitempty"`   // nil when the box is not in a pair
	DNS     *DNSStatus     `json:"dns,omitempty"`  // nil without [dns]
	IPv6    *IPv6Status    `json:"ipv6,omitempty"` // nil when no uplink has LAN prefixes
}

// IPv6Status is what the LAN is told about the uplinks' prefixes ([ipv6]).
type IPv6Status struct {
	Advertise string         `json:"advertise"` // ra, lifetimes or none
	Prefixes  []PrefixStatus `json:"prefixes"`
	// Translations are the NPTv6 mappings in force: "2001:db8:a1::/64 -> 2001:db8:a2::/64 via wan2".
	Translations []string `json:"translations,omitempty"`
	// LastRA is the last router advertisement sent on each interface (advertise = "ra").
	LastRA []RASent `json:"last_ra,omitempty"`
}

// PrefixStatus is one uplink's LAN prefix.
type PrefixStatus struct {
	Prefix     string   `json:"prefix"`
	Uplink     string   `json:"uplink"`
	Preferred  bool     `json:"preferred"` // hosts may use it for new connections; false: deprecated
	Interfaces []string `json:"interfaces"`
}

// RASent is one router advertisement sent.
type RASent struct {
	Interface  string        `json:"interface"`
	At         time.Time     `json:"at"`
	Preferred  []string      `json:"preferred"`  // the prefixes advertised preferred
	Deprecated []string      `json:"deprecated"` // the prefixes advertised with preferred lifetime 0
	RouterLife time.Duration `json:"router_lifetime_ns"`
}

// DNSStatus is what uplinkd publishes for its [dns] zone now: each name's addresses, as its
// server answers and its updates send them.
type DNSStatus struct {
	Zone  string       `json:"zone"`
	Names []DNSAnswers `json:"names"`
}

// DNSAnswers is one published name and its addresses.
type DNSAnswers struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
	// Servers are the name's checked servers; Down: fewer of them pass than its quorum, and
	// Fallback: it answers its fallback then.
	Servers  []ServerStatus `json:"servers,omitempty"`
	Down     bool           `json:"down,omitempty"`
	Fallback bool           `json:"fallback,omitempty"`
	// Sites are the sites whose addresses the answer carries (several sites only).
	Sites []string `json:"sites,omitempty"`
}

// ServerStatus is one checked server behind a published name.
type ServerStatus struct {
	Site   string    `json:"site,omitempty"` // "": a server here; else the other site whose address it is
	Server string    `json:"server"`         // "http://192.0.2.10:80/healthz"
	State  string    `json:"state"`          // "up", "down" or "unknown" (not judged yet: counts as up)
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"` // the last check's outcome
}

// HAStatus is this box's part in a keepalived gateway pair.
type HAStatus struct {
	TrackFile string `json:"track_file"`
	Standby   bool   `json:"standby"` // the operator put the box in standby
}

// Uplink is the status of the uplink called name; the zero UplinkStatus when there is none.
func (s Status) Uplink(name string) UplinkStatus {
	for _, u := range s.Uplinks {
		if u.Name == name {
			return u
		}
	}
	return UplinkStatus{}
}

// Carrying reports whether any uplink carries traffic.
func (s Status) Carrying() bool {
	for _, u := range s.Uplinks {
		if u.Active && u.State != uplink.Down {
			return true
		}
	}
	return false
}

// EventKind says what an Event is about.
type EventKind string

// The kinds of event.
const (
	KindState   EventKind = "state"   // an uplink's health changed
	KindActive  EventKind = "active"  // the set of uplinks carrying new traffic changed
	KindDrain   EventKind = "drain"   // an operator drained an uplink
	KindUndrain EventKind = "undrain" // an operator returned it
	KindReload  EventKind = "reload"  // the configuration was reloaded, or a reload refused
	KindError   EventKind = "error"   // applying a decision to the kernel failed
	KindHA      EventKind = "ha"      // the box was put in standby or made active in its pair
	KindHold    EventKind = "hold"    // flap damping began (to "held") or ended (from "held") a hold-down
	KindServer  EventKind = "server"  // a server behind a published name went up or down
)

// Event is one decision: a state change, a drain, a reload, a route switch.
type Event struct {
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	// Family is "ipv4" or "ipv6" for a state change of one family, where an uplink's IPv6 is
	// judged apart (targets of both families); empty when one judgement covers both.
	Family string   `json:"family,omitempty"`
	Uplink string   `json:"uplink,omitempty"`
	Name   string   `json:"name,omitempty"`   // a server event's published name
	Site   string   `json:"site,omitempty"`   // a server event's other site ("": a server here)
	Server string   `json:"server,omitempty"` // a server event's server: "http://192.0.2.10:80/health"
	From   string   `json:"from,omitempty"`
	To     string   `json:"to,omitempty"`
	Reason string   `json:"reason"`
	Active []string `json:"active,omitempty"`
	// Took is how long the switch took from the decision to the kernel's acknowledgement.
	Took time.Duration `json:"took_ns,omitempty"`
	// Penalty and Hold: a hold event's flap penalty, and how long a hold that begins lasts
	// unless the uplink fails again.
	Penalty float64       `json:"penalty,omitempty"`
	Hold    time.Duration `json:"hold_ns,omitempty"`
}

// String renders an event as one line a person reads.
func (e Event) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// Targets says the machine's per-target statistics on the wire.
func Targets(stats []uplink.TargetStats) []TargetStatus {
	out := make([]TargetStatus, len(stats))
	for i, s := range stats {
		out[i] = TargetStatus{Address: s.Address.String(), RTT: s.RTT, Loss: s.Loss, Jitter: s.Jitter, Samples: s.Samples}
	}
	return out
}

// StateEvent says a machine's transition on the wire.
func StateEvent(t uplink.Transition) Event {
	return Event{Time: t.Time, Kind: KindState, Uplink: t.Uplink, From: t.From.String(), To: t.To.String(), Reason: t.Reason}
}

// HoldEvent says a hold-down's beginning or end on the wire.
func HoldEvent(h uplink.HoldChange) Event {
	ev := Event{Time: h.Time, Kind: KindHold, Uplink: h.Uplink, Penalty: math.Round(h.Penalty), Hold: h.For}
	if h.Held {
		ev.From, ev.To = "down", "held"
		ev.Reason = fmt.Sprintf("held down %s for flapping (penalty %.0f): %s", h.For.Round(time.Second), h.Penalty, h.Reason)
	} else {
		ev.From, ev.To = "held", "down"
		ev.Reason = fmt.Sprintf("hold-down ended (penalty %.0f): %s", h.Penalty, h.Reason)
	}
	return ev
}

// Errors a backend of the control API wraps, so that the server answers with the right status
// (404, 409) whatever the words around them.
var (
	// ErrUnknownUplink: a drain or undrain names an uplink that is not configured.
	ErrUnknownUplink = errors.New("unknown uplink")
	// ErrNotInPair: standby or active on a box that is not one of a gateway pair.
	ErrNotInPair = errors.New("this box is not in a gateway pair")
)
