package engine

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

func TestRepliesArrivingForItsConnectionsKeepAnUplinkWhoseProbesAreLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		// A full queue: every probe of isp1 is lost, while the LAN's connections through it
		// keep getting replies.
		for range 10 {
			r.dp.Receive(0x100, 50)
			r.rounds("isp1", false, 1)
		}
		if s := r.state("isp1"); s == uplink.Down {
			t.Fatalf("isp1 is down although replies kept arriving for its connections")
		}
		r.wantActive("isp1")
		// The upstream dies: nothing arrives any more, and the probes decide.
		r.rounds("isp1", false, 4)
		if s := r.state("isp1"); s != uplink.Down {
			t.Errorf("isp1 is %s; without replies its lost probes must take it down", s)
		}
		r.wantActive("isp2")
		r.close()
	})
}

func TestABackupWithoutTrafficIsJudgedByItsProbesAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.rounds("isp2", false, 3) // isp2 carries nothing: no replies to weigh
		if s := r.state("isp2"); s != uplink.Down {
			t.Errorf("isp2 is %s, want down after down_after rounds without quorum", s)
		}
		r.close()
	})
}

func TestTheTableIsReadOnlyForRoundsWithoutQuorum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		r.rounds("isp1", true, 20)
		if n := r.dp.Reads(); n != 0 {
			t.Errorf("%d reads of the counters in 20 good rounds, want none", n)
		}
		r.close()
	})
}

func TestRoundsArrivingInABurstWaitForTheRepliesWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		for range 3 { // a busy gateway delivers three failed rounds at once
			r.probes.round("isp1", false)
		}
		synctest.Wait()
		r.dp.Receive(0x100, 5)         // the LAN's replies keep arriving meanwhile
		time.Sleep(2 * evidenceWindow) // fake time: the held rounds' window closes
		synctest.Wait()
		if s := r.state("isp1"); s == uplink.Down {
			t.Errorf("isp1 was judged down by a burst of rounds before its replies could be counted")
		}
		r.close()
	})
}
