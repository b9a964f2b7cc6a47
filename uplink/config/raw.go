package config

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// The raw* types mirror the file; pointers tell "absent" from "zero" so defaults apply only
// where a key is missing.
type rawConfig struct {
	Daemon   rawDaemon    `toml:"daemon"`
	Defaults rawProbe     `toml:"defaults"`
	Uplinks  []rawUplink  `toml:"uplink"`
	Services []rawService `toml:"service"`
	Hooks    []rawHook    `toml:"hook"`
	HA       *rawHA       `toml:"ha"`
	DNS      *rawDNS      `toml:"dns"`
	IPv6     *rawIPv6     `toml:"ipv6"`
	Sites    []rawSite    `toml:"site"`
}

type rawHA struct {
	TrackFile *string `toml:"track_file"`
}

func (r *rawHA) apply(h *uplink.HA, fail func(string, string, ...any)) {
	if r == nil {
		return
	}
	h.TrackFile = uplink.DefaultTrackFile
	if r.TrackFile != nil {
		h.TrackFile = *r.TrackFile
		if !strings.HasPrefix(h.TrackFile, "/") || strings.HasSuffix(h.TrackFile, "/") {
			fail("ha.track_file", "%q is not an absolute file path", h.TrackFile)
		}
	}
}

type rawDaemon struct {
	Socket        *string  `toml:"socket"`
	SocketGroup   *string  `toml:"socket_group"`
	LogLevel      *string  `toml:"log_level"`
	TableBase     *int     `toml:"table_base"`
	RulePriority  *int     `toml:"rule_priority"`
	CleanupOnExit *bool    `toml:"cleanup_on_exit"`
	Pinning       *bool    `toml:"pin_connections"`
	Affinity      *bool    `toml:"source_affinity"`
	LANInterfaces []string `toml:"lan_interfaces"`
	MetricsListen *string  `toml:"metrics_listen"`
	StateFile     *string  `toml:"state_file"`
}

type rawProbe struct {
	Targets     []target  `toml:"targets"`
	Method      *string   `toml:"method"`
	Interval    *duration `toml:"interval"`
	Timeout     *duration `toml:"timeout"`
	Quorum      *int      `toml:"quorum"`
	DownAfter   *int      `toml:"down_after"`
	UpAfter     *int      `toml:"up_after"`
	MaxLoss     *percent  `toml:"max_loss"`
	MaxRTT      *duration `toml:"max_rtt"`
	Window      *int      `toml:"window"`
	HoldDown    *duration `toml:"hold_down"`
	MaxHoldDown *duration `toml:"max_hold_down"`
}

type rawUplink struct {
	ID        *int     `toml:"id"`
	Name      string   `toml:"name"`
	Interface string   `toml:"interface"`
	Gateway   *address `toml:"gateway"`
	Gateway6  *address `toml:"gateway6"`
	Priority  *int     `toml:"priority"`
	Weight    *int     `toml:"weight"`
	Public4   *address `toml:"public4"`
	Public6   *address `toml:"public6"`
	Prefixes  []string `toml:"prefixes"`
	Metered   *bool    `toml:"metered"`
	rawProbe           // per-uplink overrides of [defaults]
}

var logLevels = []string{"debug", "info", "warn", "error"}

