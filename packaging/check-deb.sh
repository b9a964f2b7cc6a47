#!/bin/sh
# CI check of the .deb, run as root on Debian: build it, check its contents and conffile, run
# lintian on it (any error or warning fails), install it with dpkg -i, validate the shipped
# configuration with uplinkd --check, check the command-line conventions, remove and purge it. It refuses to run where uplinkd is already installed, so it never touches a real
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
    '-rw-r--r-- root/root .* ./usr/lib/sysusers.d/uplinkd.conf$' \
    '-rw-r--r-- root/root .* ./usr/share/doc/uplinkd/copyright$' \
    '-rw-r--r-- root/root .* ./usr/share/doc/uplinkd/changelog.gz$' \
    '-rw-r--r-- root/root .* ./usr/share/lintian/overrides/uplinkd$' \
    '-rw-r--r-- root/root .* ./usr/share/man/man8/uplinkd.8.gz$' \
    '-rw-r--r-- root/root .* ./usr/share/man/man1/uplinkctl.1.gz$' \
    '-rw-r--r-- root/root .* ./usr/share/man/man5/uplinkd.toml.5.gz$' \
    '-rw-r--r-- root/root .* ./usr/share/bash-completion/completions/uplinkctl$' \
    '-rw-r--r-- root/root .* ./usr/share/zsh/vendor-completions/_uplinkctl$' \
    '-rw-r--r-- root/root .* ./usr/share/fish/vendor_completions.d/uplinkctl.fish$'; do
    grep -q -- "$want" dist/contents.txt || fail "package lacks $want"
done
ctl=$(mktemp -d)
dpkg-deb --control "$deb" "$ctl"
grep -qx /etc/uplinkd/uplinkd.toml "$ctl/conffiles" || fail "/etc/uplinkd/uplinkd.toml is not a conffile"
for script in postinst prerm postrm; do
    [ -x "$ctl/$script" ] || fail "no $script maintainer script"
done
version=$(dpkg-deb --field "$deb" Version)

step "changelog: dpkg-parsechangelog reads it and it names the package's version ($version)"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/uplinkd/changelog.gz | gzip -dc >"$ctl/changelog"
chversion=$(dpkg-parsechangelog -l "$ctl/changelog" -S Version) || fail "dpkg-parsechangelog cannot read the changelog"
[ "$chversion" = "$version" ] || fail "the changelog's version $chversion is not the package's $version"
rm -rf "$ctl"

step "lintian"
command -v lintian >/dev/null 2>&1 || fail "lintian is not installed (apt-get install lintian)"
# --fail-on error,warning: any E: or W: fails; I: (info) and overridden tags are shown only.
rc=0
lintian --fail-on error,warning --display-info --info "$deb" >dist/lintian.txt 2>&1 || rc=$?
grep -v '^running with root privileges' dist/lintian.txt || true
if [ "$rc" -ne 0 ] || grep -q '^[EW]: ' dist/lintian.txt; then
    fail "lintian found errors or warnings in $deb (exit $rc)"
fi

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
# A conffile nobody installed would stop dpkg at a prompt: say whose it is instead.
if [ -e /etc/uplinkd/uplinkd.toml ]; then
    stat /etc/uplinkd/uplinkd.toml; head -20 /etc/uplinkd/uplinkd.toml
    fail "/etc/uplinkd/uplinkd.toml exists but no package installed it: remove it (and find what wrote it) first"
fi
installed=yes
dpkg -i "$deb"
getent group uplinkd >/dev/null || fail "postinst did not create the group uplinkd"
[ ! -e /etc/systemd/system/multi-user.target.wants/uplinkd.service ] || fail "the package enabled the service"
if [ -d /run/systemd/system ] && systemctl is-active --quiet uplinkd.service; then
    fail "the package started the service before it was configured"
fi
step "command-line conventions"
for cmd in "/usr/bin/uplinkctl --version" "/usr/bin/uplinkctl version" "/usr/sbin/uplinkd --version"; do
    out=$($cmd) || fail "$cmd failed"
    echo "$out"
    echo "$out" | grep -qF " $version (commit " || fail "$cmd does not name version $version: $out"
done
err=$(/usr/sbin/uplinkd --help 2>&1 >/dev/null) || fail "uplinkd --help exited non-zero"
[ -z "$err" ] || fail "uplinkd --help wrote to stderr: $err"
/usr/bin/uplinkctl status --help | grep -q '^usage: uplinkctl .*status' || fail "uplinkctl status --help did not print its usage"
for page in uplinkd.8 uplinkctl.1 uplinkd.toml.5; do
    name=${page%.*} section=${page##*.}
    man -w "$section" "$name" >/dev/null 2>&1 || ! command -v man >/dev/null || fail "man $section $name finds no page"
done

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
if ls /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q uplinkd; then
    fail "purge left deb-systemd-helper state behind"
fi

step "ok"
