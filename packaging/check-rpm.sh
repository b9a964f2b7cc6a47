#!/bin/sh
# Build the .rpm and check it with rpmlint (Debian package rpmlint, or Fedora's), with the
# settings in packaging/rpmlint.toml. Any remaining error or warning fails.
#
#   packaging/check-rpm.sh                                   # build, then check
#   RPM=dist/uplinkd-1.2.3-1.x86_64.rpm packaging/check-rpm.sh
set -eu

cd "$(dirname "$0")/.."

fail() { echo "check-rpm: FAIL: $*" >&2; exit 1; }

command -v rpmlint >/dev/null 2>&1 || fail "rpmlint is not installed (apt-get install rpmlint python3-magic)"
if [ -n "${RPM:-}" ]; then
    rpm=$RPM
else
    rm -f dist/uplinkd-*.rpm
    FORMATS=rpm packaging/build.sh
    rpm=$(ls dist/uplinkd-*.rpm)
fi
# rpmlint unpacks the package with `rpm2cpio | cpio -id` in a temporary directory, but nfpm's
# payload names are absolute (/etc/uplinkd/…, not ./etc/…), and GNU cpio then writes them into
# the host's root: the shipped config, binaries and unit land on the machine that runs the
# check. A cpio that refuses absolute names keeps the unpacking in rpmlint's directory.
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
real_cpio=$(command -v cpio) || fail "cpio is not installed"
printf '#!/bin/sh\nexec %s --no-absolute-filenames "$@"\n' "$real_cpio" >"$shim/cpio"
chmod 755 "$shim/cpio"
out=$(PATH="$shim:$PATH" rpmlint -c packaging/rpmlint.toml "$rpm" 2>&1) || true
echo "$out"
echo "$out" | grep -q ' 0 errors, 0 warnings' || fail "rpmlint found errors or warnings in $rpm"
for f in /etc/uplinkd/uplinkd.toml /usr/sbin/uplinkd; do
    if [ -e "$f" ] && ! dpkg -S "$f" >/dev/null 2>&1 && ! rpm -qf "$f" >/dev/null 2>&1; then
        fail "$f appeared on this machine while rpmlint checked the package"
    fi
done
echo "check-rpm: ok"
