package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/uplinkd/uplinkd/uplink"
)

// Load reads and validates the file at path and the key files it names.
func Load(path string) (*uplink.Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(path, src)
	if err != nil {
		return nil, err
	}
	if err := checkSecrets(cfg, path, src); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse validates src, read from the file called path. Every error names the file, the
// line where it can be found, and the key.
func Parse(path string, src []byte) (*uplink.Config, error) {
	var raw rawConfig
	loc := locate(src)
	md, err := toml.Decode(string(src), &raw)
	if err != nil {
		return nil, decodeError(path, err, loc)
	}
	var errs []error
	seen := map[Error]bool{}
	fail := func(key string, format string, args ...any) {
		e := Error{File: path, Line: loc.line(key), Key: displayKey(key), Msg: fmt.Sprintf(format, args...)}
		if seen[e] {
			return // a mistake in [defaults] is found once per uplink, and reported once
		}
		seen[e] = true
		errs = append(errs, &e)
	}
	var unknown []string
	for _, k := range md.Undecoded() {
		key := strings.Join(k, ".")
		if slices.ContainsFunc(unknown, func(u string) bool { return strings.HasPrefix(key, u+".") }) {
			continue // inside a table that is unknown already
		}
		unknown = append(unknown, key)
		line := loc.line(key)
		fail(loc.qualify(key, line), "unknown key")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg := uplink.DefaultConfig()
	cfg.Path = path
	raw.Daemon.apply(&cfg.Daemon, fail)
	raw.HA.apply(&cfg.HA, fail)
	raw.Defaults.apply(&cfg.Defaults, "defaults", fail)
	if len(raw.Uplinks) == 0 {
		errs = append(errs, &Error{File: path, Key: "uplink", Msg: "no [[uplink]] is configured: uplinkd needs at least one"})
	}
	names, ifaces, ids := map[string]int{}, map[string]int{}, map[int]int{}
	for i, ru := range raw.Uplinks {
		k := func(name string) string { return fmt.Sprintf("uplink.%d.%s", i, name) }
		u := uplink.Uplink{ID: i + 1, Priority: 1, Weight: 1, Probe: cfg.Defaults}
		if ru.rawProbe.Targets != nil {
			u.Probe.Quorum = 0 // recomputed for the uplink's own targets unless given
		}
		if ru.ID != nil {
			u.ID = *ru.ID
			if u.ID < 1 || u.ID > uplink.MaxUplinkID {
				fail(k("id"), "%d is outside 1..%d", u.ID, uplink.MaxUplinkID)
			}
		}
		u.Name = ru.Name
		switch {
		case u.Name == "":
			fail(fmt.Sprintf("uplink.%d", i), "uplink #%d has no name", i+1)
		case !validName.MatchString(u.Name):
			fail(k("name"), "%q is not a valid name: use letters, digits, '-' and '_' (at most 32)", u.Name)
		case names[u.Name] > 0:
			fail(k("name"), "duplicate uplink name %q (also uplink #%d)", u.Name, names[u.Name])
		default:
			names[u.Name] = i + 1
		}
		u.Interface = ru.Interface
		switch {
		case u.Interface == "":
			fail(fmt.Sprintf("uplink.%d", i), "uplink %q has no interface", u.Name)
		case ifnameProblem(u.Interface) != "":
			fail(k("interface"), "%q is not a valid interface name: %s", u.Interface, ifnameProblem(u.Interface))
		case ifaces[u.Interface] > 0:
			fail(k("interface"), "interface %q is used by uplink #%d too", u.Interface, ifaces[u.Interface])
		default:
			ifaces[u.Interface] = i + 1
		}
		if prev := ids[u.ID]; prev > 0 {
			fail(k("id"), "id %d is used by uplink #%d too (ids default to the position in the file)", u.ID, prev)
		}
		ids[u.ID] = i + 1
		if ru.Gateway != nil {
			u.Gateway = ru.Gateway.Addr
			if !u.Gateway.Is4() {
				fail(k("gateway"), "%s is not an IPv4 address (use gateway6 for IPv6)", u.Gateway)
			}
		}
		if ru.Gateway6 != nil {
			u.Gateway6 = ru.Gateway6.Addr
			if !u.Gateway6.Is6() || u.Gateway6.Is4In6() {
				fail(k("gateway6"), "%s is not an IPv6 address", u.Gateway6)
			}
		}
		if ru.Priority != nil {
			u.Priority = *ru.Priority
			if u.Priority < 1 || u.Priority > 1000 {
				fail(k("priority"), "%d is outside 1..1000", u.Priority)
			}
		}
		if ru.Weight != nil {
			u.Weight = *ru.Weight
			if u.Weight < 1 || u.Weight > 256 {
				fail(k("weight"), "%d is outside 1..256", u.Weight)
			}
		}
		if ru.Public4 != nil {
			u.Public4 = ru.Public4.Addr
			if !u.Public4.Is4() || !u.Public4.IsGlobalUnicast() {
				fail(k("public4"), "%s is not a unicast IPv4 address", u.Public4)
			}
		}
		if ru.Public6 != nil {
			u.Public6 = ru.Public6.Addr
			if !u.Public6.Is6() || u.Public6.Is4In6() || !u.Public6.IsGlobalUnicast() {
				fail(k("public6"), "%s is not a global IPv6 address", u.Public6)
			}
		}
		u.Prefixes = parseLANPrefixes(ru.Prefixes, k("prefixes"), fail)
		if ru.Metered != nil {
			u.Metered = *ru.Metered
		}
		ru.rawProbe.apply(&u.Probe, fmt.Sprintf("uplink.%d", i), fail)
		validateProbe(&u.Probe, u.Name, fmt.Sprintf("uplink.%d", i), ru.rawProbe, raw.Defaults, fail)
		cfg.Uplinks = append(cfg.Uplinks, u)
	}
	cfg.Services = parseServices(raw.Services, cfg.Uplinks, fail)
	cfg.Hooks = parseHooks(raw.Hooks, fail)
	cfg.DNS = parseDNS(raw.DNS, raw.Sites, cfg.Uplinks, fail)
	cfg.IPv6 = parseIPv6(raw.IPv6, &cfg, fail)
	for _, lan := range cfg.Daemon.LANInterfaces {
		if why := ifnameProblem(lan); why != "" {
			fail("daemon.lan_interfaces", "%q is not a valid interface name: %s", lan, why)
		}
		if i := ifaces[lan]; i > 0 {
			fail("daemon.lan_interfaces", "%s is the interface of uplink #%d, not a LAN", lan, i)
		}
	}
	maxID := 0
	for _, u := range cfg.Uplinks {
		maxID = max(maxID, u.ID)
	}
	if base := cfg.Daemon.TableBase; base > 0 && base <= 255 && base+maxID >= 253 {
		fail("daemon.table_base", "%d would make uplink tables (%d..%d) overlap the kernel's tables 253..255 (default, main, local): use 256 or above, or at most %d", base, base, base+maxID, 252-maxID)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// validateProbe checks an uplink's resolved probe settings. Keys are reported where they were
// set: in the uplink if it overrides them, else in [defaults].
func validateProbe(p *uplink.Probe, name, section string, own, defaults rawProbe, fail func(string, string, ...any)) {
	where := func(key string, ownSet, defSet bool) string {
		switch {
		case ownSet:
			return section + "." + key
		case defSet:
			return "defaults." + key
		}
		return section
	}
	tkey := where("targets", own.Targets != nil, defaults.Targets != nil)
	if len(p.Targets) == 0 {
		fail(section, "uplink %q has no probe targets: set targets in [defaults] or in the uplink (uplinkd has no built-in targets)", name)
		return
	}
	seen := map[netip.Addr]bool{}
	for _, t := range p.Targets {
		if seen[t] {
			fail(tkey, "target %s is listed twice", t)
		}
		seen[t] = true
	}
	qkey := where("quorum", own.Quorum != nil, defaults.Quorum != nil)
	if p.Quorum == 0 {
		p.Quorum = min(2, max(1, len(p.Targets)-1)) // two targets survive one that drops probes
	} else if p.Quorum < 1 {
		fail(qkey, "quorum %d must be at least 1", p.Quorum)
	} else if p.Quorum > len(p.Targets) {
		if own.Quorum == nil && own.Targets == nil {
			fail(qkey, "quorum %d is more than the %d targets", p.Quorum, len(p.Targets)) // all from [defaults]: once
		} else {
			fail(qkey, "quorum %d is more than the %d targets of uplink %q", p.Quorum, len(p.Targets), name)
		}
	}
	for _, d := range []struct {
		key            string
		v              time.Duration
		ownSet, defSet bool
	}{
		{"interval", p.Interval, own.Interval != nil, defaults.Interval != nil},
		{"timeout", p.Timeout, own.Timeout != nil, defaults.Timeout != nil},
		{"max_rtt", p.MaxRTT, own.MaxRTT != nil, defaults.MaxRTT != nil},
		{"hold_down", p.HoldDown, own.HoldDown != nil, defaults.HoldDown != nil},
		{"max_hold_down", p.MaxHoldDown, own.MaxHoldDown != nil, defaults.MaxHoldDown != nil},
	} {
		if d.v <= 0 {
			fail(where(d.key, d.ownSet, d.defSet), "%s must be a positive duration, got %s", d.key, d.v)
		}
	}
	if p.Interval > 0 && p.Interval < 10*time.Millisecond {
		fail(where("interval", own.Interval != nil, defaults.Interval != nil), "interval %s is below the 10ms minimum", p.Interval)
	}
	for _, n := range []struct {
		key            string
		v              int
		ownSet, defSet bool
	}{
		{"down_after", p.DownAfter, own.DownAfter != nil, defaults.DownAfter != nil},
		{"up_after", p.UpAfter, own.UpAfter != nil, defaults.UpAfter != nil},
		{"window", p.Window, own.Window != nil, defaults.Window != nil},
	} {
		if n.v < 1 || n.v > 10000 {
			fail(where(n.key, n.ownSet, n.defSet), "%s %d is outside 1..10000", n.key, n.v)
		}
	}
	if p.MaxLoss <= 0 || p.MaxLoss > 100 {
		fail(where("max_loss", own.MaxLoss != nil, defaults.MaxLoss != nil), "max_loss %g is outside 0..100 (percent, above 0)", p.MaxLoss)
	}
	if p.Interval > 0 && p.DownAfter > 0 && p.Timeout > time.Duration(p.DownAfter)*p.Interval {
		fail(where("timeout", own.Timeout != nil, defaults.Timeout != nil),
			"timeout %s is longer than down_after × interval (%d × %s = %s): a failure could not be judged within down_after rounds",
			p.Timeout, p.DownAfter, p.Interval, time.Duration(p.DownAfter)*p.Interval)
	}
	if p.HoldDown > 0 && p.MaxHoldDown > 0 && p.MaxHoldDown < p.HoldDown {
		key := where("max_hold_down", own.MaxHoldDown != nil, defaults.MaxHoldDown != nil)
		if own.MaxHoldDown == nil && defaults.MaxHoldDown == nil { // built in: blame the key that was set
			key = where("hold_down", own.HoldDown != nil, defaults.HoldDown != nil)
		}
		fail(key, "max_hold_down %s is shorter than hold_down %s", p.MaxHoldDown, p.HoldDown)
	}
}

// Error is one mistake in a configuration file.
type Error struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return pos + ": " + e.Msg
	}
	return pos + ": " + e.Key + ": " + e.Msg
}

var decodeMsg = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "([^"]*)"\))?: (.*)$`)

// decodeError turns the TOML decoder's errors into "file:line: key: reason".
func decodeError(path string, err error, loc locations) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Usage != "" && msg == "" {
			msg = pe.Usage
		}
		line := pe.Position.Line
		return &Error{File: path, Line: line, Key: displayKey(loc.qualify(pe.LastKey, line)), Msg: strings.TrimPrefix(msg, "toml: ")}
	}
	if m := decodeMsg.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: path, Line: line, Key: displayKey(loc.qualify(m[2], line)), Msg: m[3]}
	}
	return &Error{File: path, Msg: err.Error()}
}

// displayKey turns our internal key paths ("uplink.1.weight") into what a person finds in the
// file ("uplink[2].weight").
func displayKey(k string) string {
	parts := strings.Split(k, ".")
	var b strings.Builder
	for i, p := range parts {
		if n, err := strconv.Atoi(p); err == nil && i > 0 {
			fmt.Fprintf(&b, "[%d]", n+1)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}
