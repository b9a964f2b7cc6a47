package main

import (
	"bytes"
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
