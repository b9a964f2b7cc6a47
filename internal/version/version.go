// Package version is the one place that knows which uplinkd this is. The build sets Version
// and Commit with the linker (packaging/build.sh):
//
//	go build -ldflags "-X github.com/uplinkd/uplinkd/internal/version.Version=1.2.3 \
//	    -X github.com/uplinkd/uplinkd/internal/version.Commit=abc1234" ./cmd/...
//
// A plain `go build` leaves Version at "dev" and takes the commit from the VCS information Go
// embeds, when there is any.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release, e.g. "1.2.3", or "0.0.0+git.abc1234" between tags.
var Version = "dev"

// Commit is the abbreviated git commit the binary was built from.
var Commit = ""

// String describes the binary for --version: "uplinkd 1.2.3 (commit abc1234, go1.26.8)".
func String(program string) string {
	return fmt.Sprintf("%s %s (commit %s, %s)", program, Version, commit(), runtime.Version())
}

// commit is Commit, else the revision Go recorded at build time, else "unknown".
func commit() string {
	if Commit != "" {
		return Commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev string
		dirty := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 7 {
			rev = rev[:7]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}
