package uplink

import (
	"math"
	"net/netip"
	"testing"
	"time"
)

func TestJitterIsTheMeanDeviationOfSuccessiveRTTs(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		rtts []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{10 * ms}, 0},
		{[]time.Duration{10 * ms, 10 * ms, 10 * ms}, 0},
		{[]time.Duration{10 * ms, 30 * ms, 10 * ms, 30 * ms}, 20 * ms},
		{[]time.Duration{10 * ms, 20 * ms, 40 * ms}, 15 * ms},
	} {
		if got := Jitter(c.rtts); got != c.want {
			t.Errorf("Jitter(%v) = %s, want %s", c.rtts, got, c.want)
		}
	}
}

func TestMOSFollowsTheEModel(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		what        string
		rtt, jitter time.Duration
		loss        float64
		want        float64
	}{
		{"a clean LAN-like line", 2 * ms, 0, 0, 4.40},
		{"a good Internet line", 40 * ms, 2 * ms, 0, 4.39},
		{"G.114's 150 ms one way: R 89.2", 300 * ms, 0, 0, 4.32},
		{"bufferbloat: 600 ms RTT, 30 ms jitter: R 68.2", 600 * ms, 30 * ms, 0, 3.51},
		{"3 % loss: R 84.85", 40 * ms, 2 * ms, 3, 4.19},
		{"everything lost", 40 * ms, 0, 100, 1},
	} {
		if got := MOS(c.rtt, c.jitter, c.loss); math.Abs(got-c.want) > 0.01 {
			t.Errorf("%s: MOS = %.3f, want %.2f", c.what, got, c.want)
		}
	}
}

func TestAnUplinksJitterAndMOSComeFromItsQuorumthBestTarget(t *testing.T) {
	ms := time.Millisecond
	targets := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")}
	p := DefaultConfig().Defaults
	p.Targets, p.Quorum = targets, 2
	m := NewMachine("isp1", p, time.Unix(0, 0))
	for i := range 20 {
		r := Round{Start: time.Unix(int64(i), 0)}
		for j, tg := range targets {
			rtt := 40 * ms // target 0: steady; 1: ±10 ms; 2: ±40 ms
			if i%2 == 1 {
				rtt += time.Duration(j*j*10) * ms
			}
			r.Results = append(r.Results, Result{Target: tg, OK: true, RTT: rtt})
		}
		m.ObserveRound(r)
	}
	line := m.Line()
	jitter, mos := line.Jitter, line.MOS
	if jitter != 10*ms {
		t.Errorf("jitter %s, want the second best target's 10ms", jitter)
	}
	loss, rtt := m.Quality()
	if want := MOS(rtt, 10*ms, loss); mos != want || mos < 4 {
		t.Errorf("MOS %.2f, want %.2f (a good line)", mos, want)
	}
}
