package engine

import (
	"context"

	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
)

// The engine talks to the kernel and the world only through these small interfaces, defined
// here where they are used. The real ones are dataplane.Dataplane and the probe package; tests
// use dataplane.Fake and the fakes of this package.

// Dataplane makes the box match one desired state.
type Dataplane interface {
	// Set makes the box match s; it is idempotent and sends nothing when nothing changed.
	Set(dataplane.State) (dataplane.Result, error)
	// Forget makes the next Set check everything against the kernel (repair, retry, resync).
	Forget()
	// Cleanup removes every owned rule, route and table.
	Cleanup() (routing.Changes, error)
}

// Kernel is what the engine reads from the box.
type Kernel interface {
	// Link learns an interface's state, addresses and gateways.
	Link(ifname string) (routing.LinkInfo, error)
	// Prefixes6 reads a LAN interface's global IPv6 addresses with their prefixes and
	// lifetimes (Link's Prefixes6, without its route dumps).
	Prefixes6(ifname string) ([]routing.AddrPrefix, error)
	// Counts returns live connections per uplink mark. It walks the conntrack table: slow; it
	// is called from the status's own goroutine.
	Counts() (map[uint32]int, error)
	// Received counts, per uplink mark, the packets that arrived on the uplink for connections
	// through it. One dump.
	Received() (map[uint32]uint64, error)
}

var (
	_ Dataplane = (*dataplane.Dataplane)(nil)
	_ Kernel    = (*dataplane.Dataplane)(nil)
	_ Dataplane = (*dataplane.Fake)(nil)
	_ Kernel    = (*dataplane.Fake)(nil)
	_ Prober    = (*probe.Uplink)(nil)
)

// StartProbe is the StartProber of package probe: long-lived pinned sockets, RTT-adaptive
// verdicts and confirmation rounds.
func StartProbe(ctx context.Context, u uplink.Uplink, pin probe.Pin, out func(uplink.Round)) (Prober, error) {
	return probe.Start(ctx, u.Name, u.Probe, pin, out)
}

// StartProber starts probing one uplink through pin until ctx ends or Stop; every finished
// round goes to out, which gives up when ctx ends. probe.Start is the real one.
type StartProber func(ctx context.Context, u uplink.Uplink, pin probe.Pin, out func(uplink.Round)) (Prober, error)

// Prober probes one uplink until stopped.
type Prober interface {
	// SetPin changes the mark and source addresses of the next probes (DHCP renumbering).
	SetPin(probe.Pin)
	// SetMode changes how many probes a healthy uplink gets (probe.Mode).
	SetMode(probe.Mode)
	// Stop ends the probing and waits for probes in flight; out is not called afterwards.
	Stop()
}

// Tracker steers this box's VRRP priority in a keepalived pair (internal/ha.Tracker).
type Tracker interface {
	// Set writes the value for usable of total uplinks, or standby; only on change.
	Set(usable, total int, standby bool) error
	// Standby says whether the file already asks for standby (kept across a restart).
	Standby() bool
}

// Notifier tells the service manager how the engine is doing (systemd's sd_notify).
type Notifier interface {
	Ready(status string)
	Status(status string)
	Reloading()
	Stopping()
	Watchdog()
}

// nopNotifier is the notifier of an engine that runs without a service manager.
type nopNotifier struct{}

func (nopNotifier) Ready(string)  {}
func (nopNotifier) Status(string) {}
func (nopNotifier) Reloading()    {}
func (nopNotifier) Stopping()     {}
func (nopNotifier) Watchdog()     {}
