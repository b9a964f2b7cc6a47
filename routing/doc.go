// Package routing makes the kernel's policy rules and routes match a declarative plan.
//
// The daemon computes a Plan (pure, see NewPlan) from the uplinks and the active set, and a
// Router applies it through netlink: it diffs the plan against what the kernel holds and sends
// only the messages needed. A failover (a change of the active set) is one RTM_NEWROUTE with
// NLM_F_REPLACE per address family (two on a dual-stack gateway). Applying the same plan twice
// sends nothing.
//
// A Monitor reports what the daemon must react to: carrier and admin state, address and
// gateway changes (re-learn with Router.Link and plan again), deleted owned entries (Apply
// again), and lost events (ResyncNeeded: re-learn everything and Apply). FlushSNAT deletes the
// conntrack entries source-NATed to a departed uplink's address.
//
// # Rules
//
// Every rule lives in the daemon's priority band [RulePriority, RulePriority+99] (default
// 1000..1099) and carries our protocol number (FRA_PROTOCOL). The slots are spaced by ten so
// that an administrator can interleave rules of their own:
//
//	base+10  fwmark M_i/mask lookup T_i       probes (SO_MARK) and pinned connections
//	base+20  lookup main suppress_prefixlength 0   connected and specific routes of main still win
//	base+30  from <addr_i> lookup T_i        traffic bound to an uplink's address
//	base+40  lookup <ActiveTable>             the active default route
//
// The same four slots exist for IPv4 and IPv6.
//
// # Routes
//
// Per-uplink table T_i holds `default via gw_i dev if_i proto 0x55` for each family with a known
// gateway (or `default dev if_i` for a point-to-point IPv4 uplink without one), and an
// `unreachable default metric 4294967295` guard, so that traffic marked for an uplink that has
// no route in a family fails instead of leaking out through another uplink. The active table
// holds one default route per family: a single nexthop, or one multipath route whose nexthop
// weights are the uplinks' weights.
//
// # Ownership
//
// Routes are ours when they carry our route protocol (default 0x55 = 85, a number no routing
// daemon in /etc/iproute2/rt_protos uses) and are not in the main, local or default table.
// Rules are ours when their priority is in our band and they carry our protocol. Nothing else
// is ever changed or deleted, and the main table is never written. Because ownership is read
// from the kernel, a restarted daemon adopts what its predecessor left, and Cleanup removes
// everything a crashed one left.
package routing
