package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrHa string
	}{
		{"version prints the version", []string{"--version"}, 0, "uplinkd dev", ""},
		{"check accepts a valid config and summarises it", []string{"--check", "--config", "../../uplink/config/testdata/valid.toml"}, 0, "ok, 2 uplinks", ""},
		{"check names file, line and key of a mistake", []string{"--check", "--config", "../../uplink/config/testdata/invalid-weight-zero.toml"}, 1, "", "invalid-weight-zero.toml:8: uplink[1].weight: 0 is outside 1..256"},
		{"a missing config file is an error", []string{"--check", "--config", "/nonexistent/uplinkd.toml"}, 1, "", "no such file"},
		{"a stray argument is a usage error", []string{"check"}, 2, "", "unexpected argument"},
		{"an unknown flag is a usage error", []string{"--frobnicate"}, 2, "", "flag provided but not defined"},
		{"the shipped example config validates", []string{"--check", "--config", "../../packaging/uplinkd.toml"}, 0, "ok,", ""},
	}
	// --check judges the files the config names: a TSIG key that others can read is refused.
	dir := t.TempDir()
	key, cfg := filepath.Join(dir, "tsig.key"), filepath.Join(dir, "uplinkd.toml")
	os.WriteFile(key, []byte("key \"uplinkd\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };\n"), 0o644)
	os.Chmod(key, 0o644)
	os.WriteFile(cfg, []byte("[defaults]\ntargets = [\"192.0.2.1\"]\n[[uplink]]\nname = \"isp1\"\ninterface = \"wan1\"\n"+
		"[dns]\nzone = \"lb.example.com\"\n[dns.update]\nserver = \"192.0.2.53\"\nkey_file = \""+key+"\"\n[[dns.name]]\nname = \"www\"\n"), 0o644)
	tests = append(tests, struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrHa string
	}{"check refuses a key file others can read", []string{"--check", "--config", cfg}, 1, "", cfg + ":10: dns.update.key_file: tsig key: " + key + ": mode 0644"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderrHa) {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
			}
		})
	}
}
