package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/uplinkd/uplinkd/uplink"
)

type rawHook struct {
	Name    string    `toml:"name"`
	Events  []string  `toml:"events"`
	Command []string  `toml:"command"`
	Timeout *duration `toml:"timeout"`
}

// parseHooks validates [[hook]]. Whether the program exists is not checked here: a reload must
// not be refused because a hook's program is missing (hooks never steer routing);
// uplinkd --check says so as an error, the daemon as a warning.
func parseHooks(raw []rawHook, fail func(string, string, ...any)) []uplink.Hook {
	var out []uplink.Hook
	names := map[string]int{}
	for i, r := range raw {
		k := func(name string) string { return fmt.Sprintf("hook.%d.%s", i, name) }
		h := uplink.Hook{Name: r.Name, Command: r.Command, Timeout: uplink.DefaultHookTimeout}
		switch {
		case len(r.Command) == 0:
			fail(fmt.Sprintf("hook.%d", i), "hook #%d has no command: give command = [\"/path/to/program\", \"arg\"...]", i+1)
		case !filepath.IsAbs(r.Command[0]) || filepath.Clean(r.Command[0]) != r.Command[0]:
			fail(k("command"), "%q is not an absolute, clean path: hooks run without a shell or PATH search", r.Command[0])
		}
		if h.Name == "" && len(r.Command) > 0 {
			h.Name = filepath.Base(r.Command[0])
		}
		switch {
		case h.Name == "":
		case !validHookName.MatchString(h.Name):
			fail(k("name"), "%q is not a valid name: use letters, digits, '.', '-' and '_' (at most 64)", h.Name)
		case names[h.Name] > 0 && r.Name == "":
			fail(fmt.Sprintf("hook.%d", i), "hook #%d would be called %q like hook #%d: give it a name", i+1, h.Name, names[h.Name])
		case names[h.Name] > 0:
			fail(k("name"), "duplicate hook name %q (also hook #%d)", h.Name, names[h.Name])
		default:
			names[h.Name] = i + 1
		}
		if len(r.Events) == 0 {
			fail(fmt.Sprintf("hook.%d", i), "hook %q has no events: give events = [%s] or a subset", h.Name, quoteAll(uplink.HookEvents))
		}
		for _, ev := range r.Events {
			switch {
			case !slices.Contains(uplink.HookEvents, ev):
				fail(k("events"), "unknown event %q (known: %s)", ev, strings.Join(uplink.HookEvents, ", "))
			case slices.Contains(h.Events, ev):
				fail(k("events"), "event %q is listed twice", ev)
			default:
				h.Events = append(h.Events, ev)
			}
		}
		if r.Timeout != nil {
			h.Timeout = r.Timeout.Duration
			if h.Timeout <= 0 || h.Timeout > uplink.MaxHookTimeout {
				fail(k("timeout"), "%s is outside 0..%s (above 0)", h.Timeout, uplink.MaxHookTimeout)
			}
		}
		out = append(out, h)
	}
	return out
}

var validHookName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}
