package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink"
)

func TestADrainedUplinkCarriesNoLANTrafficAndTheDrainSurvivesAReloadAndARestart(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	cfg := fastConfig()
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1")
	ctx := context.Background()
	if err := d.client.Drain(ctx, "isp1", false); err != nil {
		t.Fatal(err)
	}
	st := d.waitActive(5*time.Second, "isp2")
	if !st.Uplinks[0].Drained || st.Uplinks[0].State != uplink.Up {
		t.Errorf("isp1 drained=%v state=%s: want drained and still probed up", st.Uplinks[0].Drained, st.Uplinks[0].State)
	}
	if via := viaTCP(t, lab); via != netlab.GWWAN2Addr4.String() {
		t.Errorf("a drained isp1 still carries new connections (via %s)", via)
	}
	if err := d.client.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	d.hangup("configuration reloaded")
	if st := d.status(); !st.Uplinks[0].Drained || !slices.Equal(st.Active, []string{"isp2"}) {
		t.Errorf("after reloads: drained=%v active=%v", st.Uplinks[0].Drained, st.Active)
	}
	// A restart (an upgrade) inside the maintenance window keeps the drain: the first verdict
	// of the new run already routes around isp1.
	if err := d.d.Stop(); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, lab, cfg)
	if st := d.status(); !st.Uplinks[0].Drained || !slices.Equal(st.Active, []string{"isp2"}) {
		t.Errorf("after a restart: drained=%v active=%v, want isp1 still drained", st.Uplinks[0].Drained, st.Active)
	}
	waitUntil(t, 5*time.Second, "the restart to say it remembered the drain", func() bool {
		return strings.Contains(string(d.proc.Output()), "drain remembered from the last run")
	})
	if err := d.client.Undrain(ctx, "isp1"); err != nil {
		t.Fatal(err)
	}
	d.waitActive(5*time.Second, "isp1")
	if via := viaTCP(t, lab); via != netlab.GWWAN1Addr4.String() {
		t.Errorf("after undrain new connections leave via %s, want isp1", via)
	}
}

func TestABadReloadIsRefusedAndLeavesRoutingAndHealthUntouched(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, fastConfig())
	d.waitActive(5*time.Second, "isp1")
	before := routingText(t, lab)
	stBefore := d.status()

	good, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), "weight = 1", "weight = 0", 1)
	if err := os.WriteFile(d.config, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	err = d.client.Reload(context.Background())
	var apiErr *control.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || !strings.Contains(apiErr.Message, "weight: 0 is outside 1..256") {
		t.Fatalf("reload of a bad config: %v, want a 422 naming the key", err)
	}
	d.hangup("refused: ")
	if after := routingText(t, lab); after != before {
		t.Errorf("routing changed after a refused reload:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	st := d.status()
	for i := range st.Uplinks {
		if st.Uplinks[i].State != stBefore.Uplinks[i].State || !st.Uplinks[i].Since.Equal(stBefore.Uplinks[i].Since) {
			t.Errorf("%s: health changed from %s since %s to %s since %s", st.Uplinks[i].Name,
				stBefore.Uplinks[i].State, stBefore.Uplinks[i].Since, st.Uplinks[i].State, st.Uplinks[i].Since)
		}
	}
	// A good config is then applied without resetting health.
	if err := os.WriteFile(d.config, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.client.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := d.status(); !st.Uplinks[0].Since.Equal(stBefore.Uplinks[0].Since) {
		t.Errorf("a good reload reset isp1's health")
	}
}

func TestTheAPIRefusesUnknownUplinks(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	d := startDaemon(t, lab, fastConfig())
	err := d.client.Drain(context.Background(), "isp9", false)
	var apiErr *control.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.Message, "isp9") {
		t.Errorf("drain of an unknown uplink: %v, want 404 naming it", err)
	}
}

func TestAStoppedDaemonLeavesRoutingInPlaceAndCleanupRemovesIt(t *testing.T) {
	// The package's removal runs the cleanup whatever became of the file: gone, it cleans up
	// at the defaults (which fastConfig keeps).
	for _, configGone := range []bool{false, true} {
		t.Run(map[bool]string{false: "with the config", true: "without a config"}[configGone], func(t *testing.T) {
			lab := testkit.Lab(t, netlab.Options{})
			foreign := routingText(t, lab)
			d := startDaemon(t, lab, fastConfig())
			d.waitActive(5*time.Second, "isp1")
			owned := routingText(t, lab)
			if err := d.proc.Stop(2 * time.Second); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}
			if after := routingText(t, lab); after != owned {
				t.Errorf("stopping changed routing (fail static expected):\n%s", after)
			}
			config := d.config
			if configGone {
				config = filepath.Join(t.TempDir(), "gone.toml")
			}
			out, err := lab.Exec(context.Background(), netlab.RoleGW, uplinkdBinary(t), "--cleanup", "--config", config)
			if err != nil {
				t.Fatalf("uplinkd --cleanup: %v\n%s", err, out)
			}
			if after := routingText(t, lab); after != foreign {
				t.Errorf("cleanup did not restore the foreign state:\nwant:\n%s\ngot:\n%s", foreign, after)
			}
			if nft, _ := lab.Exec(context.Background(), netlab.RoleGW, "nft", "list", "table", "inet", "uplinkd"); strings.Contains(string(nft), "chain") {
				t.Errorf("cleanup left table inet uplinkd")
			}
		})
	}
}

// routingText is the gateway's rules and routes in every table, both families.
func routingText(t *testing.T, lab *netlab.Lab) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-4", "rule"}, {"ip", "-6", "rule"},
		{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
	} {
		out, err := lab.Exec(context.Background(), netlab.RoleGW, args...)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(out)
	}
	return b.String()
}

// hangup sends SIGHUP and waits for the reload event whose reason starts with reason.
func (d *labDaemon) hangup(reason string) {
	d.t.Helper()
	sent := time.Now()
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	if _, err := d.d.WaitEvent(context.Background(), 5*time.Second, sent, "the SIGHUP reload", func(ev api.Event) bool {
		return ev.Kind == api.KindReload && strings.HasPrefix(ev.Reason, reason)
	}); err != nil {
		d.t.Fatal(err)
	}
}
