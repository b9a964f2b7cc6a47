package engine

import (
	"context"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/servercheck"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// CheckServers starts the checks of the names' servers and of the other sites' addresses
// (servercheck.Start); the engine takes the outcomes from out and judges them.
type CheckServers func(ctx context.Context, targets []servercheck.Target, c uplink.ServerCheck, pins servercheck.Pins, out chan<- servercheck.Result) (stop func())

// serverChecks is the engine's view of the names' servers and the other sites' addresses.
type serverChecks struct {
	health  map[servercheck.Target]*uplink.ServerHealth
	stop    func()
	targets []servercheck.Target // what the running checks check
	check   uplink.ServerCheck
}

// startChecks (re)starts the checks for the configuration, keeping the health of every target
// that is still checked the same way.
func (e *Engine) startChecks() {
	targets, c := servercheck.Targets(e.cfg.DNS), e.cfg.DNS.Check
	sc := &e.servers
	if sc.stop != nil && reflect.DeepEqual(sc.targets, targets) && sc.check == c {
		return
	}
	e.stopChecks()
	kept := map[servercheck.Target]*uplink.ServerHealth{}
	for _, t := range targets {
		if h := sc.health[t]; h != nil {
			kept[t] = h
		} else {
			kept[t] = &uplink.ServerHealth{}
		}
	}
	sc.health, sc.targets, sc.check = kept, targets, c
	if len(targets) > 0 && e.opt.CheckServers != nil {
		sc.stop = e.opt.CheckServers(e.ctx, targets, c, e.livePins, e.checked)
	}
}

// stopChecks ends the checks (the engine stops, or the configuration changed).
func (e *Engine) stopChecks() {
	if e.servers.stop != nil {
		e.servers.stop()
		e.servers.stop = nil
	}
}

// livePins are the pins of the uplinks that carry traffic now, active first: other sites are
// checked through them, as a customer would reach them. Safe from any goroutine.
func (e *Engine) livePins() []probe.Pin {
	if p := e.pins.Load(); p != nil {
		return *p
	}
	return nil
}

// storePins keeps the live uplinks' pins for the checks of other sites.
func (e *Engine) storePins() {
	var active, usable []probe.Pin
	for _, m := range e.members {
		v4, v6 := m.usable()
		switch {
		case slices.Contains(e.decision.Active, m.cfg.Name):
			active = append(active, m.pin())
		case v4 || v6:
			usable = append(usable, m.pin())
		}
	}
	pins := append(active, usable...)
	e.pins.Store(&pins)
}

// onChecked judges one check's outcome; a target whose verdict changes is logged and
// published, and when a name's answer changes it moves in the next Set.
func (e *Engine) onChecked(r servercheck.Result) {
	before, beforeSites := e.namesDown(), e.sitesUp()
	e.statusAged = true // the last check's reason shows at the next tick
	for _, t := range r.Targets {
		h := e.servers.health[t]
		if h == nil || !h.Observe(r.OK, r.Reason, r.At, e.servers.check) {
			continue // unchanged, or from checks of a configuration reloaded since
		}
		to := "down"
		if h.Up {
			to = "up"
		}
		e.log.Info("server check", "name", t.Name, "site", t.Site, "server", t.Server.String(), "to", to, "reason", r.Reason)
		e.hub.publish(api.Event{Time: r.At, Kind: api.KindServer, Name: t.Name, Site: t.Site, Server: t.Server.String(), To: to, Reason: r.Reason})
	}
	// Not only a verdict moves the answers: a failing check of a dark site's other address does.
	if e.ready && (!maps.Equal(before, e.namesDown()) || !reflect.DeepEqual(beforeSites, e.sitesUp())) {
		// The checks of one site's addresses end together when the site goes dark: one
		// answer change for all of them, not one per address.
		if e.checkSettle == nil {
			e.checkSettle = time.After(checkSettle)
		}
	}
}

// checkSettle gathers the verdicts that come together (a site's addresses, a name's servers)
// into one change of the answers.
const checkSettle = 50 * time.Millisecond

// namesDown are the checked names fewer of whose servers here pass than their quorum.
func (e *Engine) namesDown() map[string]bool {
	var down map[string]bool
	for _, n := range e.cfg.DNS.Names {
		if !n.Checked() {
			continue
		}
		passing := 0
		for _, s := range n.Servers {
			if h := e.servers.health[servercheck.Target{Name: n.Name, Server: s}]; h == nil || h.Passing() {
				passing++
			}
		}
		if passing < n.NeedServers() {
			if down == nil {
				down = map[string]bool{}
			}
			down[n.Name] = true
		}
	}
	return down
}

// sitesUp are, per name and other site, the addresses that pass this site's checks. Once one
// of a site's addresses is judged down, those whose last check failed go with it: a site that
// went dark leaves the answer in one change, not one per address.
func (e *Engine) sitesUp() map[string]map[string]map[netip.Addr]bool {
	type nameSite struct{ name, site string }
	judgedDown := map[nameSite]bool{}
	for t, h := range e.servers.health {
		if t.Site != "" && !h.Passing() {
			judgedDown[nameSite{t.Name, t.Site}] = true
		}
	}
	var up map[string]map[string]map[netip.Addr]bool
	for t, h := range e.servers.health {
		if t.Site == "" || !h.Passing() || judgedDown[nameSite{t.Name, t.Site}] && h.Failing() {
			continue
		}
		if up == nil {
			up = map[string]map[string]map[netip.Addr]bool{}
		}
		if up[t.Name] == nil {
			up[t.Name] = map[string]map[netip.Addr]bool{}
		}
		if up[t.Name][t.Site] == nil {
			up[t.Name][t.Site] = map[netip.Addr]bool{}
		}
		up[t.Name][t.Site][t.Server.Addr] = true
	}
	return up
}

// serverStatus is each checked server of n, here and at the other sites, as the status shows it.
func (e *Engine) serverStatus(n uplink.DNSName) []api.ServerStatus {
	var out []api.ServerStatus
	for _, t := range e.servers.targets {
		if t.Name != n.Name {
			continue
		}
		st := api.ServerStatus{Site: t.Site, Server: t.Server.String(), State: "unknown"}
		if h := e.servers.health[t]; h != nil {
			st.Reason = h.Reason
			if h.Known {
				st.State, st.Since = "down", h.Since
				if h.Up {
					st.State = "up"
				}
			}
		}
		out = append(out, st)
	}
	return out
}
