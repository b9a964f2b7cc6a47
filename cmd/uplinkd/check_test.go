package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

// `uplinkd --check --probe` while the daemon runs: isp1 dead silently, isp2 fine. Each probe
// leaves through its own uplink: leaked through isp2, isp1's probes would be answered.
func TestCheckProbeFindsTheDeadUplinkThroughItsOwnPin(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	out, err := lab.Exec(context.Background(), netlab.RoleGW, uplinkdBinary(t), "--check", "--probe", "--config", d.config)
	text := string(out)
	t.Logf("uplinkd --check --probe:\n%s", text)
	if err == nil {
		t.Errorf("exit status 0 with a dead uplink, want 1")
	}
	for _, want := range []string{"isp1: NO TARGET ANSWERED; mark 0x100 from 198.51.100.", "isp2: 3/3 answered (loss 0%); mark 0x200"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(text, "NOT PINNED") {
		t.Errorf("the daemon runs, yet the probes are said not to be pinned")
	}
}

// Without the daemon its mark rules are missing: the check says the probes are not pinned.
func TestCheckProbeSaysWhenProbesAreNotPinned(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	dir := t.TempDir()
	config := filepath.Join(dir, "uplinkd.toml")
	cfg := fastConfig()
	cfg.Socket = filepath.Join(dir, "uplinkd.sock")
	if err := os.WriteFile(config, []byte(cfg.Render()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := lab.Exec(context.Background(), netlab.RoleGW, uplinkdBinary(t), "--check", "--probe", "--config", config)
	if text := string(out); !strings.Contains(text, "isp1: ") || !strings.Contains(text, "NOT PINNED: no rule `fwmark 0x100 lookup 1001` (is uplinkd running?)") {
		t.Errorf("uplinkd --check --probe without the daemon:\n%s\nwant it to say the probes are not pinned", text)
	}
}
