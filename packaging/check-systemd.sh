#!/bin/bash
# check-systemd.sh DEB — the .deb under a real systemd (PID 1), as an operator uses it.
#
# Boots a minimal Debian 12 in systemd-nspawn (systemd as PID 1, private network; the rootfs is
# built with mmdebstrap from this host's Debian sources and cached in $SDC_CACHE, default
# /var/cache/uplinkd-sd-check), installs DEB and checks: start (Type=notify READY, the socket
# root:uplinkd 0660), uplinkctl status as root, as a group member and refused for others,
# systemctl reload with a good and a broken file, journal fields, a drain that outlives a
# restart (the state file), stop (fail static), the
# security score, a start without the group uplinkd (socket 0600, a warning), and purge, which
# must leave nothing of uplinkd in the file system or the kernel. One PASS/FAIL line per check;
# exit 1 if any failed. Needs root, systemd-container and mmdebstrap. CI runs it (.ci/run).
set -uo pipefail

DEB=$(realpath "${1:?usage: $0 DEB}") || exit 2
[ "$(id -u)" = 0 ] || { echo "check-systemd: must run as root" >&2; exit 2; }
for c in systemd-nspawn mmdebstrap nsenter; do
    command -v "$c" >/dev/null || { echo "check-systemd: $c is missing (apt-get install systemd-container mmdebstrap)" >&2; exit 2; }
done
T0=$(date +%s)
CACHE=${SDC_CACHE:-/var/cache/uplinkd-sd-check}
PKGS=systemd,systemd-sysv,dbus,iproute2,nftables,passwd,procps
mkdir -p "$CACHE"
LOG=$CACHE/last-run.log
: >"$LOG"
exec 9>"$CACHE/lock"
flock -n 9 || { echo "check-systemd: another run holds $CACHE/lock" >&2; exit 2; }

