#!/bin/sh
# CI check of the .deb, run as root on Debian: build it, check its contents and conffile,
# install it with dpkg -i, validate the shipped configuration with uplinkd --check, remove and
# purge it. It refuses to run where uplinkd is already installed, so it never touches a real
# installation, and it removes the group uplinkd again if it created it.
#
#   packaging/check-deb.sh                          # build, then check
#   DEB=dist/uplinkd_1.2.3_amd64.deb packaging/check-deb.sh   # check a package built earlier
set -eu

cd "$(dirname "$0")/.."

fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
step() { echo "check-deb: $*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
if dpkg-query -W -f '${Status}' uplinkd 2>/dev/null | grep -q 'installed\|config-files'; then
    fail "uplinkd is already installed here; not touching it"
fi

if [ -n "${DEB:-}" ]; then
    deb=$DEB # checking a package built earlier
else
    step "build"
    rm -f dist/uplinkd_*.deb
    FORMATS=deb packaging/build.sh
    deb=$(ls dist/uplinkd_*.deb)
    [ "$(echo "$deb" | wc -l)" -eq 1 ] || fail "expected one .deb in dist/, found: $deb"
fi

step "contents of $deb"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb" | tee dist/contents.txt
for want in \
    '-rwxr-xr-x root/root .* ./usr/sbin/uplinkd$' \
    '-rwxr-xr-x root/root .* ./usr/bin/uplinkctl$' \
    '-rw-r--r-- root/root .* ./lib/systemd/system/uplinkd.service$' \
    '-rw-r--r-- root/root .* ./etc/uplinkd/uplinkd.toml$' \
    '-rw-r--r-- root/root .* ./usr/share/doc/uplinkd/copyright$' \
    '-rw-r--r-- root/root .* ./usr/share/doc/uplinkd/changelog$'; do
    grep -q -- "$want" dist/contents.txt || fail "package lacks $want"
done
ctl=$(mktemp -d)
dpkg-deb --control "$deb" "$ctl"
grep -qx /etc/uplinkd/uplinkd.toml "$ctl/conffiles" || fail "/etc/uplinkd/uplinkd.toml is not a conffile"
for script in postinst prerm postrm; do
    [ -x "$ctl/$script" ] || fail "no $script maintainer script"
done
rm -rf "$ctl"

group_existed=no
getent group uplinkd >/dev/null && group_existed=yes
installed=no
cleanup() {
    if [ "$installed" = yes ]; then
        dpkg --purge uplinkd >/dev/null 2>&1 || true
    fi
    if [ "$group_existed" = no ] && getent group uplinkd >/dev/null; then
        groupdel uplinkd || true
    fi
}
trap cleanup EXIT

step "install"
installed=yes
dpkg -i "$deb"
getent group uplinkd >/dev/null || fail "postinst did not create the group uplinkd"
[ ! -e /etc/systemd/system/multi-user.target.wants/uplinkd.service ] || fail "the package enabled the service"
if [ -d /run/systemd/system ] && systemctl is-active --quiet uplinkd.service; then
    fail "the package started the service before it was configured"
fi
/usr/bin/uplinkctl version
/usr/sbin/uplinkd --version

step "uplinkd --check on the shipped configuration"
/usr/sbin/uplinkd --check --config /etc/uplinkd/uplinkd.toml || fail "uplinkd --check refused the shipped configuration"
/usr/bin/uplinkctl check-config /etc/uplinkd/uplinkd.toml || fail "uplinkctl check-config refused the shipped configuration"

step "remove (the conffile stays) and purge (it goes)"
dpkg -r uplinkd
[ ! -e /usr/sbin/uplinkd ] || fail "dpkg -r left /usr/sbin/uplinkd"
[ -e /etc/uplinkd/uplinkd.toml ] || fail "dpkg -r removed the conffile"
dpkg --purge uplinkd
installed=no
[ ! -e /etc/uplinkd/uplinkd.toml ] || fail "purge left /etc/uplinkd/uplinkd.toml"

step "ok"
