package testkit

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// Pair builds a gateway pair (netlab.NewPair) for t, or skips t when not root or when keepalived or conntrackd is
// missing. The pair is removed when t ends; if t failed, both boxes' logs and state are logged.
func Pair(t testing.TB, opts netlab.PairOptions) *netlab.Pair {
	t.Helper()
	NeedRoot(t)
	for _, bin := range []string{"keepalived", "conntrackd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (apt install keepalived conntrackd)", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := netlab.NewPair(ctx, opts)
	if err != nil {
		t.Fatalf("build pair: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, b := range netlab.Boxes {
				t.Logf("%s at failure:\n%s\n%s", b, p.Logs(b), p.Dump(b.Role()))
			}
		}
		if err := p.Close(); err != nil {
			t.Errorf("remove pair: %v", err)
		}
	})
	return p
}
