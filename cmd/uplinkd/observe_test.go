package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckRefusesAMissingHookProgramAndWarnsAboutAnOpenMetricsListener(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "notify")
	if err := os.WriteFile(good, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := func(prog, listen string) string {
		p := filepath.Join(dir, "uplinkd.toml")
		src := "[daemon]\nmetrics_listen = \"" + listen + "\"\n[defaults]\ntargets = [\"192.0.2.53\", \"198.51.100.53\"]\n" +
			"[[uplink]]\nname = \"isp1\"\ninterface = \"wan1\"\n[[hook]]\nevents = [\"state\"]\ncommand = [\"" + prog + "\"]\n"
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var out bytes.Buffer
	if code := run([]string{"--check", "--config", cfg(good, "127.0.0.1:9847")}, &out, &out); code != 0 || strings.Contains(out.String(), "metrics_listen") {
		t.Errorf("a present hook and a loopback listener: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--check", "--config", cfg("/nonexistent/notify", "192.0.2.1:9847")}, &out, &out); code != 1 ||
		!strings.Contains(out.String(), "error: hook notify: stat /nonexistent/notify: no such file or directory") ||
		!strings.Contains(out.String(), "warning: metrics_listen 192.0.2.1:9847 is not a loopback address") {
		t.Errorf("a missing hook program must fail --check, an open listener warn: exit %d\n%s", code, out.String())
	}
}
