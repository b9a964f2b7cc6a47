package engine

import (
	"context"
	"maps"
	"reflect"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/servercheck"
	"github.com/uplinkd/uplinkd/uplink"
)

// CheckServers starts the checks of the names' servers (servercheck.Start); the engine takes
// the outcomes from out and judges them.
type CheckServers func(ctx context.Context, names []uplink.DNSName, c uplink.ServerCheck, out chan<- servercheck.Result) (stop func())

// serverKey names one checked server of one published name.
type serverKey struct {
	name   string
	server uplink.Server
}

// serverChecks is the engine's view of the names' servers.
type serverChecks struct {
	health map[serverKey]*uplink.ServerHealth
	stop   func()
	names  []uplink.DNSName // what the running checks check
	check  uplink.ServerCheck
}

// startChecks (re)starts the server checks for the configuration's names, keeping the health
// of every server that is still checked the same way.
func (e *Engine) startChecks() {
	names, c := checkedNames(e.cfg.DNS.Names), e.cfg.DNS.Check
	sc := &e.servers
	if sc.stop != nil && reflect.DeepEqual(sc.names, names) && sc.check == c {
		return
	}
	if sc.stop != nil {
		sc.stop()
		sc.stop = nil
	}
	kept := map[serverKey]*uplink.ServerHealth{}
	for _, n := range names {
		for _, s := range n.Servers {
			k := serverKey{n.Name, s}
			if h := sc.health[k]; h != nil {
				kept[k] = h
			} else {
				kept[k] = &uplink.ServerHealth{}
			}
		}
	}
	sc.health, sc.names, sc.check = kept, names, c
	if len(names) > 0 && e.opt.CheckServers != nil && e.cfg.DNS.Enabled() {
		sc.stop = e.opt.CheckServers(e.ctx, names, c, e.checked)
	}
}

// stopChecks ends the server checks (the engine stops).
func (e *Engine) stopChecks() {
	if e.servers.stop != nil {
		e.servers.stop()
		e.servers.stop = nil
	}
}

func checkedNames(names []uplink.DNSName) []uplink.DNSName {
	var out []uplink.DNSName
	for _, n := range names {
		if n.Checked() {
			out = append(out, n)
		}
	}
	return out
}

// onChecked judges one check's outcome; a server whose verdict changes is logged and
// published, and when its name's health changes the answers move in the next Set.
func (e *Engine) onChecked(r servercheck.Result) {
	k := serverKey{r.Name, r.Server}
	h := e.servers.health[k]
	if h == nil {
		return // from checks of a configuration reloaded since
	}
	before := e.namesDown()
	e.statusAged = true // the last check's reason shows at the next tick
	if !h.Observe(r.OK, r.Reason, r.At, e.servers.check) {
		return
	}
	to := "down"
	if h.Up {
		to = "up"
	}
	e.log.Info("server check", "name", r.Name, "server", r.Server.String(), "to", to, "reason", r.Reason)
	e.hub.publish(api.Event{Time: r.At, Kind: api.KindServer, Name: r.Name, Server: r.Server.String(), To: to, Reason: r.Reason})
	if after := e.namesDown(); !maps.Equal(before, after) && e.ready {
		e.reconcile("server check")
	} else {
		e.publishStatus()
	}
}

// namesDown are the checked names fewer of whose servers pass than their quorum.
func (e *Engine) namesDown() map[string]bool {
	var down map[string]bool
	for _, n := range e.servers.names {
		passing := 0
		for _, s := range n.Servers {
			if h := e.servers.health[serverKey{n.Name, s}]; h == nil || h.Passing() {
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

// serverStatus is each checked server of n as the status shows it.
func (e *Engine) serverStatus(n uplink.DNSName) []api.ServerStatus {
	var out []api.ServerStatus
	for _, s := range n.Servers {
		st := api.ServerStatus{Server: s.String(), State: "unknown"}
		if h := e.servers.health[serverKey{n.Name, s}]; h != nil {
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
