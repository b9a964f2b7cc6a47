package engine

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/dataplane"
)

const (
	// countsMaxAge is how old the connection counts in a status may be: however many clients
	// ask, the conntrack table is walked at most once per countsMaxAge.
	countsMaxAge = 2 * time.Second
	// countsWait is how long a status request waits for a fresh count before it answers with
	// the last one.
	countsWait = 500 * time.Millisecond
)

// Status returns the last published state, with connection counts at most countsMaxAge old.
// It never waits for the loop.
func (e *Engine) Status() api.Status {
	st := *e.status.Load()
	if !st.Started.IsZero() {
		st.Uptime = time.Since(st.Started).Round(time.Second)
	}
	if e.pinning.Load() {
		if counts, ok := e.counts.get(time.Now()); ok {
			st.Uplinks = slices.Clone(st.Uplinks)
			for i := range st.Uplinks {
				st.Uplinks[i].Connections = counts[st.Uplinks[i].Mark]
			}
		}
	}
	return st
}

// publishStatus stores the snapshot that Status serves.
func (e *Engine) publishStatus() {
	e.statusAged = false
	st := &api.Status{
		Version: e.opt.Version,
		Started: e.started,
		Config:  e.cfg.Path,
		Active:  e.state.Active(),
	}
	if a6 := e.state.Active6(); !slices.Equal(st.Active, a6) {
		st.Active6 = a6
	}
	if e.tracker != nil {
		st.HA = &api.HAStatus{TrackFile: e.cfg.HA.TrackFile, Standby: e.standby}
	}
	for _, m := range e.members {
		since, reason := m.machine.Since()
		q := m.machine.Line()
		us := api.UplinkStatus{
			Name:             m.cfg.Name,
			Interface:        m.cfg.Interface,
			State:            m.machine.State(),
			Since:            since,
			Reason:           reason,
			Drained:          m.drained,
			Active:           slices.Contains(st.Active, m.cfg.Name),
			Priority:         m.cfg.Priority,
			Weight:           m.cfg.Weight,
			Mark:             m.cfg.Mark(),
			Table:            m.cfg.Table(e.cfg.Daemon),
			RTT:              q.RTT,
			Loss:             q.Loss,
			Jitter:           q.Jitter,
			MOS:              q.MOS,
			HoldDown:         m.machine.HoldDown(),
			Targets:          api.Targets(m.machine.Targets()),
			Connections:      -1,
			Metered:          m.cfg.Metered,
			ProbeMode:        m.mode.String(),
			ProbeBytes:       m.cost.bytes,
			ProbeBytesPerDay: m.cost.perDay,
		}
		if m.machine6 != nil {
			s6 := m.machine6.State()
			_, us.Reason6 = m.machine6.Since()
			us.State6 = &s6
			us.Targets = append(us.Targets, api.Targets(m.machine6.Targets())...)
		}
		if g := m.gateway4(); g.IsValid() {
			us.Gateway = g.String()
		}
		if g := m.gateway6(); g.IsValid() {
			us.Gateway6 = g.String()
		}
		for _, a := range m.link.Addrs {
			us.Addresses = append(us.Addresses, a.String())
		}
		st.Uplinks = append(st.Uplinks, us)
	}
	// The routes come from the desired state, as the kernel got them: nothing decided twice.
	st.ActiveRoute, st.Route4, st.Route6 = e.routes.active, e.routes.route4, e.routes.route6
	if d := e.state.DNS; d.Enabled() {
		st.DNS = &api.DNSStatus{Zone: d.Zone}
		for _, n := range d.Names {
			ans := e.state.Answer(n)
			a := api.DNSAnswers{Name: n.Name, Servers: e.serverStatus(n), Down: e.state.NamesDown[n.Name], Fallback: ans.Fallback, Sites: ans.Sites}
			for _, addr := range ans.Addrs {
				a.Addrs = append(a.Addrs, addr.String())
			}
			st.DNS.Names = append(st.DNS.Names, a)
		}
	}
	st.IPv6 = e.ipv6Status()
	e.status.Store(st)
}

// ipv6Status is what the LAN is told about the prefixes, from the desired state.
func (e *Engine) ipv6Status() *api.IPv6Status {
	if !e.cfg.IPv6Enabled() {
		return nil
	}
	v := &api.IPv6Status{Advertise: e.state.IPv6.Advertise}
	for _, u := range e.state.Uplinks {
		for _, p := range u.Prefixes {
			v.Prefixes = append(v.Prefixes, api.PrefixStatus{Prefix: p.Prefix.String(), Uplink: u.Name,
				Preferred: e.state.PrefixesPreferred(u), Interfaces: p.Interfaces})
		}
	}
	for _, t := range e.state.Translations() {
		v.Translations = append(v.Translations, fmt.Sprintf("%s -> %s via %s", t.From, t.To, t.Interface))
	}
	if e.opt.LastRA != nil {
		v.LastRA = e.opt.LastRA()
	}
	return v
}

// activeRoute is the one-line summary of where new connections go: "default: wan1 via
// 198.51.100.1 weight 1, …" (each active uplink's IPv4 gateway, else its IPv6 one).
func activeRoute(s dataplane.State) string {
	var hops []string
	for _, u := range s.Uplinks {
		if !u.Active {
			continue
		}
		via := "?"
		switch {
		case u.Gateway4.IsValid():
			via = u.Gateway4.String()
		case u.Gateway6.IsValid():
			via = u.Gateway6.String()
		}
		hops = append(hops, fmt.Sprintf("%s via %s weight %d", u.Interface, via, u.Weight))
	}
	if len(hops) == 0 {
		return "default: none"
	}
	return "default: " + strings.Join(hops, ", ")
}

// counter caches the connection counts per uplink mark. At most one walk of the conntrack
// table runs at a time and at most one starts per countsMaxAge, whatever the number of
// readers; readers wait up to countsWait for a fresh walk, else take the last one.
type counter struct {
	kernel Kernel

	mu      sync.Mutex
	counts  map[uint32]int
	at      time.Time     // when counts were taken
	running chan struct{} // closed when the walk in progress ends; nil when none
}

func (c *counter) get(now time.Time) (map[uint32]int, bool) {
	c.mu.Lock()
	if now.Sub(c.at) < countsMaxAge && c.counts != nil {
		defer c.mu.Unlock()
		return c.counts, true
	}
	if c.running == nil {
		done := make(chan struct{})
		c.running = done
		go c.refresh(done)
	}
	running := c.running
	c.mu.Unlock()
	wait := time.NewTimer(countsWait)
	defer wait.Stop()
	select {
	case <-running:
	case <-wait.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts, c.counts != nil
}

func (c *counter) refresh(done chan struct{}) {
	counts, err := c.kernel.Counts()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.counts = counts
	}
	c.at = time.Now() // a failed walk is not retried sooner either
	c.running = nil
	close(done)
}
