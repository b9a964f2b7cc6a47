package netlab

import (
	"testing"
	"time"
)

func TestFlowReport(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name     string
		answered string // one character per datagram sent 10ms apart: y answered, n not
		stopped  bool
		want     []Outage
	}{
		{"a flow with every reply has no outage", "yyyy", true, nil},
		{"a gap between replies is one outage from the first loss to the next answer", "yynnny", true,
			[]Outage{{Start: at(20), End: at(50), Lost: 3}}},
		{"losses at the end of a stopped flow are an ongoing outage", "yynn", true,
			[]Outage{{Start: at(20), End: at(30), Lost: 2, Ongoing: true}}},
		{"two gaps are two outages", "ynyny", true,
			[]Outage{{Start: at(10), End: at(20), Lost: 1}, {Start: at(30), End: at(40), Lost: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Flow{opts: FlowOptions{ReplyTimeout: time.Second}, stopped: tt.stopped}
			for i, c := range tt.answered {
				f.sent = append(f.sent, at(10*i))
				var r time.Time
				if c == 'y' {
					r = at(10*i + 1)
				}
				f.replied = append(f.replied, r)
			}
			got := f.report(at(10_000))
			if len(got.Outages) != len(tt.want) {
				t.Fatalf("outages %+v, want %+v", got.Outages, tt.want)
			}
			for i := range tt.want {
				if got.Outages[i] != tt.want[i] {
					t.Errorf("outage %d: %+v, want %+v", i, got.Outages[i], tt.want[i])
				}
			}
		})
	}
}

func TestRunningFlowLeavesRecentUnansweredDatagramsPending(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &Flow{opts: FlowOptions{ReplyTimeout: time.Second}}
	f.sent = []time.Time{t0, t0.Add(500 * time.Millisecond)}
	f.replied = []time.Time{t0.Add(time.Millisecond), {}}
	r := f.report(t0.Add(time.Second)) // the second datagram is 500ms old: still pending
	if r.Sent != 1 || r.Received != 1 || len(r.Outages) != 0 {
		t.Fatalf("got %+v, want one sent, one received, no outage", r)
	}
}
