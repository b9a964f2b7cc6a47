package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// reload reads the configuration file again. A bad file is refused with the reason and the
// running configuration stays untouched. A good one keeps the health and drain state of every
// uplink whose interface and id are unchanged, so that unchanged uplinks see no routing blip.
func (d *daemon) reload(cause string) error {
	d.notifier.reloading()
	defer d.notifier.ready(d.summary())
	cfg, err := config.Load(d.cfg.Path)
	if err != nil {
		d.log.Error("reload refused; the running configuration stays", "cause", cause, "err", err)
		d.hub.publish(api.Event{Time: time.Now(), Kind: api.KindReload, Reason: "refused: " + err.Error()})
		return err
	}
	if cfg.Daemon.Socket != d.cfg.Daemon.Socket || cfg.Daemon.SocketGroup != d.cfg.Daemon.SocketGroup {
		d.log.Warn("socket settings change only on restart", "socket", d.cfg.Daemon.Socket)
	}
	if cfg.Daemon.TableBase != d.cfg.Daemon.TableBase || cfg.Daemon.RulePriority != d.cfg.Daemon.RulePriority {
		err := fmt.Errorf("%s: table_base and rule_priority change only on restart (after uplinkd --cleanup)", cfg.Path)
		d.log.Error("reload refused", "err", err)
		return err
	}
	ctx := d.ctx
	var kept []*member
	for _, u := range cfg.Uplinks {
		old := d.member(u.Name)
		if old != nil && old.cfg.Interface == u.Interface && old.cfg.ID == u.ID {
			old.machine.SetProbe(u.Probe)
			if !sameProbe(old.cfg.Probe, u.Probe) {
				old.prober.stop()
				old.prober = startProber(ctx, u, old.pin(), d.rounds, d.log)
			}
			old.cfg = u
			kept = append(kept, old)
			continue
		}
		m := &member{cfg: u, machine: uplink.NewMachine(u.Name, u.Probe, time.Now())}
		if old != nil {
			m.drained = old.drained
		}
		d.learn(m)
		m.prober = startProber(ctx, u, m.pin(), d.rounds, d.log)
		kept = append(kept, m)
	}
	for _, m := range d.members {
		if !slices.Contains(kept, m) {
			m.prober.stop()
		}
	}
	d.members = kept
	d.cfg = cfg
	d.log.Info("configuration reloaded", "cause", cause, "uplinks", len(cfg.Uplinks))
	d.hub.publish(api.Event{Time: time.Now(), Kind: api.KindReload, Reason: "configuration reloaded"})
	d.reconcile("reload")
	return nil
}

func sameProbe(a, b uplink.Probe) bool { return reflect.DeepEqual(a, b) }

// hangups delivers SIGHUP as a reload request to the loop.
func (d *daemon) hangups(ctx context.Context) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			select {
			case d.requests <- func(d *daemon) { _ = d.reload("SIGHUP") }:
			case <-ctx.Done():
				return
			}
		}
	}
}