func (r rawDaemon) apply(d *uplink.Daemon, fail func(string, string, ...any)) {
	if r.Socket != nil {
		d.Socket = *r.Socket
		if !strings.HasPrefix(d.Socket, "/") {
			fail("daemon.socket", "%q is not an absolute path", d.Socket)
		}
	}
	if r.SocketGroup != nil {
		d.SocketGroup = *r.SocketGroup
	}
	if r.StateFile != nil {
		d.StateFile = *r.StateFile
		if d.StateFile != "" && !strings.HasPrefix(d.StateFile, "/") {
			fail("daemon.state_file", "%q is not an absolute path (empty: remember nothing across restarts)", d.StateFile)
		}
	}
	if r.LogLevel != nil {
		d.LogLevel = *r.LogLevel
		ok := false
		for _, l := range logLevels {
			ok = ok || l == d.LogLevel
		}
		if !ok {
			fail("daemon.log_level", "%q is not one of %s", d.LogLevel, strings.Join(logLevels, ", "))
		}
	}
	if r.TableBase != nil {
		d.TableBase = *r.TableBase
		if d.TableBase < 1 || d.TableBase > 1<<31-1-uplink.MaxUplinkID {
			fail("daemon.table_base", "%d is outside 1..%d", d.TableBase, 1<<31-1-uplink.MaxUplinkID)
		}
	}
	if r.RulePriority != nil {
		d.RulePriority = *r.RulePriority
		if d.RulePriority < 1 || d.RulePriority > 30000 {
			fail("daemon.rule_priority", "%d is outside 1..30000 (32766 is the main table's rule)", d.RulePriority)
		}
	}
	if r.CleanupOnExit != nil {
		d.CleanupOnExit = *r.CleanupOnExit
	}
	if r.Pinning != nil {
		d.Pinning = *r.Pinning
	}
	if r.Affinity != nil {
		d.Affinity = *r.Affinity
	}
	d.LANInterfaces = r.LANInterfaces
	if r.MetricsListen != nil {
		d.MetricsListen = *r.MetricsListen
		if d.MetricsListen != "" {
			if _, err := netip.ParseAddrPort(d.MetricsListen); err != nil {
				fail("daemon.metrics_listen", "%q is not an address and port such as \"127.0.0.1:9847\" or \"[::1]:9847\" (an IP address, not a name; empty turns metrics off)", d.MetricsListen)
			} else if ap := netip.MustParseAddrPort(d.MetricsListen); ap.Port() == 0 {
				fail("daemon.metrics_listen", "%q has port 0: give the port Prometheus scrapes", d.MetricsListen)
			}
		}
	}
}

// apply copies the keys that are set over p.
func (r rawProbe) apply(p *uplink.Probe, section string, fail func(string, string, ...any)) {
	if r.Targets != nil {
		p.Targets = make([]netip.Addr, len(r.Targets))
		p.TargetMethods = nil
		for i, t := range r.Targets {
			p.Targets[i] = t.addr
			if t.method != nil {
				if p.TargetMethods == nil {
					p.TargetMethods = map[netip.Addr]uplink.Method{}
				}
				p.TargetMethods[t.addr] = *t.method
			}
		}
		p.Quorum = 0
	}
	if r.Method != nil {
		m, err := uplink.ParseMethod(*r.Method)
		if err != nil {
			fail(section+".method", "%v", err)
		}
		p.Method = m
	}
	set := func(dst *time.Duration, src *duration) {
		if src != nil {
			*dst = src.Duration
		}
	}
	set(&p.Interval, r.Interval)
	set(&p.Timeout, r.Timeout)
	set(&p.MaxRTT, r.MaxRTT)
	set(&p.HoldDown, r.HoldDown)
	set(&p.MaxHoldDown, r.MaxHoldDown)
	for _, n := range []struct {
		dst *int
		src *int
	}{{&p.Quorum, r.Quorum}, {&p.DownAfter, r.DownAfter}, {&p.UpAfter, r.UpAfter}, {&p.Window, r.Window}} {
		if n.src != nil {
			*n.dst = *n.src
		}
	}
	if r.Quorum != nil && *r.Quorum == 0 {
		fail(section+".quorum", "quorum 0 must be at least 1")
	}
	if r.MaxLoss != nil {
		p.MaxLoss = float64(*r.MaxLoss)
	}
}

// duration is a TOML string such as "500ms"; a bare number is refused because its unit would be
// a guess.
type duration struct{ time.Duration }

func (d *duration) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a duration string such as \"500ms\" or \"2s\", got %s %v", tomlType(v), v)
	}
	x, err := time.ParseDuration(s)
	if err != nil && durationSyntax.MatchString(s) {
		return fmt.Errorf("%q is too long: a duration may be at most 24h", s)
	}
	if err != nil {
		return fmt.Errorf("%q is not a duration (use a number with a unit: \"500ms\", \"2s\")", s)
	}
	if x > maxDuration || x < -maxDuration {
		return fmt.Errorf("%q is too long: a duration may be at most 24h", s)
	}
	d.Duration = x
	return nil
}

