package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestADeletedOwnedRuleAndTheNftablesTableAreRestored(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	ctx := context.Background()
	labTable := gwExec(t, lab, "nft", "list", "table", "inet", "lab")
	owned := routingText(t, lab)

	gwExec(t, lab, "ip", "-4", "rule", "del", "pref", "1040")
	took := waitUntil(t, 10*time.Second, "the deleted rule to come back", func() bool { return routingText(t, lab) == owned })
	t.Logf("the deleted rule was restored after %s", took)

	gwExec(t, lab, "nft", "delete", "table", "inet", "uplinkd")
	took = waitUntil(t, 10*time.Second, "the nftables table to come back", func() bool {
		_, err := lab.Exec(ctx, netlab.RoleGW, "nft", "list", "table", "inet", "uplinkd")
		return err == nil
	})
	t.Logf("the deleted nftables table was restored after %s", took)
	if got := gwExec(t, lab, "nft", "list", "table", "inet", "lab"); got != labTable {
		t.Errorf("another nftables table changed:\nbefore:\n%s\nafter:\n%s", labTable, got)
	}
}

func TestARestartedDaemonAdoptsItsEntriesAndCleanupRemovesThemAll(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	foreignRouting := routingText(t, lab)
	foreignNft := gwExec(t, lab, "nft", "list", "ruleset")
	first := startDaemon(t, lab, fastConfig())
	first.waitActive(5*time.Second, "isp1")
	owned := routingText(t, lab)
	ownedNft := withoutCounts(gwExec(t, lab, "nft", "list", "ruleset"))
	if err := first.d.Stop(); err != nil {
		t.Fatal(err)
	}
	second := startDaemon(t, lab, fastConfig())
	second.waitActive(5*time.Second, "isp1")
	if got := routingText(t, lab); got != owned {
		t.Errorf("a restarted daemon changed routing (duplicates?):\nbefore:\n%s\nafter:\n%s", owned, got)
	}
	if got := withoutCounts(gwExec(t, lab, "nft", "list", "ruleset")); strings.Count(got, "table inet uplinkd") != 1 || got != ownedNft {
		t.Errorf("a restarted daemon changed nftables:\nbefore:\n%s\nafter:\n%s", ownedNft, got)
	}
	config := filepath.Join(t.TempDir(), "uplinkd.toml") // Stop removes the daemon's directory
	if text, err := os.ReadFile(second.config); err != nil || os.WriteFile(config, text, 0o644) != nil {
		t.Fatalf("keep the config: %v", err)
	}
	if err := second.d.Stop(); err != nil {
		t.Fatal(err)
	}
	gwExec(t, lab, uplinkdBinary(t), "--cleanup", "--config", config)
	if got := routingText(t, lab); got != foreignRouting {
		t.Errorf("cleanup left routing different from before uplinkd:\nwant:\n%s\ngot:\n%s", foreignRouting, got)
	}
	if got := gwExec(t, lab, "nft", "list", "ruleset"); got != foreignNft {
		t.Errorf("cleanup left nftables different from before uplinkd:\nwant:\n%s\ngot:\n%s", foreignNft, got)
	}
}

// A member of the socket's group may read the real daemon's status but not change anything:
// the daemon checks the peer's credentials (SO_PEERCRED).
func TestANonRootPeerMayReadTheStatusButNotDrain(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	cfg := fastConfig()
	cfg.SocketGroup = "nogroup" // gid 65534 on Debian
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	dir, err := os.MkdirTemp("", "uplinkctl-") // t.TempDir's parent is closed to nobody
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctl := filepath.Join(dir, "uplinkctl")
	if out, err := exec.Command("go", "build", "-o", ctl, "../uplinkctl").CombinedOutput(); err != nil {
		t.Fatalf("build uplinkctl: %v\n%s", err, out)
	}
	for _, p := range []string{filepath.Dir(ctl), filepath.Dir(d.config)} {
		if err := os.Chmod(p, 0o755); err != nil { // temp dirs are 0700: let nobody through
			t.Fatal(err)
		}
	}
	socket := filepath.Join(filepath.Dir(d.config), "uplinkd.sock")
	asNobody := func(args ...string) (string, int) {
		cmd := exec.Command(ctl, append([]string{"--socket", socket}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil {
			t.Fatalf("run uplinkctl as nobody: %v", err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := asNobody("status"); code != 0 || !strings.Contains(out, "isp1") {
		t.Errorf("status as nobody: exit %d\n%s", code, out)
	}
	if out, code := asNobody("drain", "isp1"); code == 0 || !strings.Contains(out, "needs root") {
		t.Errorf("drain as nobody: exit %d\n%s", code, out)
	}
	if st := d.status(); st.Uplinks[0].Drained {
		t.Error("a non-root peer drained isp1")
	}
}

// gwExec runs a command in the gateway namespace and returns its output.
func gwExec(t *testing.T, lab *netlab.Lab, args ...string) string {
	t.Helper()
	out, err := lab.Exec(context.Background(), netlab.RoleGW, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// waitUntil is testkit.WaitUntil: ok, polled, bounded by limit.
func waitUntil(t *testing.T, limit time.Duration, what string, ok func() bool) time.Duration {
	t.Helper()
	return testkit.WaitUntil(t, limit, what, ok)
}

// withoutCounts blanks the packet and byte counts of nft's listing: they count traffic, not
// configuration.
func withoutCounts(listing string) string {
	return regexp.MustCompile(`packets \d+ bytes \d+`).ReplaceAllString(listing, "packets N bytes N")
}
