package engine

import (
	"context"
	"net/netip"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
)

// The engine talks to the kernel and the world only through these small interfaces, defined
// here where they are used. The real ones are routing.Router, connmark.Table and the probe
// package; tests use fakes.

// Routes is the kernel's policy routing.
type Routes interface {
	Settings() routing.Settings
	// Apply makes the owned rules and routes match the plan; it is idempotent.
	Apply(routing.Plan) (routing.Changes, error)
	// Link learns an interface's state, addresses and gateways.
	Link(ifname string) (routing.LinkInfo, error)
	// FlushSNAT deletes the conntrack entries NATed to addr.
	FlushSNAT(addr netip.Addr) (int, error)
	// Cleanup removes every owned rule and route.
	Cleanup() (routing.Changes, error)
}

// Pins is the connection-mark table (nftables table inet uplinkd).
type Pins interface {
	// Apply makes the table match the plan, rebuilding it if it was damaged.
	Apply(connmark.Plan) error
	// Counts returns tracked connections per uplink mark. It walks the conntrack table: slow.
	Counts() (map[uint32]int, error)
	// Cleanup removes the table.
	Cleanup() error
	// Exists says whether the table is in the kernel.
	Exists() (bool, error)
	// Received counts, per uplink mark, the packets that arrived on the uplink for connections
	// through it since the table was built. One dump.
	Received() (map[uint32]uint64, error)
}

var (
	_ Routes = (*routing.Router)(nil)
	_ Pins   = (*connmark.Table)(nil)
	_ Prober = (*probe.Uplink)(nil)
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
