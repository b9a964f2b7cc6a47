package config

import (
	"bufio"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

func TestValidConfigFillsDefaultsAndKeepsOverrides(t *testing.T) {
	cfg, err := Load("testdata/valid.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Uplinks) != 2 {
		t.Fatalf("got %d uplinks, want 2", len(cfg.Uplinks))
	}
	isp1, isp2 := cfg.Uplinks[0], cfg.Uplinks[1]
	if isp1.ID != 1 || isp2.ID != 2 || isp1.Mark() != 0x100 || isp2.Table(cfg.Daemon) != 1002 {
		t.Errorf("ids/marks/tables: %d %d %#x %d", isp1.ID, isp2.ID, isp1.Mark(), isp2.Table(cfg.Daemon))
	}
	if isp1.Weight != 3 || isp1.Priority != 1 || isp2.Weight != 1 || isp2.Priority != 2 {
		t.Errorf("weights/priorities: %+v %+v", isp1, isp2)
	}
	if isp1.Probe.Quorum != 2 || isp1.Probe.DownAfter != 3 || isp1.Probe.UpAfter != 10 || isp1.Probe.Interval != 500*time.Millisecond {
		t.Errorf("isp1 should get the defaults, got %+v", isp1.Probe)
	}
	if isp2.Probe.Interval != 200*time.Millisecond || len(isp2.Probe.Targets) != 2 || isp2.Probe.Quorum != 1 {
		t.Errorf("isp2 should keep its overrides, got %+v", isp2.Probe)
	}
	if isp2.Gateway != netip.MustParseAddr("198.51.100.65") || isp2.Gateway6 != netip.MustParseAddr("2001:db8:12::1") {
		t.Errorf("gateways: %v %v", isp2.Gateway, isp2.Gateway6)
	}
	if isp1.Gateway.IsValid() {
		t.Errorf("isp1 has no gateway in the file and should learn it, got %v", isp1.Gateway)
	}
	if cfg.Daemon.TableBase != 1000 || cfg.Daemon.RulePriority != 1000 || cfg.Daemon.CleanupOnExit {
		t.Errorf("daemon defaults: %+v", cfg.Daemon)
	}
}

func TestDefaultsDetectASilentFailureInAboutTwoSeconds(t *testing.T) {
	p := uplink.DefaultConfig().Defaults
	detect := time.Duration(p.DownAfter-1)*p.Interval + p.Timeout
	if detect > 2500*time.Millisecond {
		t.Errorf("default detection takes %s", detect)
	}
}

// Each testdata/invalid-*.toml starts with "# error: <the exact message>".
func TestEveryInvalidConfigFailsWithItsExactMessage(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.toml")
	if len(files) < 15 {
		t.Fatalf("found only %d invalid configs", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".toml"), func(t *testing.T) {
			want := firstLineAfter(t, f, "# error: ")
			_, err := Load(f)
			if err == nil {
				t.Fatalf("accepted; want %q", want)
			}
			if err.Error() != want {
				t.Errorf("got  %q\nwant %q", err.Error(), want)
			}
		})
	}
}

func TestAMissingFileIsAnError(t *testing.T) {
	_, err := Load("testdata/nonexistent.toml")
	if err == nil || !strings.Contains(err.Error(), "nonexistent.toml") {
		t.Errorf("got %v", err)
	}
}

func TestSeveralMistakesAreReportedTogether(t *testing.T) {
	src := `
[defaults]
targets = ["192.0.2.53"]
[[uplink]]
name = "isp1"
interface = "wan1"
weight = 0
[[uplink]]
name = "isp1"
interface = "wan2"
`
	_, err := Parse("x.toml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "x.toml:7: uplink[1].weight") || !strings.Contains(err.Error(), "x.toml:9: uplink[2].name") {
		t.Errorf("got %v", err)
	}
}

func TestAnUplinkWithItsOwnTargetsGetsAQuorumForThem(t *testing.T) {
	src := `
[defaults]
targets = ["192.0.2.53", "198.51.100.53", "203.0.113.53"]
quorum = 3
[[uplink]]
name = "isp1"
interface = "wan1"
targets = ["192.0.2.1"]
quorum = 1
`
	cfg, err := Parse("x.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if q := cfg.Uplinks[0].Probe.Quorum; q != 1 {
		t.Errorf("quorum %d", q)
	}
}

func firstLineAfter(t *testing.T, path, prefix string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() && strings.HasPrefix(sc.Text(), prefix) {
		return strings.TrimPrefix(sc.Text(), prefix)
	}
	t.Fatalf("%s does not start with %q", path, prefix)
	return ""
}

