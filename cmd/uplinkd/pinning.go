package main

import (
	"log/slog"
	"slices"

	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/vishvananda/netns"
)

// live says whether an uplink may keep its connections: pinned connections stay through
// failback, re-weighting, reloads and a graceful drain, and move only when their uplink is down
// or drained --now. An active uplink is always live (when everything is down, the kept
// primary tier still carries what it can).
func (d *daemon) live(m *member) bool {
	if slices.Contains(d.active, m.cfg.Name) {
		return true
	}
	return m.machine.State() != uplink.Down && !m.drainNow
}

// pinPlan is the connection-mark table for the current state.
func (d *daemon) pinPlan() connmark.Plan {
	p := connmark.Plan{LANInterfaces: d.cfg.Daemon.LANInterfaces, Affinity: d.cfg.Daemon.Affinity}
	for _, m := range d.members {
		p.Uplinks = append(p.Uplinks, connmark.Uplink{
			Name:      m.cfg.Name,
			Interface: m.cfg.Interface,
			Mark:      m.cfg.Mark(),
			Weight:    m.cfg.Weight,
			Live:      d.live(m),
			Eligible:  slices.Contains(d.active, m.cfg.Name),
			Addrs:     m.link.Addrs,
		})
	}
	for _, s := range d.cfg.Services {
		cs := connmark.Service{Name: s.Name, Src: s.Src, Dst: s.Dst, Proto: s.Proto, InIface: s.InInterface}
		for _, r := range s.Ports {
			cs.DPorts = append(cs.DPorts, connmark.PortRange{From: r.From, To: r.To})
		}
		if m := d.serviceUplink(s); m != nil {
			cs.Mark = m.cfg.Mark()
		} else {
			cs.Block = !s.Fallback
		}
		p.Services = append(p.Services, cs)
	}
	return p
}

// serviceUplink walks a service's list in order: the first Up uplink that is not drained,
// else the first Degraded one, else nil.
func (d *daemon) serviceUplink(s uplink.Service) *member {
	for _, want := range []uplink.State{uplink.Up, uplink.Degraded} {
		for _, name := range s.Uplinks {
			if m := d.member(name); m != nil && !m.drained && m.machine.State() == want {
				return m
			}
		}
	}
	return nil
}

// applyPinning makes the nftables table match; force re-checks it even if the plan is the same
// (someone may have deleted it).
func (d *daemon) applyPinning(force bool) {
	if d.pins == nil {
		return
	}
	plan := d.pinPlan()
	text := connmark.Render(plan)
	if text == d.pinApplied && !force {
		return
	}
	if err := d.pins.Apply(plan); err != nil {
		d.log.Error("connection pinning: apply failed; retrying", "err", err)
		d.pinApplied = ""
		d.retry.Reset(retryApply)
		return
	}
	if text != d.pinApplied {
		d.log.Debug("connection pinning applied")
	}
	d.pinApplied = text
}

// cleanupPinning removes the daemon's nftables table.
func cleanupPinning(log *slog.Logger) error {
	return connmark.NewTable(netns.None(), log).Cleanup()
}
