package netlab

import (
	"context"
	"os"
	"testing"
	"time"
)

// SkipReason is the message root-only tests skip with.
const SkipReason = "needs root: builds network namespaces"

// ForTest builds a lab for t, or skips t when not root. The lab is removed when t ends, and if
// t failed the gateway's addresses, routes, rules and nftables are logged first.
func ForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(SkipReason)
	}
	l, err := New(opts)
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway state at failure:\n%s", l.Dump(RoleGW))
		}
		if err := l.Close(); err != nil {
			t.Errorf("remove lab: %v", err)
		}
	})
	return l
}

// Dump returns what `ip addr`, `ip rule`, `ip route show table all` (both families) and
// `nft list ruleset` say in role's namespace, for failure reports.
func (l *Lab) Dump(role string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s string
	for _, args := range [][]string{
		{"ip", "-br", "addr"}, {"ip", "rule"}, {"ip", "-6", "rule"},
		{"ip", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
		{"nft", "list", "ruleset"},
	} {
		out, err := l.Exec(ctx, role, args...)
		s += "$ " + joinArgs(args) + "\n" + string(out)
		if err != nil {
			s += err.Error() + "\n"
		}
	}
	return s
}

func joinArgs(a []string) string {
	s := ""
	for i, x := range a {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}
