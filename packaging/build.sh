#!/bin/sh
# Build uplinkd and uplinkctl and package them as a .deb and an .rpm in dist/.
#
#   packaging/build.sh                          # version from git describe, host architecture
#   VERSION=1.2.3 GOARCH=arm64 packaging/build.sh
#   FORMATS=deb packaging/build.sh              # only the .deb
set -eu

cd "$(dirname "$0")/.."

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2 # newer versions need modules the proxy refuses
GOARCH=${GOARCH:-$(go env GOARCH)}
FORMATS=${FORMATS:-deb rpm}

if [ -z "${VERSION:-}" ]; then
    # Packages want a version that starts with a digit: v1.2.3 → 1.2.3; untagged → 0.0.0+git.<hash>.
    VERSION=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//') || true
    [ -n "$VERSION" ] || VERSION="0.0.0+git.$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
fi
export VERSION GOARCH

mkdir -p dist/bin dist/tools
for cmd in uplinkd uplinkctl; do
    echo "build: $cmd $VERSION linux/$GOARCH"
    rm -f "dist/bin/$cmd" # go build will not overwrite a file that is not a Go binary
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
        -o "dist/bin/$cmd" "./cmd/$cmd"
done

# nfpm runs on this machine, whatever GOARCH the packages are for.
if [ ! -x dist/tools/nfpm ]; then
    GOBIN="$PWD/dist/tools" GOOS= GOARCH= CGO_ENABLED=0 go install "$NFPM"
fi
for format in $FORMATS; do
    dist/tools/nfpm package -f packaging/nfpm.yaml -p "$format" -t dist/
done
