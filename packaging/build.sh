#!/bin/sh
# Build uplinkd and uplinkctl, their man pages and the Debian changelog, and package it all as
# a .deb and an .rpm in dist/.
#
#   packaging/build.sh                          # version from git describe, host architecture
#   VERSION=1.2.3 GOARCH=arm64 packaging/build.sh
#   FORMATS=deb packaging/build.sh              # only the .deb
set -eu

cd "$(dirname "$0")/.."

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2 # newer versions need modules the proxy refuses
MD2MAN=github.com/cpuguy83/go-md2man/v2@v2.0.7
VERSIONPKG=github.com/uplinkd/uplinkd/internal/version
MAINTAINER="uplinkd maintainers <maintainers@users.noreply.github.com>" # as in nfpm.yaml
GOARCH=${GOARCH:-$(go env GOARCH)}
FORMATS=${FORMATS:-deb rpm}

COMMIT=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
if [ -z "${VERSION:-}" ]; then
    # Packages want a version that starts with a digit and sorts after the release it follows:
    #   tag v1.2.3                  → 1.2.3
    #   5 commits after v1.2.3      → 1.2.3+git.5.<hash>
    #   no tag yet                  → 0.0.0+git.<hash>
    # and a build from a modified tree ends in .dirty (+dirty on a tag).
    desc=$(git describe --tags --match 'v[0-9]*' --long --dirty 2>/dev/null) || desc=
    dirty=
    case $desc in *-dirty) dirty=yes; desc=${desc%-dirty} ;; esac
    if [ -n "$desc" ]; then
        hash=${desc##*-g}; rest=${desc%-g*}
        count=${rest##*-}; tag=${rest%-*}
        VERSION=${tag#v}
        [ "$count" = 0 ] || VERSION="$VERSION+git.$count.$hash"
    else
        [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=yes
        VERSION="0.0.0+git.$COMMIT"
    fi
    if [ -n "$dirty" ]; then
        case $VERSION in *+*) VERSION="$VERSION.dirty" ;; *) VERSION="$VERSION+dirty" ;; esac
    fi
fi
# Reproducible: dates come from the commit, not the clock.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export VERSION GOARCH SOURCE_DATE_EPOCH

mkdir -p dist/bin dist/tools
for cmd in uplinkd uplinkctl; do
    echo "build: $cmd $VERSION ($COMMIT) linux/$GOARCH"
    rm -f "dist/bin/$cmd" # go build will not overwrite a file that is not a Go binary
    CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X $VERSIONPKG.Version=$VERSION -X $VERSIONPKG.Commit=$COMMIT" \
        -o "dist/bin/$cmd" "./cmd/$cmd"
done

# The tools run on this machine, whatever GOARCH the packages are for.
if [ ! -x dist/tools/nfpm ]; then
    GOBIN="$PWD/dist/tools" GOOS= GOARCH= CGO_ENABLED=0 go install "$NFPM"
fi
GOBIN="$PWD/dist/tools" GOOS= GOARCH= CGO_ENABLED=0 go install "$MD2MAN"

# Man pages: packaging/man/NAME.SECTION.md → dist/man/NAME.SECTION.gz
rm -rf dist/man && mkdir -p dist/man
mandate=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d 2>/dev/null || date -u +%Y-%m-%d)
for md in packaging/man/*.md; do
    page=$(basename "$md" .md)
    echo "man: $page"
    sed -e "s/@VERSION@/$VERSION/g" -e "s/@DATE@/$mandate/g" "$md" |
        dist/tools/go-md2man -out "dist/man/$page"
    gzip -9nf "dist/man/$page"
done

# Debian changelog (native package: changelog.gz). packaging/changelog holds the released
# versions, newest first, and may start with an UNRELEASED entry for the coming release. The
# package's entry always carries the build's version: a release uses its own entry; any other
# build gets the UNRELEASED notes (or a new entry) under its snapshot version.
chdate=$(date -u -R -d "@$SOURCE_DATE_EPOCH" 2>/dev/null || date -u -R)
top=$(sed -n '1s/^uplinkd (\([^)]*\)) \([^;]*\);.*/\1 \2/p' packaging/changelog)
topver=${top% *}
topdist=${top#* }
[ -n "$top" ] || { echo "packaging/changelog: cannot read its first line" >&2; exit 1; }
if [ "$topdist" = UNRELEASED ]; then
    awk -v ver="$VERSION" -v date="$chdate" -v commit="$COMMIT" -v release="$topver" '
        NR == 1 { print "uplinkd (" ver ") unstable; urgency=medium"; next }
        NR == 2 && ver != release { print; print "  * Snapshot built from commit " commit "; these notes are for " release "."; next }
        !done && /^ -- / { sub(/>  .*/, ">  " date); done = 1 }
        { print }' packaging/changelog >dist/changelog
elif [ "$topver" = "$VERSION" ]; then
    cp packaging/changelog dist/changelog
else
    {
        printf 'uplinkd (%s) unstable; urgency=medium\n\n' "$VERSION"
        printf '  * Snapshot built from commit %s, after %s.\n\n' "$COMMIT" "$topver"
        printf ' -- %s  %s\n\n' "$MAINTAINER" "$chdate"
        cat packaging/changelog
    } >dist/changelog
fi
# The same entries for the .rpm's %changelog, in the chglog YAML nfpm reads; rpm names a
# build version-release, and nfpm's release is 1.
awk -v q='"' '
    function esc(s) { gsub(/\\/, "\\\\", s); gsub(q, "\\" q, s); return s }
    function flush() { if (note != "") print "    - note: " q esc(note) q; note = "" }
    /^uplinkd \(/ { v = $2; gsub(/[()]/, "", v); print "- semver: " q v "-1" q; print "  changes:"; next }
    /^  \* / { flush(); note = substr($0, 5); next }
    /^    [^ ]/ && note != "" { sub(/^ +/, ""); note = note " " $0; next }
    /^ -- / {
        flush()
        who = $0; sub(/^ -- /, "", who); sub(/>  .*/, ">", who)
        when = $0; sub(/.*>  /, "", when)
        cmd = "date -u -d " q when q " +%Y-%m-%dT%H:%M:%SZ"; cmd | getline iso; close(cmd)
        print "  packager: " q esc(who) q; print "  date: " iso
    }' dist/changelog >dist/changelog.yml
gzip -9nf dist/changelog
{ cat packaging/nfpm.yaml; echo "changelog: dist/changelog.yml # rpm only: nfpm would add changelog.Debian.gz to the .deb"; } >dist/nfpm-rpm.yaml

for format in $FORMATS; do
    config=packaging/nfpm.yaml
    [ "$format" = rpm ] && config=dist/nfpm-rpm.yaml
    dist/tools/nfpm package -f "$config" -p "$format" -t dist/
done