FAILED=0
pass() { printf 'PASS %s: %s\n' "$1" "$2" | tee -a "$LOG"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s: %s\n' "$1" "$2" | tee -a "$LOG"; }
oneline() { tr '\n' ' ' | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-300; }

WORK=$(mktemp -d /tmp/uplinkd-sd-check.XXXXXX) NSPAWN_PID= LEADER= MACHINE=uplinkd-sdc-$$
cleanup() {
    local rc=$?
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        [ -n "$LEADER" ] && timeout 10 nsenter -t "$LEADER" -a -- systemctl poweroff >/dev/null 2>&1
        for _ in $(seq 1 40); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$NSPAWN_PID" 2>/dev/null && kill -KILL "$NSPAWN_PID" 2>/dev/null
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    rmdir "/run/systemd/nspawn/propagate/$MACHINE" 2>/dev/null
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The rootfs: Debian 12 from the host's own Debian sources (one-line and deb822 formats).
MIRRORS=$({
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'function flush() { if (uris != "" && suites != "") { n = split(uris, u, " "); m = split(suites, s, " ");
                                for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print "deb " u[i] " " s[j] " main" }
                              uris = suites = "" }
             /^[ \t]*$/ { flush(); next }
             /^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
             /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
             END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { u = $2; s = $3; if (u ~ /^\[/) { u = $3; s = $4 } print "deb " u " " s " main" }' "$f"
    done
} | awk '$2 ~ /\/debian(-security)?\/?$/ && $3 ~ /^bookworm/' | sort -u)
[ -n "$MIRRORS" ] || { echo "check-systemd: no Debian bookworm apt sources on this host" >&2; exit 2; }
ROOTFS=$CACHE/rootfs-$(printf '%s\n%s\n' "$MIRRORS" "$PKGS" | sha256sum | cut -c1-12)
if [ ! -f "$ROOTFS/.ok" ]; then
    rm -rf "$ROOTFS.new" "$ROOTFS"
    mapfile -t mlines <<<"$MIRRORS"
    t=$(date +%s)
    mmdebstrap --variant=minbase --mode=root --include="$PKGS" bookworm "$ROOTFS.new" "${mlines[@]}" >>"$LOG" 2>&1 ||
        { fail rootfs "mmdebstrap failed (see $LOG)"; exit 1; }
    touch "$ROOTFS.new/.ok" && mv "$ROOTFS.new" "$ROOTFS"
    pass rootfs "Debian 12 built with mmdebstrap in $(($(date +%s) - t)) s"
fi
mkdir -p "$WORK/dist" && cp "$DEB" "$WORK/dist/uplinkd.deb"

# Boot. No systemd on the host: --register=no --keep-unit; --volatile=overlay keeps the cached
# rootfs read-only under a tmpfs, so every run starts from the same tree.
systemd-nspawn --boot --directory="$ROOTFS" --volatile=overlay --private-network --register=no \
    --keep-unit --console=passive --machine="$MACHINE" --bind-ro="$WORK/dist:/mnt/dist" >"$WORK/nspawn.log" 2>&1 &
NSPAWN_PID=$!
for _ in $(seq 1 100); do
    LEADER=$(pgrep -P "$NSPAWN_PID" | head -1)
    [ -n "$LEADER" ] && [ "$(cat /proc/"$LEADER"/comm 2>/dev/null)" = systemd ] && break
    LEADER=; sleep 0.2
done
ct() { timeout 120 nsenter -t "$LEADER" -a -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"; }
cts() { ct bash -c "$1"; }
state=
for _ in $(seq 1 120); do
    [ -n "$LEADER" ] || break
    state=$(ct systemctl is-system-running --wait 2>/dev/null)
    case $state in running | degraded) break ;; esac
    sleep 0.5
done
case $state in
running | degraded) pass boot "$(ct systemctl --version | head -1) is PID 1, state $state" ;;
*) fail boot "systemd did not come up (state '${state:-none}'): $(oneline <"$WORK/nspawn.log")"; exit 1 ;;
esac
prop() { ct systemctl show -P "$1" uplinkd; }
cursor() { ct journalctl -q -n 0 --show-cursor | sed -n 's/^-- cursor: //p'; }
since() { ct journalctl -q --no-pager -o cat --after-cursor="$1" -u uplinkd; }
sock() { cts 'stat -c "%a %U:%G" /run/uplinkd/uplinkd.sock 2>&1'; }
# routing: what uplinkd owns in the kernel (protocol 85 rules and routes, its nftables table).
owned() { cts 'ip rule | grep -c "proto 85"; ip route show table all proto 85 | wc -l; nft list table inet uplinkd >/dev/null 2>&1 && echo table || echo no-table'; }

# Install, and two uplinks on veth pairs whose far ends (the ISPs, with the probe targets) sit in
# network namespaces inside the container.
out=$(ct dpkg -i /mnt/dist/uplinkd.deb 2>&1) || { fail install "dpkg -i: $(echo "$out" | tail -3 | oneline)"; exit 1; }
cts 'set -e
for i in 1 2; do
    ip netns add isp$i
    ip link add eth$i type veth peer name up0 netns isp$i
    ip -n isp$i link set lo up
    ip -n isp$i addr add 203.0.113.53/32 dev lo
    ip -n isp$i addr add 203.0.113.54/32 dev lo
done
ip addr add 192.0.2.2/24 dev eth1; ip link set eth1 up
ip addr add 198.51.100.2/24 dev eth2; ip link set eth2 up
ip -n isp1 addr add 192.0.2.1/24 dev up0; ip -n isp1 link set up0 up
ip -n isp2 addr add 198.51.100.1/24 dev up0; ip -n isp2 link set up0 up
printf "[defaults]\ntargets = [\"203.0.113.53\", \"203.0.113.54\"]\nquorum = 1\n" >/etc/uplinkd/uplinkd.toml
for i in 1 2; do
    printf "\n[[uplink]]\nname = \"isp%s\"\ninterface = \"eth%s\"\ngateway = \"%s\"\npriority = %s\n" \
        $i $i $([ $i = 1 ] && echo 192.0.2.1 || echo 198.51.100.1) $i >>/etc/uplinkd/uplinkd.toml
