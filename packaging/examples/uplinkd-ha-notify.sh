#!/bin/sh
# keepalived notify script for the uplinkd gateway pair (/etc/keepalived/uplinkd-ha-notify.sh,
# root:root 0755). keepalived runs it with "primary", "backup" or "fault" when the sync group
# changes state. It is the stock conntrackd failover script
# (/usr/share/doc/conntrackd/examples/sync/primary-backup.sh) with one change: when conntrackd
# is not running it asks systemd to restart it instead of starting a second, unsupervised copy.

CONNTRACKD_BIN=/usr/sbin/conntrackd
CONNTRACKD_CONFIG=/etc/conntrackd/conntrackd.conf
CONNTRACKD_LOCK=/var/lock/conntrackd.lock
RESTART_CONNTRACKD="systemctl restart conntrackd"
LOG="logger -t uplinkd-ha"

ctd() {
    $CONNTRACKD_BIN -C $CONNTRACKD_CONFIG "$@"
    if [ $? -eq 1 ]; then
        $LOG "ERROR: conntrackd $* failed"
    fi
}

case "$1" in
primary)
    $LOG "becoming primary: committing the peer's connections"
    ctd -c   # commit the external cache (the peer's connections) into the kernel table
    ctd -f   # flush the internal and external caches
    ctd -R   # resynchronise the internal cache with the kernel table
    ctd -B   # send a bulk update to the backup
    ;;
backup)
    $LOG "becoming backup"
    if ! $CONNTRACKD_BIN -C $CONNTRACKD_CONFIG -s >/dev/null 2>&1; then
        $LOG "WARNING: conntrackd is not running"
        [ -f $CONNTRACKD_LOCK ] && rm -f $CONNTRACKD_LOCK
        if [ -n "$RESTART_CONNTRACKD" ]; then
            $RESTART_CONNTRACKD || { $LOG "ERROR: cannot restart conntrackd"; exit 1; }
        fi
    fi
    ctd -t   # shorten the kernel's timers: the connections now live on the peer
    ctd -n   # ask the new primary for a full resynchronisation
    ;;
fault)
    $LOG "fault"
    ctd -t
    ;;
*)
    $LOG "ERROR: unknown state transition: $1"
    echo "usage: uplinkd-ha-notify.sh {primary|backup|fault}" >&2
    exit 1
    ;;
esac
exit 0
