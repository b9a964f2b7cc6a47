package probe

import (
	"testing"
	"time"
)

func TestAlarmRingsNoSoonerThanSetAndTheLastSetWins(t *testing.T) {
	for name, make := range map[string]func() *alarm{"timerfd": newAlarm, "runtime timer": newTimerAlarm} {
		t.Run(name, func(t *testing.T) {
			a := make()
			defer a.close()
			if name == "timerfd" && a.f == nil {
				t.Fatal("no timerfd: the alarm fell back to a runtime timer")
			}
			ring := func(within time.Duration) bool {
				select {
				case <-a.C:
					return true
				case <-time.After(within):
					return false
				}
			}
			a.set(0)
			if !ring(5 * time.Second) {
				t.Fatal("set(0) did not ring")
			}
			a.set(time.Hour)
			set := time.Now()
			a.set(50 * time.Millisecond) // replaces the hour
			if !ring(5 * time.Second) {
				t.Fatal("set(50ms) after set(1h) did not ring")
			}
			if d := time.Since(set); d < 50*time.Millisecond {
				t.Errorf("rang after %s, set for 50ms", d)
			}
			a.set(time.Hour)
			if ring(100 * time.Millisecond) {
				t.Error("rang although set for an hour")
			}
		})
	}
}
