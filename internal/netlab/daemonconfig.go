package netlab

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	up "github.com/uplinkd/uplinkd/uplink"
)

// DaemonConfig shapes the uplinkd configuration for a lab.
type DaemonConfig struct {
	Socket      string
	StateFile   string        // empty: state.json beside the socket, a new one each start
	SocketGroup string        // empty: the daemon's default ("uplinkd", which a lab machine may lack)
	Interval    time.Duration // zero: the shipped default (uplink.DefaultConfig)
	Timeout     time.Duration // zero: the shipped default
	DownAfter   int           // zero: the shipped default
	UpAfter     int           // zero: the shipped default
	Weights     [2]int        // default 1, 1
	SameTier    bool          // both uplinks in tier 1 (load sharing) instead of isp2 as backup
	DualStack   bool          // probe the IPv6 targets too: IPv6 is then judged apart
	// IPv6Prefixes names each ISP's LAN prefix (a lab with Options.IPv6Prefixes) and turns
	// [ipv6] on for lan0 with the shipped defaults (uplinkd sends the RAs, NPTv6 on).
	IPv6Prefixes bool
	// UplinkKeys are TOML lines added verbatim to isp1's and isp2's [[uplink]].
	UplinkKeys [2]string
	Extra      string // appended verbatim (e.g. more [defaults] keys are not possible here: use fields)
	// DaemonKeys and DefaultsKeys are TOML lines added verbatim to [daemon] and [defaults]
	// (e.g. `metrics_listen = "127.0.0.1:9847"`, `hold_down = "100ms"`), each ending in "\n".
	DaemonKeys, DefaultsKeys string
	// Text, if set, is the whole configuration after [daemon]'s socket, state_file and
	// log_level: a gateway other than the lab's (site B's).
	Text string
}

// Render returns the TOML text. isp1's IPv4 gateway is left for uplinkd to learn from the
// gateway's main table (as DHCP leaves it); isp2's is configured, as a static line would be.
func (c DaemonConfig) Render() string {
	or := func(d, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return d
	}
	orInt := func(n, def int) int {
		if n == 0 {
			return def
		}
		return n
	}
	var targets []string
	for _, t := range Targets4 {
		targets = append(targets, fmt.Sprintf("%q", t.String()))
	}
	if c.DualStack {
		for _, t := range Targets6 {
			targets = append(targets, fmt.Sprintf("%q", t.String()))
		}
	}
	def := up.DefaultConfig().Defaults
	tier2 := 2
	if c.SameTier {
		tier2 = 1
	}
	var b strings.Builder
	// The state file lives beside the socket, in the run's own directory, unless a test keeps
	// one across restarts: never the host's.
	state := c.StateFile
	if state == "" {
		state = filepath.Join(filepath.Dir(c.Socket), "state.json")
	}
	fmt.Fprintf(&b, "[daemon]\nsocket = %q\nstate_file = %q\nlog_level = \"debug\"\n", c.Socket, state)
	if c.Text != "" {
		return b.String() + c.Text
	}
	if c.SocketGroup != "" {
		fmt.Fprintf(&b, "socket_group = %q\n", c.SocketGroup)
	}
	b.WriteString(c.DaemonKeys)
	b.WriteString("\n")
	fmt.Fprintf(&b, "[defaults]\ntargets = [%s]\ninterval = %q\ntimeout = %q\ndown_after = %d\nup_after = %d\n",
		strings.Join(targets, ", "), or(c.Interval, def.Interval), or(c.Timeout, def.Timeout),
		orInt(c.DownAfter, def.DownAfter), orInt(c.UpAfter, def.UpAfter))
	b.WriteString(c.DefaultsKeys + "\n")
	prefixes := func(u Uplink) string {
		keys := c.UplinkKeys[u.N-1]
		if keys != "" {
			keys += "\n"
		}
		if c.IPv6Prefixes {
			keys += fmt.Sprintf("prefixes = [%q]\n", u.LANPrefix6.String())
		}
		return keys
	}
	fmt.Fprintf(&b, "[[uplink]]\nname = \"isp1\"\ninterface = %q\ngateway6 = %q\npriority = 1\nweight = %d\n%s\n",
		IfWAN1, ISP1Addr6, orInt(c.Weights[0], 1), prefixes(Uplinks[0]))
	fmt.Fprintf(&b, "[[uplink]]\nname = \"isp2\"\ninterface = %q\ngateway = %q\ngateway6 = %q\npriority = %d\nweight = %d\n%s",
		IfWAN2, ISP2Addr4, ISP2Addr6, tier2, orInt(c.Weights[1], 1), prefixes(Uplinks[1]))
	if c.IPv6Prefixes {
		fmt.Fprintf(&b, "\n[ipv6]\ninterfaces = [%q]\n", IfLAN)
	}
	b.WriteString(c.Extra)
	return b.String()
}