done
cp /etc/uplinkd/uplinkd.toml /root/good.toml
useradd -m -G uplinkd member; useradd -m other' >>"$LOG" 2>&1 || { fail setup "the test network (see $LOG)"; exit 1; }

# 1. start: READY after the first verdict, the socket in the group.
c=$(cursor)
out=$(ct systemctl start uplinkd 2>&1); rc=$?
if [ $rc = 0 ] && [ "$(prop SubState)" = running ] && [ "$(sock)" = "660 root:uplinkd" ]; then
    pass start "systemctl start rc 0, status \"$(prop StatusText)\", socket $(sock)"
else
    fail start "rc $rc, $(prop ActiveState)/$(prop SubState), socket $(sock): $(echo "$out" | oneline) $(since "$c" | tail -3 | oneline)"
    ct journalctl -b --no-pager -n 60 >>"$LOG" 2>&1
fi
PID0=$(prop MainPID)

# 2. status: root and members read it, others are refused; members may not change anything.
out=$(ct uplinkctl status 2>&1); rc=$?
m=$(ct runuser -u member -- uplinkctl status 2>&1); mrc=$?
o=$(ct runuser -u other -- uplinkctl status 2>&1); orc=$?
r=$(ct runuser -u member -- uplinkctl reload 2>&1); rrc=$?
if [ $rc = 0 ] && echo "$out" | grep -q 'isp1 .* up' && [ $mrc = 0 ] && [ $orc != 0 ] && [ $rrc != 0 ]; then
    pass status "root and a member read it ($(echo "$out" | grep '^active' | oneline)); other refused (rc $orc); member's reload refused (rc $rrc)"
else
    fail status "root rc $rc, member rc $mrc, other rc $orc, member reload rc $rrc: $(echo "$out$m" | head -4 | oneline)"
fi

# 3. reload: a good file applies, a broken one fails the reload with the reason and the old
# configuration keeps running.
c=$(cursor)
ct sed -i 's/^quorum = 1/quorum = 2/' /etc/uplinkd/uplinkd.toml
out=$(ct systemctl reload uplinkd 2>&1); rc=$?
if [ $rc = 0 ] && since "$c" | grep -q 'configuration reloaded' && [ "$(prop MainPID)" = "$PID0" ]; then
    pass reload-good "systemctl reload rc 0, same process"
else
    fail reload-good "rc $rc: $(echo "$out" | oneline); $(since "$c" | tail -2 | oneline)"
fi
cts 'printf "\n[[uplink]]\nname = \"isp3\"\ninterface = \"eth1\"\nweight = 300\n" >>/etc/uplinkd/uplinkd.toml'
out=$(ct systemctl reload uplinkd 2>&1); rc=$?
why=$(ct systemctl status uplinkd --no-pager -l -n 20 2>&1 | grep -m1 'weight')
if [ $rc != 0 ] && [ -n "$why" ] && [ "$(prop SubState)" = running ] && ! ct uplinkctl status | grep -q isp3; then
    pass reload-broken "systemctl reload rc $rc, the reason shown: $(echo "$why" | sed 's/^.*uplinkctl\[[0-9]*\]: //' | oneline); still running without isp3"
else
    fail reload-broken "rc $rc, reason '$why', $(prop SubState)"
fi
ct cp /root/good.toml /etc/uplinkd/uplinkd.toml
ct systemctl reload uplinkd >/dev/null 2>&1

# 4. structured journal fields.
n=$(ct journalctl -u uplinkd UPLINK=isp1 -q --no-pager -o cat | wc -l)
if [ "$n" -gt 0 ]; then
    pass journal "journalctl -u uplinkd UPLINK=isp1: $n entries, e.g. $(ct journalctl -u uplinkd UPLINK=isp1 -q --no-pager -o cat -n 1 | oneline)"
else
    fail journal "no entry with UPLINK=isp1"
fi

