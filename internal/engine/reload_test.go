package engine

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

func TestReloadRefusesABadFileAndKeepsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.rounds("isp1", false, 3)
		r.rewrite(`priority = 2`, "priority = 2\nweight = 0")
		err := r.e.Reload()
		if err == nil || !strings.Contains(err.Error(), "weight") || !strings.Contains(err.Error(), r.path) {
			t.Fatalf("reload: %v, want a refusal naming the file and the key", err)
		}
		r.wantActive("isp2")
		if r.state("isp1") != uplink.Down {
			t.Errorf("a refused reload changed isp1's state to %s", r.state("isp1"))
		}
		if !slices.Contains(r.kinds(), "reload") {
			t.Errorf("no reload event: %v", r.kinds())
		}
		r.close()
	})
}

func TestReloadRefusesWhatOnlyARestartCanChange(t *testing.T) {
	for _, c := range []struct{ old, new, key string }{
		{`socket = "/run/uplinkd-test.sock"`, `socket = "/run/other.sock"`, "daemon.socket"},
		{"[daemon]\n", "[daemon]\nsocket_group = \"wheel\"\n", "daemon.socket_group"},
		{"[daemon]\n", "[daemon]\ntable_base = 300\n", "daemon.table_base"},
		{"[daemon]\n", "[daemon]\nrule_priority = 2000\n", "daemon.rule_priority"},
	} {
		t.Run(c.key, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := startRig(t, twoISPs)
				r.rewrite(c.old, c.new)
				err := r.e.Reload()
				if err == nil || !strings.Contains(err.Error(), c.key) || !strings.Contains(err.Error(), "restart") {
					t.Fatalf("reload: %v, want a refusal naming %s and the restart", err, c.key)
				}
				r.close()
			})
		})
	}
}

func TestReloadAppliesEverySettingLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		// Same tier, weights 3:1, pinning off, a new log level, isp2 probed differently.
		r.rewrite("[daemon]\n", "[daemon]\npin_connections = false\nlog_level = \"warn\"\n")
		r.rewrite("priority = 2", "priority = 1\nweight = 3\ninterval = \"200ms\"")
		startedISP1, startedISP2 := r.probes.startedCount("isp1"), r.probes.startedCount("isp2")
		if err := r.e.Reload(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		r.wantActive("isp1", "isp2")
		if _, on := r.dp.Pins(); on {
			t.Errorf("pin_connections = false: the state still asks for the connection-mark table")
		}
		if r.probes.startedCount("isp1") != startedISP1 || r.probes.startedCount("isp2") != startedISP2+1 {
			t.Errorf("probers restarted: isp1 %d→%d, isp2 %d→%d; want only isp2's (its probing changed)",
				startedISP1, r.probes.startedCount("isp1"), startedISP2, r.probes.startedCount("isp2"))
		}
		if r.state("isp1") != uplink.Up {
			t.Errorf("an unchanged uplink lost its state: %s", r.state("isp1"))
		}
		// And back on: the table comes back.
		r.rewrite("pin_connections = false", "pin_connections = true")
		if err := r.e.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, on := r.dp.Pins(); !on {
			t.Errorf("pin_connections = true: the state does not ask for the table again")
		}
		r.close()
	})
}

func TestReloadKeepsTheDrainOfAnUplinkWhoseInterfaceChanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		if err := r.e.Drain("isp1", true, false); err != nil {
			t.Fatal(err)
		}
		r.dp.SetLink("wan9", 9, true)
		r.rewrite(`interface = "wan1"`, `interface = "wan9"`)
		if err := r.e.Reload(); err != nil {
			t.Fatal(err)
		}
		st := r.e.Status()
		if !st.Uplinks[0].Drained || st.Uplinks[0].Interface != "wan9" {
			t.Errorf("isp1 after moving to wan9: drained %v on %s", st.Uplinks[0].Drained, st.Uplinks[0].Interface)
		}
		time.Sleep(time.Second)
		r.close()
	})
}
