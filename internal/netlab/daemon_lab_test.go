package netlab_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestADaemonStartsJudgesFollowsEventsAndStopsCleanly(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{})
	ctx := context.Background()
	bin, err := netlab.UplinkdBinary(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := lab.StartDaemon(ctx, netlab.DaemonOptions{Binary: bin, InfoLogs: true,
		Config: netlab.DaemonConfig{Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, DownAfter: 3, UpAfter: 5}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("uplinkd output:\n%s", d.Proc().Output())
		}
	}()
	t.Cleanup(func() { d.Stop() })
	if _, err := d.WaitStatus(ctx, 5*time.Second, "isp1 active", func(st api.Status) bool { return len(st.Active) == 1 && st.Active[0] == "isp1" }); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	if err := d.Client().Drain(ctx, "isp1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WaitEvent(ctx, 5*time.Second, since, "the move to isp2", netlab.ActiveIs("isp2")); err != nil {
		t.Fatal(err)
	}
	if u, err := d.Usage(); err != nil || u.VmHWM <= 0 {
		t.Errorf("usage %+v, %v; want a positive VmHWM", u, err)
	}
	if text, err := os.ReadFile(d.ConfigPath()); err != nil || !strings.Contains(string(text), `log_level = "info"`) {
		t.Errorf("the config does not log at info: %v\n%s", err, text)
	}
	if err := d.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(d.ConfigPath())); !os.IsNotExist(err) {
		t.Errorf("Stop left the daemon's directory behind: %v", err)
	}
	if _, err := d.WaitStatus(ctx, time.Second, "anything", func(api.Status) bool { return true }); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("waiting on a stopped daemon gave %v, want an error saying it exited", err)
	}
}
