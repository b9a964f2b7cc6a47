package engine

import (
	"errors"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/uplinkd/uplinkd/internal/api"
)

const pair = twoISPs + `
[ha]
track_file = "/run/uplinkd/vrrp-priority"
`

func TestAPairBoxTellsKeepalivedHowManyUplinksItCanUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, pair)
		r.rounds("isp2", false, 3)
		r.rounds("isp2", true, 3)
		if got, want := r.track.seen(), []string{"2/2", "1/2", "2/2"}; !slices.Equal(got, want) {
			t.Errorf("track file went %v, want %v", got, want)
		}
		if r.track.path != "/run/uplinkd/vrrp-priority" {
			t.Errorf("track file %q", r.track.path)
		}
		if st := r.e.Status(); st.HA == nil || st.HA.Standby {
			t.Errorf("status HA %+v, want in a pair and not in standby", st.HA)
		}
		r.close()
	})
}

func TestNothingIsWrittenBeforeEveryUplinkHasAVerdict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No first round answered: both uplinks are still unknown, and an uplinkd restarting on
		// the master must not lower its priority because of that.
		r := startRigAnswering(t, pair, false)
		r.rounds("isp1", true, 1)
		if got := r.track.seen(); len(got) != 0 {
			t.Fatalf("written before isp2 had a verdict: %v", got)
		}
		r.rounds("isp2", false, 3)
		if got := r.track.seen(); !slices.Equal(got, []string{"1/2"}) {
			t.Errorf("track file went %v, want 1/2 once isp2 is judged down", got)
		}
		r.close()
	})
}

func TestStandbyHandsTheAddressesOverAndActiveTakesThemBackAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, pair)
		if err := r.e.Standby(true); err != nil {
			t.Fatal(err)
		}
		if err := r.e.Standby(true); err != nil { // idempotent
			t.Fatal(err)
		}
		r.rounds("isp2", false, 3) // a verdict change while in standby keeps the standby
		if err := r.e.Standby(false); err != nil {
			t.Fatal(err)
		}
		if got, want := r.track.seen(), []string{"2/2", "standby", "1/2"}; !slices.Equal(got, want) {
			t.Errorf("track file went %v, want %v", got, want)
		}
		if !slices.Contains(r.kinds(), "ha") {
			t.Errorf("no ha event: %v", r.kinds())
		}
		r.close()
	})
}

func TestAStandbySurvivesARestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRigWith(t, pair, func(r *rig) { r.track.start = true })
		if got := r.track.seen(); !slices.Equal(got, []string{"standby"}) {
			t.Errorf("a restarted uplinkd wrote %v, want the standby kept", got)
		}
		r.close()
	})
}

func TestStandbyOutsideAPairSaysHowToMakeOne(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, twoISPs)
		if err := r.e.Standby(true); !errors.Is(err, api.ErrNotInPair) {
			t.Errorf("standby without [ha]: %v", err)
		}
		if r.e.Status().HA != nil {
			t.Errorf("a box without [ha] reports a pair")
		}
		r.close()
	})
}
