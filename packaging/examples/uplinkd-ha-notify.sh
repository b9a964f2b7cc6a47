#!/bin/sh
# keepalived notify script for the uplinkd gateway pair (/etc/keepalived/uplinkd-ha-notify.sh,
# root:root 0755). keepalived runs it with "primary", "backup" or "fault" when the sync group
# changes state. It is the stock conntrackd failover script
# (/usr/share/doc/conntrackd/examples/sync/primary-backup.sh) with two changes:
#  - When conntrackd is not running it asks systemd to restart it instead of starting a second,
#    unsupervised copy.
#  - On backup and fault it flushes the kernel table at once (-F) instead of scheduling the flush
#    PurgeTimeout seconds later (-t): conntrackd 1.4.7 does not cancel a scheduled flush when the
#    box becomes primary in the meantime, so a box that started (as backup) and took over within
#    PurgeTimeout lost every connection it had just committed when the timer fired (seen in the
#    lab: a server-pushed stream died a few seconds after a takeover). The connections a backup
#    drops here live on the primary, which has them.

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
    ctd -F   # flush the kernel table: the connections now live on the primary
    ctd -n   # ask the new primary for a full resynchronisation
    ;;
fault)
    $LOG "fault"
    ctd -F
    ;;
*)
    $LOG "ERROR: unknown state transition: $1"
    echo "usage: uplinkd-ha-notify.sh {primary|backup|fault}" >&2
    exit 1
    ;;
esac
exit 0