func TestHooksAndTheMetricsListenerAreRead(t *testing.T) {
	src := `
[daemon]
metrics_listen = "127.0.0.1:9847"

[defaults]
targets = ["192.0.2.53", "198.51.100.53"]

[[uplink]]
name = "isp1"
interface = "wan1"

[[hook]]
events = ["state", "active"]
command = ["/usr/local/bin/page-oncall", "--quiet"]

[[hook]]
name = "log"
events = ["reload"]
command = ["/usr/bin/logger"]
timeout = "2s"
`
	cfg, err := Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Daemon.MetricsListen != "127.0.0.1:9847" {
		t.Errorf("metrics_listen = %q", cfg.Daemon.MetricsListen)
	}
	want := []uplink.Hook{
		{Name: "page-oncall", Events: []string{"state", "active"}, Command: []string{"/usr/local/bin/page-oncall", "--quiet"}, Timeout: uplink.DefaultHookTimeout},
		{Name: "log", Events: []string{"reload"}, Command: []string{"/usr/bin/logger"}, Timeout: 2 * time.Second},
	}
	if !reflect.DeepEqual(cfg.Hooks, want) {
		t.Errorf("hooks\n got %+v\nwant %+v", cfg.Hooks, want)
	}
	if def, _ := Parse("test.toml", []byte("[defaults]\ntargets = [\"192.0.2.53\"]\n[[uplink]]\nname = \"a\"\ninterface = \"wan1\"\n")); def.Daemon.MetricsListen != "" || def.Hooks != nil {
		t.Errorf("by default metrics are off and there are no hooks: %q %v", def.Daemon.MetricsListen, def.Hooks)
	}
}

