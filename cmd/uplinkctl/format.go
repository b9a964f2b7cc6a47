package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

// formatStatus writes the status table a person reads at a glance. now is when it was fetched,
// for "up 3m12s"; it is a parameter so the table is a pure function of its inputs.
func formatStatus(w io.Writer, st api.Status, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "uplinkd %s, running %s, config %s\n\n", orDash(st.Version), human(st.Uptime), orDash(st.Config))

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tUPLINK\tINTERFACE\tSTATE\tRTT\tLOSS\tJITTER\tMOS\tWEIGHT\tTIER\tCONNS\tNOTE")
	for _, u := range st.Uplinks {
		mark := ""
		if u.Active {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n",
			mark, u.Name, orDash(u.Interface), stateFor(u, now), rtt(u.RTT), loss(u), jitter(u), mos(u), u.Weight, u.Priority, conns(u.Connections), note(u))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	table := b.String()
	b.Reset()
	for line := range strings.Lines(table) {
		b.WriteString(strings.TrimRight(line, " \n") + "\n") // tabwriter pads empty last cells
	}

	if err := formatTargets(&b, st); err != nil {
		return err
	}

	b.WriteByte('\n')
	switch {
	case !st.Carrying():
		b.WriteString("NO UPLINK CARRIES TRAFFIC\n")
	default:
		fmt.Fprintf(&b, "active: %s\n", strings.Join(st.Active, ", "))
	}
	if st.Route4 != "" || st.Route6 != "" {
		writeRoute(&b, "IPv4:   ", st.Route4, "none (no active uplink has an IPv4 gateway)")
		writeRoute(&b, "IPv6:   ", st.Route6, "none (no active uplink has an IPv6 gateway)")
	} else {
		writeRoute(&b, "route:  ", st.ActiveRoute, "(no default route in uplinkd's table)") // an older uplinkd
	}
	if st.DNS != nil {
		for _, n := range st.DNS.Names {
			note := ""
			switch {
			case n.Fallback:
				note = "  (FALLBACK: its servers fail)"
			case n.Down && len(n.Sites) == 0:
				note = "  (its servers fail; no fallback: the uplinks' addresses still)"
			case len(n.Sites) > 0:
				note = "  (from " + strings.Join(n.Sites, ", ") + ")"
			}
			fmt.Fprintf(&b, "DNS:    %s %s%s\n", n.Name, strings.Join(n.Addrs, " "), note)
			for _, s := range n.Servers {
				line := "        server " + s.Server + " " + s.State
				if s.Site != "" {
					line = "        site " + s.Site + " " + s.Server + " " + s.State
				}
				if !s.Since.IsZero() {
					line += " " + human(now.Sub(s.Since))
				}
				if s.Reason != "" {
					line += ": " + s.Reason
				}
				fmt.Fprintln(&b, line)
			}
		}
	}
	if v := st.IPv6; v != nil {
		for _, p := range v.Prefixes {
			state := "deprecated"
			if p.Preferred {
				state = "preferred"
			}
			fmt.Fprintf(&b, "LAN6:   %s %s %s on %s\n", p.Prefix, p.Uplink, state, strings.Join(p.Interfaces, ","))
		}
		for _, t := range v.Translations {
			fmt.Fprintf(&b, "NPTv6:  %s\n", t)
		}
		for _, r := range v.LastRA {
			fmt.Fprintf(&b, "RA:     %s %s ago, preferred %s, deprecated %s\n", r.Interface, now.Sub(r.At).Round(time.Second),
				orDash(strings.Join(r.Preferred, " ")), orDash(strings.Join(r.Deprecated, " ")))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRoute writes a route as ip route prints it; multipath routes print one nexthop a line,
// indented with a tab: line them up under the first.
func writeRoute(b *strings.Builder, label, route, none string) {
	prefix := label
	for line := range strings.Lines(route) {
		if line = strings.TrimSpace(line); line != "" {
			b.WriteString(prefix + line + "\n")
			prefix = strings.Repeat(" ", len(label)+2)
		}
	}
	if prefix == label {
		b.WriteString(label + none + "\n")
	}
}

// formatTargets writes every probe target of every uplink: a dead target (one that filters
// probes, or a path that broke) is visible even while the quorum keeps its uplink up.
func formatTargets(b *strings.Builder, st api.Status) error {
	var tb strings.Builder
	tw := tabwriter.NewWriter(&tb, 0, 0, 2, ' ', 0)
	for _, u := range st.Uplinks {
		name := u.Name
		for _, t := range u.Targets {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", name, t.Address, rtt(t.RTT), targetLoss(t), targetNote(t))
			name = ""
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if tb.Len() == 0 {
		return nil
	}
	b.WriteString("\ntargets (RTT, loss over the window):\n")
	for line := range strings.Lines(tb.String()) {
		b.WriteString(strings.TrimRight(line, " \n") + "\n")
	}
	return nil
}

func targetLoss(t api.TargetStatus) string {
	if t.Samples == 0 {
		return "-"
	}
	return percent(t.Loss)
}

// targetNote flags a target that does not answer at all.
func targetNote(t api.TargetStatus) string {
	switch {
	case t.Samples == 0:
		return "not probed yet"
	case t.Loss >= 100:
		return "NO ANSWER"
	}
	return ""
}

func stateFor(u api.UplinkStatus, now time.Time) string {
	if u.Since.IsZero() {
		return u.State.String()
	}
	return u.State.String() + " " + human(now.Sub(u.Since))
}

// note says what a person needs to know beyond the state: drained, held down, and why an uplink
// is not up.
func note(u api.UplinkStatus) string {
	var parts []string
	if u.Drained {
		parts = append(parts, "DRAINED")
	}
	switch {
	case u.Metered:
		parts = append(parts, fmt.Sprintf("metered, probes %s (%s/day)", orDash(u.ProbeMode), megabytes(u.ProbeBytesPerDay)))
	case u.ProbeMode == "sparse":
		parts = append(parts, "its traffic proves it alive: one target per round")
	}
	if u.HoldDown > 0 && u.State == uplink.Down { // only while it holds the uplink down
		parts = append(parts, "held down "+human(u.HoldDown))
	}
	if u.State != uplink.Up && u.Reason != "" {
		parts = append(parts, u.Reason)
	}
	if u.State6 != nil && *u.State6 != u.State { // IPv6 judged apart, and it differs
		v6 := "IPv6 " + u.State6.String()
		if u.Reason6 != "" && *u.State6 != uplink.Up {
			v6 += ": " + u.Reason6
		}
		parts = append(parts, v6)
	}
	return strings.Join(parts, "; ")
}

func megabytes(b float64) string {
	if b < 1e6 {
		return fmt.Sprintf("%.0f kB", b/1e3)
	}
	return fmt.Sprintf("%.1f MB", b/1e6)
}

func rtt(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	ms := float64(d) / float64(time.Millisecond)
	if ms >= 100 {
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.1fms", ms)
}

func jitter(u api.UplinkStatus) string {
	if u.RTT <= 0 {
		return "-"
	}
	return rtt(max(u.Jitter, time.Microsecond)) // 0.0ms: measured and steady
}

func mos(u api.UplinkStatus) string {
	if u.MOS <= 0 || u.RTT <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", u.MOS)
}

func loss(u api.UplinkStatus) string {
	if u.RTT <= 0 && u.Loss == 0 {
		return "-" // nothing measured yet
	}
	return percent(u.Loss)
}

// percent rounds a loss to what a person compares: 0%, 2.5%, 15%.
func percent(p float64) string {
	switch {
	case p == float64(int(p)):
		return fmt.Sprintf("%d%%", int(p))
	case p >= 10:
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}

func conns(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// human prints a duration the way people say it: 4s, 3m12s, 2h5m, 3d4h.
func human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case d < time.Second:
		return "0s"
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

// formatEvent renders one event as a line a person reads, in the given time zone.
func formatEvent(e api.Event, loc *time.Location) string {
	var subject []string
	if e.Uplink != "" {
		subject = append(subject, e.Uplink)
	}
	if e.Name != "" {
		subject = append(subject, e.Name)
	}
	if e.Server != "" {
		subject = append(subject, e.Server)
	}
	if e.From != "" || e.To != "" {
		subject = append(subject, orDash(e.From)+" -> "+orDash(e.To))
	}
	if e.Kind == api.KindActive || len(e.Active) > 0 {
		act := strings.Join(e.Active, ",")
		if act == "" {
			act = "none"
		}
		subject = append(subject, "active="+act)
	}
	if e.Took > 0 {
		subject = append(subject, "took="+e.Took.String())
	}
	line := fmt.Sprintf("%s  %-7s %s", e.Time.In(loc).Format("2006-01-02 15:04:05.000"), e.Kind, strings.Join(subject, " "))
	switch {
	case e.Reason == "":
	case len(subject) == 0:
		line += e.Reason
	default:
		line += ": " + e.Reason
	}
	return strings.TrimRight(line, " ")
}
