package engine

import (
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

// reload reads the configuration file again. Every setting either applies at once or the file
// is refused with the reason, and the running configuration stays untouched. A good file keeps
// the health and drain state of every uplink whose interface and id are unchanged, so that
// unchanged uplinks see no routing blip.
func (e *Engine) reload(cause string) error {
	e.notify.Reloading()
	defer func() { e.notify.Ready(e.summary()) }()
	cfg, err := e.opt.Load(e.cfg.Path)
	if err == nil {
		err = restartOnly(e.cfg, cfg)
	}
	if err == nil && cfg.HA.TrackFile != "" && e.opt.NewTracker == nil {
		err = fmt.Errorf("%s: [ha] is not supported by this uplinkd", cfg.Path)
	}
	if err != nil {
		e.log.Error("reload refused; the running configuration stays", "cause", cause, "err", err)
		e.hub.publish(api.Event{Time: time.Now(), Kind: api.KindReload, Reason: "refused: " + err.Error()})
		return err
	}
	var kept []*member
	for _, u := range cfg.Uplinks {
		old := e.member(u.Name)
		if old != nil && old.cfg.Interface == u.Interface && old.cfg.ID == u.ID {
			old.setMachines(u.Probe, time.Now())
			probeChanged := !reflect.DeepEqual(old.cfg.Probe, u.Probe)
			old.cfg = u
			if probeChanged {
				e.startProbing(old)
			}
			kept = append(kept, old)
			continue
		}
		m := e.newMember(u, old)
		e.startProbing(m)
		kept = append(kept, m)
	}
	for _, m := range e.members {
		if !slices.Contains(kept, m) {
			m.stopProbing()
		}
	}
	_ = e.setTracker(cfg.HA.TrackFile) // checked above; before e.cfg changes: it compares paths
	e.members, e.cfg = kept, cfg
	e.rememberDrains() // a removed uplink's drain is forgotten
	e.startChecks()    // a changed name or [dns.check]: the health of unchanged servers stays
	e.learnLAN()
	e.setSteering()
	e.setLogLevel()
	e.pinning.Store(cfg.Daemon.Pinning)
	e.log.Info("configuration reloaded", "cause", cause, "uplinks", len(cfg.Uplinks), "pin_connections", cfg.Daemon.Pinning)
	if e.opt.OnReload != nil {
		e.opt.OnReload(cfg)
	}
	e.hub.publish(api.Event{Time: time.Now(), Kind: api.KindReload, Reason: "configuration reloaded"})
	e.reconcile("reload")
	return nil
}

// restartOnly refuses changes to settings that only a restart can apply.
func restartOnly(old, new *uplink.Config) error {
	o, n := old.Daemon, new.Daemon
	for _, c := range []struct {
		key      string
		was, now any
		why      string
	}{
		{"daemon.socket", o.Socket, n.Socket, "the control socket is opened once, at start"},
		{"daemon.socket_group", o.SocketGroup, n.SocketGroup, "the control socket is opened once, at start"},
		{"daemon.metrics_listen", o.MetricsListen, n.MetricsListen, "the metrics listener is opened once, at start"},
		{"daemon.state_file", o.StateFile, n.StateFile, "what it remembers is read once, at start"},
		{"daemon.table_base", o.TableBase, n.TableBase, "run uplinkd --cleanup first, so that no table is left behind"},
		{"daemon.rule_priority", o.RulePriority, n.RulePriority, "run uplinkd --cleanup first, so that no rule is left behind"},
	} {
		if c.was != c.now {
			return fmt.Errorf("%s: %s changes only on restart (%v → %v): %s; restart uplinkd to apply it", new.Path, c.key, c.was, c.now, c.why)
		}
	}
	return nil
}
