package netlab

import (
	"context"
	"time"
)

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
