package systemd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const unitFile = "uplinkd.service"

// TestUnitPassesSystemdAnalyzeVerify runs systemd's own checker on the unit. The packaged
// ExecStart binary is not installed here, so a copy of the unit points at a stub.
func TestUnitPassesSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: cannot verify the unit")
	}
	src, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "uplinkd")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("ExecStart=/usr/sbin/uplinkd ")) {
		t.Fatal("ExecStart no longer runs /usr/sbin/uplinkd: update this test with the unit")
	}
	unit := bytes.ReplaceAll(src, []byte("ExecStart=/usr/sbin/uplinkd "), []byte("ExecStart="+stub+" "))
	path := filepath.Join(dir, unitFile)
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(analyze, "verify", "--man=no", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	// verify exits 0 on warnings; any word on stderr is a finding.
	if err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s%s", err, stdout.String(), stderr.String())
	}
}

// TestUnitKeepsItsPromises pins the settings other parts of uplinkd rely on.
func TestUnitKeepsItsPromises(t *testing.T) {
	unit := parseUnit(t, unitFile)
	tests := []struct {
		name, key, want string
	}{
		{"readiness comes from sd_notify", "Service.Type", "notify"},
		{"the daemon reads the packaged config", "Service.ExecStart", "/usr/sbin/uplinkd --config /etc/uplinkd/uplinkd.toml"},
		{"reload is SIGHUP because systemd 252 has no notify-reload", "Service.ExecReload", "/bin/kill -HUP $MAINPID"},
		{"the watchdog is 10s, pinged at half", "Service.WatchdogSec", "10"},
		{"a crash restarts it after a second", "Service.Restart", "on-failure"},
		{"restart delay", "Service.RestartSec", "1"},
		{"the socket directory is systemd's", "Service.RuntimeDirectory", "uplinkd"},
		{"others may reach the socket directory", "Service.RuntimeDirectoryMode", "0755"},
		{"only the two network capabilities are kept", "Service.CapabilityBoundingSet", "CAP_NET_ADMIN CAP_NET_RAW"},
		{"and granted", "Service.AmbientCapabilities", "CAP_NET_ADMIN CAP_NET_RAW"},
		{"it may hand the socket to its group without CAP_CHOWN", "Service.SupplementaryGroups", "uplinkd"},
		{"netlink is allowed", "Service.RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6 AF_NETLINK"},
		{"the file system is read-only", "Service.ProtectSystem", "strict"},
		{"it starts at boot once enabled", "Install.WantedBy", "multi-user.target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unit[tt.key]; len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
	t.Run("no cleanup on stop: the routes stay (fail static)", func(t *testing.T) {
		if got := unit["Service.ExecStopPost"]; len(got) > 0 {
			t.Errorf("ExecStopPost = %q", got)
		}
	})
	t.Run("it never runs as another user, which would lose netlink rights", func(t *testing.T) {
		if got := unit["Service.User"]; len(got) > 0 && !slices.Equal(got, []string{"root"}) {
			t.Errorf("User = %q", got)
		}
	})
}

// parseUnit reads "Section.Key" → values; enough of the unit syntax for our own file (no line
// continuations).
func parseUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: cannot read %q", path, n, line)
			}
			out[section+"."+strings.TrimSpace(k)] = append(out[section+"."+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
