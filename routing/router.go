package routing

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Router makes the kernel's rules and routes match a Plan. It is not safe for concurrent use:
// the daemon's run loop owns it.
type Router struct {
	k   kernel
	s   Settings
	log *slog.Logger
}

// Changes reports what one Apply or Cleanup did.
type Changes struct {
	Messages int      // netlink change messages sent (dumps not counted)
	Dumps    int      // netlink dumps read
	Done     []string // one line per change, `ip` style, e.g. "replace ipv4 table 200 default via ..."
}

// NewRouter returns a Router acting through h: netlink.NewHandle() for the current
// namespace, netlink.NewHandleAt(ns) for another. log may be nil.
func NewRouter(h *netlink.Handle, s Settings, log *slog.Logger) *Router {
	return newRouter(h, s, log)
}

func newRouter(k kernel, s Settings, log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{k: k, s: s.WithDefaults(), log: log}
}

// Settings returns the settings in use, defaults filled in.
func (r *Router) Settings() Settings { return r.s }

// kernelState is what the kernel holds of ours.
type kernelState struct {
	rules  []netlink.Rule
	routes []netlink.Route
	index  map[string]int // link name → index
	names  map[int]string
}

func (r *Router) read(ch *Changes, withLinks bool) (kernelState, error) {
	var st kernelState
	for _, f := range families {
		rules, err := retryDump("rules", func() ([]netlink.Rule, error) { return r.k.RuleList(f) })
		ch.Dumps++
		if err != nil {
			return st, err
		}
		for _, ru := range rules {
			if r.s.ownedRule(ru) {
				st.rules = append(st.rules, ru)
			}
		}
	}
	routes, err := retryDump("routes", func() ([]netlink.Route, error) {
		return r.k.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: tableUnspec, Protocol: r.s.Protocol},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	})
	ch.Dumps++
	if err != nil {
		return st, err
	}
	for _, ro := range routes {
		if r.s.ownedRoute(ro) {
			st.routes = append(st.routes, ro)
		}
	}
	if withLinks {
		links, err := retryDump("links", r.k.LinkList)
		ch.Dumps++
		if err != nil {
			return st, err
		}
		st.index = make(map[string]int, len(links))
		st.names = make(map[int]string, len(links))
		for _, l := range links {
			st.index[l.Attrs().Name] = l.Attrs().Index
			st.names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	return st, nil
}

// Apply makes the kernel hold exactly the plan's rules and routes among the entries we own,
// with as few messages as it can: nothing when they already match, one replace per family on
// a failover. It carries on past a failed message and returns all failures joined.
func (r *Router) Apply(p Plan) (Changes, error) {
	var ch Changes
	if err := r.s.Validate(); err != nil {
		return ch, err
	}
	st, err := r.read(&ch, true)
	if err != nil {
		return ch, err
	}
	var errs []error // the plan's Problems are the caller's to report: it knows when they are news

	// Routes first, so that a rule never points at a table we have not filled yet.
	have := map[routeSlot][]netlink.Route{}
	for _, ro := range st.routes {
		have[slotOf(ro)] = append(have[slotOf(ro)], ro)
	}
	want := map[routeSlot]bool{}
	for _, pr := range p.Routes {
		nr, missing := r.s.toNetlinkRoute(pr, st.index)
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("routing: %s: interface %v not found", pr, missing))
		}
		if nr == nil {
			continue // no hop left: keep whatever the kernel holds in that slot
		}
		slot := slotOf(*nr)
		want[slot] = true
		cur := have[slot]
		if len(cur) == 1 && routeContent(cur[0]) == routeContent(*nr) {
			continue
		}
		if err := r.routeReplace(&ch, nr, st.names); err != nil {
			errs = append(errs, err)
			continue
		}
		// One owned route in the slot was just overwritten; more than one can only be left by
		// someone else's appends, and those go.
		if len(cur) > 1 {
			for i := range cur {
				if routeContent(cur[i]) != routeContent(*nr) {
					errs = append(errs, r.routeDel(&ch, &cur[i], st.names))
				}
			}
		}
	}

	// Rules: add what is missing, then delete what is ours and not wanted.
	haveRules := map[string]netlink.Rule{}
	for _, ru := range st.rules {
		haveRules[ruleKey(ru)] = ru
	}
	wantRules := map[string]bool{}
	for _, pr := range p.Rules {
		nr := r.s.toNetlinkRule(pr)
		key := ruleKey(*nr)
		wantRules[key] = true
		if _, ok := haveRules[key]; ok {
			continue
		}
		ch.Messages++
		if err := r.k.RuleAdd(nr); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("routing: add rule %s: %w", describeRule(nr), err))
			continue
		}
		ch.Done = append(ch.Done, "add rule "+describeRule(nr))
	}
	for _, key := range sortedKeys(haveRules) {
		if !wantRules[key] {
			ru := haveRules[key]
			errs = append(errs, r.ruleDel(&ch, &ru))
		}
	}

	// Finally the routes we own and no longer want, except an active route we were told to keep.
	var stale []routeSlot
	for slot := range have {
		// hasRoute: the plan wants this slot but could not build it (its interfaces are gone):
		// keep the old route rather than leave the gateway without a default route.
		if want[slot] || hasRoute(p, slot) || slot.table == r.s.ActiveTable && p.keeps(slot.family) {
			continue
		}
		stale = append(stale, slot)
	}
	sort.Slice(stale, func(i, j int) bool { return stale[i].String() < stale[j].String() })
	for _, slot := range stale {
		for i := range have[slot] {
			errs = append(errs, r.routeDel(&ch, &have[slot][i], st.names))
		}
	}

	for _, d := range ch.Done {
		r.log.Info("routing: "+d, "component", "routing")
	}
	return ch, errors.Join(errs...)
}

