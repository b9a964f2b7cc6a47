package engine

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/uplink"
)

// A metered backup is probed gently while it carries nothing and the primary is sure, at full
// rate the moment the primary's probes fail, and while it carries traffic.
func TestAMeteredBackupIsProbedGentlyUntilItMayBeNeeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs+"metered = true\n")
		time.Sleep(tickEvery)
		synctest.Wait()
		if m := r.probes.mode("isp2"); m != probe.ModeGentle {
			t.Fatalf("idle metered backup: %s, want gentle", m)
		}
		if m := r.probes.mode("isp1"); m != probe.ModeFull {
			t.Errorf("the primary: %s, want full (nothing proves it alive but its probes)", m)
		}
		r.probes.roundLosing("isp1") // one lost probe (a line with a little loss) is no doubt
		synctest.Wait()              // the engine has taken the round: a doubt would act at once
		if m := r.probes.mode("isp2"); m != probe.ModeGentle {
			t.Fatalf("one probe of the primary lost: backup %s, want still gentle", m)
		}
		r.rounds("isp1", false, 1) // the primary in doubt: a round without quorum
		if m := r.probes.mode("isp2"); m != probe.ModeFull {
			t.Fatalf("primary in doubt: backup %s, want full at once", m)
		}
		r.rounds("isp1", true, 20) // the doubt passes
		if m := r.probes.mode("isp2"); m != probe.ModeGentle {
			t.Errorf("primary sure again: backup %s, want gentle", m)
		}
		r.rounds("isp1", false, 3)
		r.wantActive("isp2")
		r.rounds("isp1", false, 30)
		if m := r.probes.mode("isp2"); m != probe.ModeFull {
			t.Errorf("the metered backup carries the traffic: %s, want full", m)
		}
		r.close()
	})
}

// An uplink whose connections keep receiving packets gets one target per round; when the
// packets stop, every target again.
func TestTrafficThatProvesLifeThinsTheProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		mark := uplink.MarkOf(1)
		for range 3 {
			r.dp.Receive(mark, 10)
			r.rounds("isp1", true, 10)
		}
		if m := r.probes.mode("isp1"); m != probe.ModeSparse {
			t.Fatalf("isp1 receiving: %s, want sparse", m)
		}
		if m := r.probes.mode("isp2"); m != probe.ModeFull {
			t.Errorf("isp2 carries nothing: %s, want full", m)
		}
		r.rounds("isp1", true, 20)
		if m := r.probes.mode("isp1"); m != probe.ModeFull {
			t.Errorf("isp1's packets stopped: %s, want full", m)
		}
		r.close()
	})
}
