package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEmbedded(t *testing.T) {
	for name, text := range map[string]string{"keepalived": Keepalived, "conntrackd": Conntrackd, "notify": Notify, "nftables": Nftables} {
		if len(text) < 100 {
			t.Errorf("%s: %d bytes embedded", name, len(text))
		}
	}
	for _, s := range []string{TrackFile, NotifyPath, "advert_int 0.1", "vrrp_version 3", "vrrp_sync_group"} {
		if !strings.Contains(Keepalived, s) {
			t.Errorf("keepalived.conf lacks %q", s)
		}
	}
	for _, s := range []string{ConntrackdLock, ConntrackdSocket, SyncA, SyncB, "Mode FTFW"} {
		if !strings.Contains(Conntrackd, s) {
			t.Errorf("conntrackd.conf lacks %q", s)
		}
	}
	for _, s := range []string{ConntrackdConfig, ConntrackdLock, "-c", "-f", "-R", "-B", "-n", "-F"} {
		if !strings.Contains(Notify, s) {
			t.Errorf("notify script lacks %q", s)
		}
	}
}

// keepalived --config-test parses the file without starting anything; it needs the notify
// script to exist (and be root-owned) at its path, so the test points it at a copy, and the
// interfaces to exist, so it runs in a throwaway namespace that has them.
func TestKeepalivedConfigTest(t *testing.T) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Skip("keepalived not installed (apt install keepalived)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: keepalived checks script security as root")
	}
	dir, err := os.MkdirTemp("/run", "uplinkd-examples-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "notify.sh")
	if err := os.WriteFile(script, []byte(Notify), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(Keepalived, NotifyPath, script)
	conf = strings.ReplaceAll(conf, TrackFile, filepath.Join(dir, "prio"))
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// In a throwaway namespace (unshare -n) that has the interfaces the file names.
	sh := "ip link add lan0 type veth peer name p0 && ip link add wan1 type veth peer name p1 && " +
		"ip link add wan2 type veth peer name p2 && exec keepalived --config-test -l -f " + path
	out, err := exec.CommandContext(ctx, "unshare", "-n", "sh", "-c", sh).CombinedOutput()
	if err != nil {
		t.Fatalf("keepalived --config-test: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "warning") || strings.Contains(l, "error") || strings.Contains(l, "unknown") {
			t.Errorf("keepalived --config-test: %s", line)
		}
	}
}

// nft -c checks the ruleset against the kernel without loading it, in a throwaway namespace
// (unshare -n), so not even a check touches the machine's own ruleset.
func TestNftablesCheck(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: nft -c talks to the kernel")
	}
	path := filepath.Join(t.TempDir(), "nftables.conf")
	if err := os.WriteFile(path, []byte(Nftables), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "-n", "nft", "-c", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("nft -c -f: %v\n%s", err, out)
	}
}

func TestNotifyScriptSyntax(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sh")
	if err := os.WriteFile(path, []byte(Notify), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
}