// hasRoute reports whether the plan asks for a route in slot (whether or not it could be built).
func hasRoute(p Plan, slot routeSlot) bool {
	for _, pr := range p.Routes {
		if pr.Family == slot.family && pr.Table == slot.table && pr.Metric == slot.metric {
			return true
		}
	}
	return false
}

// Cleanup removes every rule and route we own, and nothing else.
func (r *Router) Cleanup() (Changes, error) {
	var ch Changes
	if err := r.s.Validate(); err != nil {
		return ch, err
	}
	st, err := r.read(&ch, false)
	if err != nil {
		return ch, err
	}
	var errs []error
	// Rules first, so no rule points at a table being emptied.
	for i := range st.rules {
		errs = append(errs, r.ruleDel(&ch, &st.rules[i]))
	}
	for i := range st.routes {
		errs = append(errs, r.routeDel(&ch, &st.routes[i], nil))
	}
	for _, d := range ch.Done {
		r.log.Info("routing: cleanup: "+d, "component", "routing")
	}
	return ch, errors.Join(errs...)
}

func (r *Router) routeReplace(ch *Changes, nr *netlink.Route, names map[int]string) error {
	ch.Messages++
	if err := r.k.RouteReplace(nr); err != nil {
		return fmt.Errorf("routing: replace route %s: %w", describeRoute(nr, names), err)
	}
	ch.Done = append(ch.Done, "replace route "+describeRoute(nr, names))
	return nil
}

// routeDel deletes a route we own; already gone is success.
func (r *Router) routeDel(ch *Changes, ro *netlink.Route, names map[int]string) error {
	ch.Messages++
	if err := r.k.RouteDel(ro); err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("routing: delete route %s: %w", describeRoute(ro, names), err)
	}
	ch.Done = append(ch.Done, "delete route "+describeRoute(ro, names))
	return nil
}

// ruleDel deletes a rule we own; already gone is success.
func (r *Router) ruleDel(ch *Changes, ru *netlink.Rule) error {
	ch.Messages++
	if err := r.k.RuleDel(ru); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("routing: delete rule %s: %w", describeRule(ru), err)
	}
	ch.Done = append(ch.Done, "delete rule "+describeRule(ru))
	return nil
}
