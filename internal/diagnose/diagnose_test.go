package diagnose

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/uplink"
)

func TestCheckSaysWhenTheKernelIsTooOldForNPTv6(t *testing.T) {
	c := uplink.DefaultConfig()
	cfg := &c
	cfg.Uplinks = []uplink.Uplink{{Name: "isp1", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a1::/64")}}}
	cfg.IPv6.NPTv6 = true
	for release, warn := range map[string]bool{"5.4.0-150-generic": true, "5.8.0": false, "6.1.0-28-amd64": false, "4.19.0": true} {
		if got := kernelWarning(cfg, release) != ""; got != warn {
			t.Errorf("kernel %s: warning %v, want %v", release, got, warn)
		}
	}
	cfg.IPv6.NPTv6 = false
	if w := kernelWarning(cfg, "4.19.0"); w != "" {
		t.Errorf("NPTv6 off: %q", w)
	}
}

// Check prints the summary and a warning for a lone probe target, and fails on a hook whose
// program is missing; without --probe it touches no network.
func TestCheckSummarisesWarnsAndFailsOnAMissingHookProgram(t *testing.T) {
	c := uplink.DefaultConfig()
	cfg := &c
	cfg.Path = "uplinkd.toml"
	cfg.Daemon.SocketGroup = "root"
	cfg.Uplinks = []uplink.Uplink{{ID: 1, Name: "isp1", Interface: "wan1", Priority: 1, Weight: 1, Probe: cfg.Defaults}}
	cfg.Uplinks[0].Probe.Targets = []netip.Addr{netip.MustParseAddr("192.0.2.53")}
	var out bytes.Buffer
	if !Check(context.Background(), &out, cfg, false) {
		t.Errorf("a good config failed:\n%s", out.String())
	}
	for _, want := range []string{"uplinkd.toml: ok, 1 uplinks", "isp1", "warning: uplink isp1 has a single probe target"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	cfg.Hooks = []uplink.Hook{{Name: "page", Command: []string{"/nonexistent/page-someone"}, Events: []string{"state"}}}
	out.Reset()
	if Check(context.Background(), &out, cfg, false) || !strings.Contains(out.String(), "error: hook page:") {
		t.Errorf("a missing hook program passed:\n%s", out.String())
	}
}
