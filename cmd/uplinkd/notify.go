package main

import (
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifier speaks systemd's notify protocol; without NOTIFY_SOCKET every call does nothing.
type notifier struct {
	log      *slog.Logger
	interval time.Duration // watchdog ping interval, 0 when the watchdog is off
}

func newNotifier(log *slog.Logger) notifier {
	n := notifier{log: log}
	if wd, err := sd.SdWatchdogEnabled(false); err == nil && wd > 0 {
		n.interval = wd / 2
	}
	return n
}

func (n notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

func (n notifier) ready(status string)  { n.send(sd.SdNotifyReady + "\nSTATUS=" + status) }
func (n notifier) status(status string) { n.send("STATUS=" + status) }
func (n notifier) stopping()            { n.send(sd.SdNotifyStopping) }
func (n notifier) watchdog()            { n.send(sd.SdNotifyWatchdog) }

// reloading tells systemd a reload is under way (systemd 252 has no Type=notify-reload, but it
// understands RELOADING=1 followed by READY=1).
func (n notifier) reloading() {
	n.send(sd.SdNotifyReloading + "\n" + sd.SdNotifyMonotonicUsec())
}

// watchdogTicker ticks at half the watchdog interval, or never.
func (n notifier) watchdogTicker() *time.Ticker {
	if n.interval <= 0 {
		t := time.NewTicker(time.Hour)
		t.Stop()
		return t
	}
	return time.NewTicker(n.interval)
}