func TestTargetsMayCarryTheirOwnMethod(t *testing.T) {
	cfg, err := Parse("x.toml", []byte(`
[defaults]
targets = ["192.0.2.53", "tcp://198.51.100.53:443", "https://[2001:db8::53]", "dns://203.0.113.53"]
[[uplink]]
name = "isp1"
interface = "wan1"
`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Uplinks[0].Probe
	for addr, want := range map[string]string{"192.0.2.53": "icmp", "198.51.100.53": "tcp:443", "2001:db8::53": "https", "203.0.113.53": "dns"} {
		if got := p.MethodOf(netip.MustParseAddr(addr)).String(); got != want {
			t.Errorf("%s is probed by %s, want %s", addr, got, want)
		}
	}
}

func TestDNSIsReadWithItsDefaults(t *testing.T) {
	cfg, err := Parse("dns.toml", []byte(`
[defaults]
targets = ["192.0.2.1"]

[[uplink]]
name = "isp1"
interface = "wan1"
public4 = "203.0.113.10"

[[uplink]]
name = "isp2"
interface = "wan2"
public6 = "2001:db8:2::10"

[dns]
zone = "LB.example.com"

[[dns.name]]
name = "www"

[[dns.name]]
name = "@"
uplinks = ["isp2", "isp1"]

[[dns.name]]
name = "vpn.lb.example.com."
uplinks = ["isp2"]
`))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.DNS
	if d.Zone != "lb.example.com." || d.TTL != uplink.DefaultDNSTTL || d.Policy != uplink.DNSPolicyBest || d.RateLimit != uplink.DefaultDNSRateLimit {
		t.Errorf("dns %+v: want zone lb.example.com., the default TTL, policy and rate limit", d)
	}
	want := []uplink.DNSName{{Name: "www.lb.example.com."}, {Name: "lb.example.com.", Uplinks: []string{"isp2", "isp1"}}, {Name: "vpn.lb.example.com.", Uplinks: []string{"isp2"}}}
	if !reflect.DeepEqual(d.Names, want) {
		t.Errorf("names %+v, want %+v", d.Names, want)
	}
	if cfg.Uplinks[0].Public4.String() != "203.0.113.10" || cfg.Uplinks[1].Public6.String() != "2001:db8:2::10" || cfg.Uplinks[0].Public6.IsValid() {
		t.Errorf("public addresses %v %v / %v %v", cfg.Uplinks[0].Public4, cfg.Uplinks[0].Public6, cfg.Uplinks[1].Public4, cfg.Uplinks[1].Public6)
	}
	if cfg2, err := Parse("nodns.toml", []byte("[defaults]\ntargets = [\"192.0.2.1\"]\n[[uplink]]\nname = \"a\"\ninterface = \"wan1\"\n")); err != nil || cfg2.DNS.Enabled() {
		t.Errorf("without [dns]: %v, enabled %v", err, cfg2 != nil && cfg2.DNS.Enabled())
	}
}

func TestANamesServersChecksAndFallbackAreRead(t *testing.T) {
	cfg, err := Parse("dns.toml", []byte(`
[defaults]
targets = ["192.0.2.1"]

[[uplink]]
name = "isp1"
interface = "wan1"

[dns]
zone = "lb.example.com"

[dns.check]
interval = "1s"
down_after = 2
fallback_ttl = "5s"

[[dns.name]]
name = "www"
servers = ["http://192.0.2.10/healthz", "tcp://192.0.2.11:443"]
quorum = 2
expect = "ok"
fallback = ["203.0.113.80", "2001:db8:80::1"]

[[dns.name]]
name = "mail"
`))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.DNS
	www := d.Names[0]
	want := []uplink.Server{
		{Addr: netip.MustParseAddr("192.0.2.10"), Method: uplink.Method{Name: "http", Port: 80, Path: "/healthz", Expect: "ok"}},
		{Addr: netip.MustParseAddr("192.0.2.11"), Method: uplink.Method{Name: "tcp", Port: 443}},
	}
	if !reflect.DeepEqual(www.Servers, want) || www.NeedServers() != 2 || len(www.Fallback) != 2 {
		t.Errorf("www %+v", www)
	}
	if c := d.Check; c.Interval != time.Second || c.DownAfter != 2 || c.UpAfter != uplink.DefaultServerCheck.UpAfter || c.FallbackTTL != 5*time.Second || c.Timeout != uplink.DefaultServerCheck.Timeout {
		t.Errorf("check %+v", c)
	}
	if mail := d.Names[1]; mail.Checked() || mail.NeedServers() != 0 {
		t.Errorf("mail %+v: want unchecked", mail)
	}
}

func TestSitesAreRead(t *testing.T) {
	cfg, err := Parse("sites.toml", []byte(`
[defaults]
targets = ["192.0.2.1"]

[[uplink]]
name = "isp1"
interface = "wan1"

[dns]
zone = "lb.example.com"
site = "Paris"

[[dns.name]]
name = "www"
servers = ["http://192.0.2.10/healthz"]
policy = "spread"

[[dns.name]]
name = "vpn"
sites = ["lyon", "paris"]

[[site]]
name = "paris"
nameservers = ["198.51.100.2", "198.51.100.66"]
addresses = ["198.51.100.2", "198.51.100.66"]

[[site]]
name = "lyon"
nameservers = ["203.0.113.2"]
addresses = ["203.0.113.20"]
[site.names]
vpn = ["203.0.113.30"]
`))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.DNS
	if !d.Multisite() || d.Site != "paris" || len(d.Sites) != 2 {
		t.Fatalf("%+v", d)
	}
	lyon, _ := d.SiteNamed("lyon")
	if got := lyon.AddressesFor("vpn.lb.example.com."); len(got) != 1 || got[0].String() != "203.0.113.30" {
		t.Errorf("lyon's vpn: %v", got)
	}
	if got := lyon.AddressesFor("www.lb.example.com."); len(got) != 1 || got[0].String() != "203.0.113.20" {
		t.Errorf("lyon's www: %v", got)
	}
	if ns := lyon.NSNames(d.Zone); !reflect.DeepEqual(ns, []string{"ns1.lyon.lb.example.com."}) {
		t.Errorf("lyon's name servers: %v", ns)
	}
	www, vpn := d.Names[0], d.Names[1]
	if www.Policy != uplink.SitePolicySpread || !reflect.DeepEqual(d.SitesOf(www), []string{"paris", "lyon"}) {
		t.Errorf("www: %+v", www)
	}
	if vpn.Policy != uplink.SitePolicyFailover || !reflect.DeepEqual(d.SitesOf(vpn), []string{"lyon", "paris"}) {
		t.Errorf("vpn: %+v", vpn)
	}
}

// One file serves every site: each [[site]] lists its own servers for a name; at a site they
// are the name's servers, and the other sites check its addresses with their method.
func TestOneFileServesEverySite(t *testing.T) {
	text := `
[defaults]
targets = ["192.0.2.1"]

[[uplink]]
name = "isp1"
interface = "wan1"

[dns]
zone = "lb.example.com"
site = "SITE"

[[dns.name]]
name = "www"
expect = "ok"
fallback = ["203.0.113.80"]

[[site]]
name = "paris"
nameservers = ["198.51.100.2"]
addresses = ["198.51.100.2"]
[site.servers]
www = ["http://192.0.2.10/healthz"]

[[site]]
name = "lyon"
nameservers = ["203.0.113.2"]
addresses = ["203.0.113.20"]
[site.servers]
www = ["https://203.0.113.20:8443/up"]
`
	for site, want := range map[string]string{"paris": "http://192.0.2.10:80/healthz", "lyon": "https://203.0.113.20:8443/up"} {
		cfg, err := Parse("sites.toml", []byte(strings.Replace(text, "SITE", site, 1)))
		if err != nil {
			t.Fatalf("%s: %v", site, err)
		}
		www := cfg.DNS.Names[0]
		if len(www.Servers) != 1 || www.Servers[0].String() != want || www.Servers[0].Method.Expect != "ok" {
			t.Errorf("at %s www's servers are %+v, want %s expecting ok", site, www.Servers, want)
		}
		other := map[string]string{"paris": "lyon", "lyon": "paris"}[site]
		m, ok := cfg.DNS.CheckAt(www, other)
		wantM := map[string]string{"paris": "http", "lyon": "https"}[other]
		if !ok || m.Name != wantM {
			t.Errorf("at %s, %s is checked with %+v, want its own %s", site, other, m, wantM)
		}
	}
}
