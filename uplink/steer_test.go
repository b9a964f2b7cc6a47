package uplink

import (
	"testing"
	"time"
)

var voice = Service{Name: "voice", Uplinks: []string{"isp1", "isp2"},
	Targets: ServiceTargets{MaxRTT: 150 * time.Millisecond, MaxJitter: 30 * time.Millisecond, MaxLoss: 1}}

func lines(rtt1, rtt2 time.Duration) []Candidate {
	return []Candidate{
		{Name: "isp1", State: Up, Quality: LineQuality{RTT: rtt1, Known: true}},
		{Name: "isp2", State: Up, Quality: LineQuality{RTT: rtt2, Known: true}},
	}
}

func TestAVoiceServiceLeavesABloatedUplinkAndComesBackWithHysteresis(t *testing.T) {
	s := Steering{Leave: 1500 * time.Millisecond, Return: 5 * time.Second, HoldDown: 10 * time.Second}
	ms := time.Millisecond
	now := time.Unix(1000, 0)
	step := func(rtt1 time.Duration, d time.Duration) string {
		for end := now.Add(d); now.Before(end); now = now.Add(500 * ms) {
			s.Observe(lines(rtt1, 20*ms), []Service{voice}, now)
		}
		return s.Uplink("voice")
	}
	if got := step(10*ms, time.Second); got != "isp1" {
		t.Fatalf("clean lines: %s, want its first choice isp1", got)
	}
	if got := step(300*ms, time.Second); got != "isp1" {
		t.Errorf("after 1 s of bloat: %s, want isp1 still (leaving takes 1.5 s)", got)
	}
	if got := step(300*ms, time.Second); got != "isp2" {
		t.Errorf("after 2 s of bloat: %s, want isp2", got)
	}
	// Steady bloat: no further moves.
	moves := 0
	for range 120 {
		prev := s.Uplink("voice")
		if step(300*ms, 500*ms) != prev {
			moves++
		}
	}
	if moves != 0 {
		t.Errorf("%d moves in 60 s of steady bloat", moves)
	}
	// The bloat ends: back after 5 s of recovery, not before.
	if got := step(10*ms, 4*time.Second); got != "isp2" {
		t.Errorf("4 s after the bloat: %s, want isp2 still", got)
	}
	if got := step(10*ms, 2*time.Second); got != "isp1" {
		t.Errorf("6 s after the bloat: %s, want isp1 again", got)
	}
	// Bloat again at once: away is held down for 10 s after the last move away.
	leftAt := now
	for s.Uplink("voice") == "isp1" && now.Sub(leftAt) < time.Minute {
		step(300*ms, 500*ms)
	}
	if d := now.Sub(leftAt); d < 1500*ms {
		t.Errorf("left again %s after the bloat returned", d)
	}
}

func TestWithoutAnUplinkThatMeetsTheTargetsTheServiceTakesTheBestUsable(t *testing.T) {
	s := Steering{Leave: time.Second, Return: time.Second, HoldDown: time.Second}
	now := time.Unix(1000, 0)
	both := lines(300*time.Millisecond, 300*time.Millisecond)
	s.Observe(both, []Service{voice}, now)
	if got := s.Uplink("voice"); got != "isp1" {
		t.Errorf("both bloated: %s, want the first usable, isp1", got)
	}
	both[0].State = Down
	s.Observe(both, []Service{voice}, now.Add(time.Millisecond))
	if got := s.Uplink("voice"); got != "isp2" {
		t.Errorf("isp1 down: %s, want isp2 at once", got)
	}
	both[1].Drained = true
	s.Observe(both, []Service{voice}, now.Add(2*time.Millisecond))
	if got := s.Uplink("voice"); got != "" {
		t.Errorf("nothing usable: %q, want none (the service's fallback decides)", got)
	}
	if s.Observe(both, nil, now.Add(3*time.Millisecond)); s.Uplink("voice") != "" {
		t.Error("a service that is gone keeps its steering")
	}
}

func TestServiceTargetsEachLimit(t *testing.T) {
	ms := time.Millisecond
	q := LineQuality{RTT: 100 * ms, Jitter: 10 * ms, Loss: 0.5, MOS: 4.2, Known: true}
	for _, c := range []struct {
		t    ServiceTargets
		want bool
	}{
		{ServiceTargets{MaxRTT: 150 * ms}, true},
		{ServiceTargets{MaxRTT: 50 * ms}, false},
		{ServiceTargets{MaxJitter: 5 * ms}, false},
		{ServiceTargets{MaxLoss: 1}, true},
		{ServiceTargets{MaxLoss: 0.1}, false},
		{ServiceTargets{MinMOS: 4.3}, false},
		{ServiceTargets{MinMOS: 4}, true},
	} {
		if got := c.t.Met(q); got != c.want {
			t.Errorf("%+v met %+v: %v, want %v", c.t, q, got, c.want)
		}
	}
	if (ServiceTargets{MaxRTT: time.Second}).Met(LineQuality{}) {
		t.Error("an unmeasured uplink meets a target")
	}
}
