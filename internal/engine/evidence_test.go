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

// Good rounds never read the counters; only the probe-mode weighing does, once a second.
func TestTheTableIsReadOnlyForRoundsWithoutQuorumAndOnceASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		start := time.Now()
		r.rounds("isp1", true, 20)
		if n, most := r.dp.Reads(), int(time.Since(start)/tickEvery)+1; n > most {
			t.Errorf("%d reads of the counters in 20 good rounds over %s, want at most %d", n, time.Since(start), most)
		}
		r.close()
	})
}
