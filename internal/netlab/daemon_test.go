package netlab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	up "github.com/uplinkd/uplinkd/uplink"
)

func TestParseStatTicksCountsFieldsAfterTheCommandName(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want int64
		ok   bool
	}{
		{"a plain command name", "42 (uplinkd) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 8 0", 10, true},
		{"a name with spaces and parentheses", "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 120 30 0 0", 150, true},
		{"a line cut short", "42 (uplinkd) S 1 42", 0, false},
		{"no command name", "42 uplinkd S", 0, false},
		{"a non-number in utime", "42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 x 3 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatTicks(tt.stat)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseStatTicks = %d, %v; want %d, ok=%v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseStatusKiBFindsTheKey(t *testing.T) {
	status := "Name:\tuplinkd\nVmPeak:\t 1300000 kB\nVmHWM:\t   15896 kB\nVmRSS:\t   15000 kB\n"
	if got, err := parseStatusKiB(status, "VmHWM"); err != nil || got != 15896 {
		t.Errorf("VmHWM = %d, %v; want 15896", got, err)
	}
	if _, err := parseStatusKiB(status, "VmSwap"); err == nil {
		t.Error("a missing key gave no error")
	}
	if _, err := parseStatusKiB("VmHWM:\tlots\n", "VmHWM"); err == nil {
		t.Error("a malformed value gave no error")
	}
}

func TestReadUsageOfThisProcess(t *testing.T) {
	u, err := ReadUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.VmHWM <= 0 || u.CPU < 0 {
		t.Errorf("usage %+v: want a positive VmHWM and a non-negative CPU time", u)
	}
}

func TestEventLogFindsCountsAndListsTransitionsFromATime(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var seen int
	l := &EventLog{onEvent: func(api.Event) { seen++ }}
	l.add(api.Event{Time: t0, Kind: api.KindState, Uplink: "isp1", From: "up", To: "down"})
	l.add(api.Event{Time: t0.Add(time.Second), Kind: api.KindActive, Active: []string{"isp2"}})
	l.add(api.Event{Time: t0.Add(2 * time.Second), Kind: api.KindState, Uplink: "isp1", From: "down", To: "up"})
	l.add(api.Event{Time: t0.Add(3 * time.Second), Kind: api.KindActive, Active: []string{"isp1"}})
	if seen != 4 || len(l.All()) != 4 {
		t.Errorf("onEvent saw %d events, the log holds %d; want 4 and 4", seen, len(l.All()))
	}
	if ev, ok := l.Find(t0.Add(time.Second), ActiveIs("isp1")); !ok || !ev.Time.Equal(t0.Add(3*time.Second)) {
		t.Errorf("Find active isp1 = %v, %v", ev, ok)
	}
	if _, ok := l.Find(t0.Add(4*time.Second), ActiveIs("isp1")); ok {
		t.Error("Find returned an event from before since")
	}
	isp1State := func(ev api.Event) bool { return ev.Kind == api.KindState && ev.Uplink == "isp1" }
	if n := l.Count(t0, t0.Add(2*time.Second), isp1State); n != 1 {
		t.Errorf("Count = %d isp1 state changes in [0s, 2s), want 1", n)
	}
	if tr := l.Transitions("isp1"); strings.Join(tr, " ") != "up→down down→up" {
		t.Errorf("Transitions(isp1) = %v, want [up→down down→up]", tr)
	}
	if tr := l.Transitions("isp2"); len(tr) != 0 {
		t.Errorf("Transitions(isp2) = %v, want none", tr)
	}
}

func TestJudged(t *testing.T) {
	u := func(state up.State) api.UplinkStatus { return api.UplinkStatus{Name: "x", State: state} }
	tests := []struct {
		name string
		st   api.Status
		want bool
	}{
		{"every uplink judged and one active is judged", api.Status{Active: []string{"isp1"}, Uplinks: []api.UplinkStatus{u(up.Up), u(up.Down)}}, true},
		{"an uplink still unknown is not", api.Status{Active: []string{"isp1"}, Uplinks: []api.UplinkStatus{u(up.Up), u(up.Unknown)}}, false},
		{"nothing active is not", api.Status{Uplinks: []api.UplinkStatus{u(up.Up)}}, false},
		{"an empty status is not", api.Status{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Judged(tt.st); got != tt.want {
				t.Errorf("Judged = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUplinkdBinaryChecksAGivenPath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := UplinkdBinary(context.Background(), missing, t.TempDir()); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a missing binary gave %v, want an error naming it", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := UplinkdBinary(context.Background(), self, t.TempDir()); err != nil || got != self {
		t.Errorf("a given binary came back as %q, %v", got, err)
	}
}
