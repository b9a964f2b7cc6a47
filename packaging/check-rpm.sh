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
out=$(rpmlint -c packaging/rpmlint.toml "$rpm" 2>&1) || true
echo "$out"
echo "$out" | grep -q ' 0 errors, 0 warnings' || fail "rpmlint found errors or warnings in $rpm"
echo "check-rpm: ok"