# 4b. state: a drain outlives a restart (StateDirectory=, /var/lib/uplinkd/state.json, root's).
out=$(ct uplinkctl drain isp2 2>&1); rc=$?
ct systemctl restart uplinkd; rrc=$?
st=$(cts 'stat -c "%a %U" /var/lib/uplinkd /var/lib/uplinkd/state.json 2>&1 | tr "\n" " "')
if [ $rc = 0 ] && [ $rrc = 0 ] && ct uplinkctl status | grep -q 'isp2 .*DRAINED' && [ "$st" = "700 root 600 root " ]; then
    pass state "drain isp2, systemctl restart: still drained; /var/lib/uplinkd and state.json: $st"
else
    fail state "drain rc $rc, restart rc $rrc, state files '$st': $(ct uplinkctl status 2>&1 | head -4 | oneline) $(echo "$out" | oneline)"
fi
ct uplinkctl undrain isp2 >/dev/null 2>&1

# 5. stop: quick, and routing stays (fail static).
before=$(owned)
t=$(date +%s%N)
ct systemctl stop uplinkd; rc=$?
ms=$((($(date +%s%N) - t) / 1000000))
if [ $rc = 0 ] && [ "$(owned)" = "$before" ] && [ "$(echo "$before" | head -1)" -gt 0 ]; then
    pass stop "rc 0 in $ms ms; routing left in place: $(echo "$before" | oneline) (rules, routes, nft)"
else
    fail stop "rc $rc in $ms ms; owned before: $(echo "$before" | oneline), after: $(owned | oneline)"
fi

# 6. exposure.
score=$(ct systemd-analyze security uplinkd --no-pager 2>&1 | sed -n 's/.*Overall exposure level for uplinkd.service: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    pass security "systemd-analyze security: $score"
else
    fail security "score '${score:-none}', want at most 2.0"
fi

# 7. without the group: it starts anyway, the socket is root-only, and it says why.
ct groupdel uplinkd >>"$LOG" 2>&1 || ct gpasswd -d member uplinkd >>"$LOG" 2>&1
ct groupdel uplinkd >>"$LOG" 2>&1
c=$(cursor)
out=$(ct systemctl start uplinkd 2>&1); rc=$?
if [ $rc = 0 ] && [ "$(prop SubState)" = running ] && [ "$(sock)" = "600 root:root" ] && since "$c" | grep -q 'root-only'; then
    pass start-no-group "rc 0, socket $(sock), $(since "$c" | grep -m1 'root-only' | cut -c1-160)"
else
    fail start-no-group "rc $rc, $(prop SubState), socket $(sock): $(since "$c" | tail -3 | oneline)"
fi

# 8. purge, with the daemon enabled and running: nothing of uplinkd is left, in the kernel either.
cts 'groupadd --system uplinkd; systemctl enable --now uplinkd' >>"$LOG" 2>&1
out=$(ct env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q uplinkd 2>&1); rc=$?
log_left=$(cts 'for p in /lib/systemd/system/uplinkd.service /etc/systemd/system/multi-user.target.wants/uplinkd.service \
        /etc/uplinkd /usr/sbin/uplinkd /usr/bin/uplinkctl /run/uplinkd /var/lib/uplinkd; do [ -e "$p" ] && echo "$p"; done
    pgrep -x uplinkd >/dev/null && echo process; true' | oneline)
kernel=$(owned | oneline)
if [ $rc = 0 ] && [ -z "$log_left" ] && [ "$kernel" = "0 0 no-table" ]; then
    pass purge "apt-get purge rc 0: no files, no process; kernel: 0 rules, 0 routes, no table inet uplinkd"
else
    fail purge "rc $rc; left: $log_left; kernel (rules, routes, table): $kernel; $(echo "$out" | tail -2 | oneline)"
fi

printf 'SUMMARY: %d failed in %d s (details: %s)\n' "$FAILED" "$(($(date +%s) - T0))" "$LOG"
[ "$FAILED" = 0 ]
