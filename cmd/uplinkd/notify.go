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

func (n notifier) Ready(status string)  { n.send(sd.SdNotifyReady + "\nSTATUS=" + status) }
func (n notifier) Status(status string) { n.send("STATUS=" + status) }
func (n notifier) Stopping()            { n.send(sd.SdNotifyStopping) }
func (n notifier) Watchdog()            { n.send(sd.SdNotifyWatchdog) }

// reloading tells systemd a reload is under way (systemd 252 has no Type=notify-reload, but it
// understands RELOADING=1 followed by READY=1).
func (n notifier) Reloading() {
	n.send(sd.SdNotifyReloading + "\n" + sd.SdNotifyMonotonicUsec())
}
