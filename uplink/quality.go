package uplink

import "time"

// Jitter is the mean deviation of successive RTTs of one target: the |D| of RFC 3550's
// interarrival jitter (section 6.4.1), averaged over the window instead of smoothed by 1/16,
// so that a window of 20 rounds gives the full figure rather than three quarters of it.
// Fewer than two samples: 0.
func Jitter(rtts []time.Duration) time.Duration {
	var j jitter
	for _, r := range rtts {
		j.add(r)
	}
	return j.value()
}

// jitter accumulates Jitter one RTT at a time, without keeping the samples.
type jitter struct {
	prev, dev time.Duration
	n         int
}

func (j *jitter) add(rtt time.Duration) {
	if j.n > 0 {
		d := rtt - j.prev
		j.dev += max(d, -d)
	}
	j.prev = rtt
	j.n++
}

func (j *jitter) value() time.Duration {
	if j.n < 2 {
		return 0
	}
	return j.dev / time.Duration(j.n-1)
}

// MOS estimates the mean opinion score of a G.711 voice call over a path with this RTT,
// jitter and loss (percent), by the simplified E-model of ITU-T G.107 that link controllers
// (FortiOS among them) use: the effective one-way latency is RTT/2 plus twice the jitter (a
// jitter buffer) plus 10 ms of codec delay; R falls by 1 per 40 ms of it up to 160 ms and by 1
// per 10 ms beyond, and by 2.5 per percent of loss; MOS is G.107's function of R: 4.4 on a
// clean line, 3.6 where users start to complain, 1 when nothing gets through.
func MOS(rtt, jitter time.Duration, lossPct float64) float64 {
	eff := float64(rtt/2+2*jitter)/float64(time.Millisecond) + 10
	r := 93.2 - eff/40
	if eff >= 160 {
		r = 93.2 - (eff-120)/10
	}
	r -= 2.5 * lossPct
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + 7e-6*r*(r-60)*(100-r)
}