// maxDuration bounds every duration in the file: no setting needs more than a day, and
// the products the checks compute (down_after × interval) then cannot overflow.
const maxDuration = 24 * time.Hour

// durationSyntax is what time.ParseDuration reads; a string of this shape that it refuses
// is out of range.
var durationSyntax = regexp.MustCompile(`^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+$`)

// target is a probe target: an address, or METHOD://ADDRESS[:PORT].
type target struct {
	addr   netip.Addr
	method *uplink.Method
}

func (t *target) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want an address or METHOD://ADDRESS[:PORT] string, got %s %v", tomlType(v), v)
	}
	a, m, err := uplink.ParseTarget(s)
	if err != nil {
		return err
	}
	t.addr, t.method = a, m
	return nil
}

// address is an IPv4 or IPv6 address string.
type address struct{ netip.Addr }

func (a *address) UnmarshalTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want an IP address string, got %s %v", tomlType(v), v)
	}
	x, err := netip.ParseAddr(s)
	if err != nil || x.Zone() != "" {
		return fmt.Errorf("%q is not an IPv4 or IPv6 address", s)
	}
	a.Addr = x.Unmap()
	return nil
}

// percent accepts 20 and 20.0 alike.
type percent float64

func (p *percent) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		*p = percent(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%s is not a number of percent", strings.ToLower(fmt.Sprint(x)))
		}
		*p = percent(x)
	default:
		return fmt.Errorf("want a number of percent, got %s %v", tomlType(v), v)
	}
	return nil
}

// tomlType names a decoded value's TOML type for error messages.
func tomlType(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

// locations maps key paths ("daemon.socket", "uplink.1.weight", "uplink.1") to the line
// they are on. The TOML decoder does not expose key positions, and uplinkd's file is simple
// enough (tables, arrays of tables, key = value) to find them by reading it again.
type locations struct {
	lines   map[string]int
	headers []header // [[array]] headers in file order
}

type header struct {
	name  string // "uplink"
	index int    // 0-based position among its array
	line  int
}

var (
	headerLine = regexp.MustCompile(`^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?`)
	keyLine    = regexp.MustCompile(`^\s*([A-Za-z0-9_-]+)\s*=`)
)

func locate(src []byte) locations {
	loc := locations{lines: map[string]int{}}
	counts := map[string]int{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := headerLine.FindStringSubmatch(line); m != nil {
			section = m[2]
			if m[1] == "[[" {
				section = fmt.Sprintf("%s.%d", m[2], counts[m[2]])
				loc.headers = append(loc.headers, header{m[2], counts[m[2]], n})
				counts[m[2]]++
			}
			loc.add(section, n)
			continue
		}
		if m := keyLine.FindStringSubmatch(line); m != nil {
			key := m[1]
			if section != "" {
				key = section + "." + key
			}
			loc.add(key, n)
		}
	}
	return loc
}

// add records the first line of key and, for keys inside an array of tables, the first line of
// the key without its index (the decoder reports unknown keys that way).
func (l locations) add(key string, line int) {
	if _, ok := l.lines[key]; !ok {
		l.lines[key] = line
	}
	parts := strings.Split(key, ".")
	if len(parts) == 3 {
		plain := parts[0] + "." + parts[2]
		if _, ok := l.lines[plain]; !ok {
			l.lines[plain] = line
		}
	}
}

// qualify adds the array position to a key the decoder reported without one ("uplink.weight"
// on line 12 → "uplink.1.weight"), from the [[uplink]] header above that line.
func (l locations) qualify(key string, line int) string {
	name, rest, ok := strings.Cut(key, ".")
	if !ok || line == 0 {
		return key
	}
	found := -1
	for _, h := range l.headers {
		if h.line > line {
			break
		}
		if h.name == name {
			found = h.index
		} else {
			found = -1
		}
	}
	if found < 0 {
		return key
	}
	return fmt.Sprintf("%s.%d.%s", name, found, rest)
}

// line finds key, or failing that its section.
func (l locations) line(key string) int {
	for k := key; k != ""; {
		if n, ok := l.lines[k]; ok {
			return n
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}
