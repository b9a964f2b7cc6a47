// Package examples holds the gateway-pair example configuration (keepalived.conf,
// conntrackd.conf, the notify script and the nftables ruleset) as files to copy to real
// gateways, and embeds them so that the namespace lab (internal/netlab) builds its pair from the
// same text, substituting only paths and the per-box values. One source: a lab test that passes
// checks the examples too.
package examples

import _ "embed"

// The files, as shipped. Their addresses are the lab's (documentation ranges).
var (
	//go:embed keepalived.conf
	Keepalived string
	//go:embed conntrackd.conf
	Conntrackd string
	//go:embed uplinkd-ha-notify.sh
	Notify string
	//go:embed nftables.conf
	Nftables string
)

// Paths and values in the examples that a lab or installer substitutes.
const (
	TrackFile        = "/run/uplinkd/vrrp-priority"
	NotifyPath       = "/etc/keepalived/uplinkd-ha-notify.sh"
	ConntrackdConfig = "/etc/conntrackd/conntrackd.conf"
	ConntrackdLock   = "/var/lock/conntrackd.lock"
	ConntrackdSocket = "/var/run/conntrackd.ctl"
	// SyncA and SyncB are gw-a's and gw-b's addresses on the sync link; conntrackd.conf is
	// gw-a's file, gw-b's swaps them.
	SyncA = "192.0.2.137"
	SyncB = "192.0.2.138"
)
