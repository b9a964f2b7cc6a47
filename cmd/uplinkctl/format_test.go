package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var fetched = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// sampleStatus has one uplink of every kind a person must tell apart.
func sampleStatus() api.Status {
	ago := func(d time.Duration) time.Time { return fetched.Add(-d) }
	return api.Status{
		Version: "1.0.0", Started: ago(26 * time.Hour), Uptime: 26*time.Hour + 5*time.Minute, Config: "/etc/uplinkd/uplinkd.toml",
		Active:      []string{"fiber", "cable"},
		ActiveRoute: "default proto 199 metric 0\n\tnexthop via 198.51.100.1 dev eth1 weight 3\n\tnexthop via 203.0.113.1 dev eth2 weight 1",
		Route4:      "default\n\tnexthop via 198.51.100.1 dev eth1 weight 3\n\tnexthop via 203.0.113.1 dev eth2 weight 1",
		Route6:      "default via 2001:db8:1::1 dev eth1",
		Uplinks: []api.UplinkStatus{
			{Name: "fiber", Interface: "eth1", State: uplink.Up, Since: ago(3*time.Minute + 12*time.Second), Active: true, Priority: 1, Weight: 3, RTT: 8400 * time.Microsecond, Loss: 0, Jitter: 400 * time.Microsecond, MOS: 4.4, Connections: 412,
				Targets: []api.TargetStatus{{Address: "192.0.2.53", RTT: 8100 * time.Microsecond, Samples: 20}, {Address: "198.51.100.53", RTT: 8700 * time.Microsecond, Samples: 20},
					{Address: "203.0.113.53", Loss: 100, Samples: 20}}},
			{Name: "cable", Interface: "eth2", State: uplink.Up, Since: ago(2*time.Hour + 5*time.Minute), Active: true, Priority: 1, Weight: 1, RTT: 21 * time.Millisecond, Loss: 2.5, Jitter: 1800 * time.Microsecond, MOS: 4.3, Connections: 97, HoldDown: 5 * time.Second,
				Targets: []api.TargetStatus{{Address: "192.0.2.53", RTT: 21 * time.Millisecond, Loss: 2.5, Samples: 20}, {Address: "2001:db8:ff::53", RTT: 23456 * time.Microsecond, Loss: 12.5, Samples: 20}}},
			{Name: "lte", Interface: "wwan0", State: uplink.Degraded, Since: ago(50 * time.Second), Priority: 2, Weight: 1, RTT: 612 * time.Millisecond, Loss: 15, Jitter: 38 * time.Millisecond, MOS: 1.9, Reason: "mean RTT 612ms over 500ms", Connections: 0,
				Metered: true, ProbeMode: "gentle", ProbeBytesPerDay: 506000},
			{Name: "dsl", Interface: "ppp0", State: uplink.Down, Since: ago(4 * time.Second), Priority: 2, Weight: 1, Loss: 100, Reason: "3 rounds without quorum (0/3 targets)", HoldDown: 20 * time.Second, Connections: -1},
			{Name: "spare", Interface: "eth3", State: uplink.Up, Since: ago(3 * 24 * time.Hour), Drained: true, Priority: 3, Weight: 1, RTT: 30 * time.Millisecond, Connections: 2},
			{Name: "new", Interface: "eth4", State: uplink.Unknown, Priority: 3, Weight: 1, Reason: "starting", Connections: -1,
				Targets: []api.TargetStatus{{Address: "192.0.2.53"}}},
		},
	}
}

func withIPv6() api.Status {
	st := sampleStatus()
	st.IPv6 = &api.IPv6Status{Advertise: "ra",
		Prefixes: []api.PrefixStatus{
			{Prefix: "2001:db8:a1::/64", Uplink: "fiber", Interfaces: []string{"lan0"}},
			{Prefix: "2001:db8:a2::/64", Uplink: "cable", Preferred: true, Interfaces: []string{"lan0"}}},
		Translations: []string{"2001:db8:a1::/64 -> 2001:db8:a2::/64 via eth2"},
		LastRA: []api.RASent{{Interface: "lan0", At: fetched.Add(-3 * time.Second), Preferred: []string{"2001:db8:a2::/64"},
			Deprecated: []string{"2001:db8:a1::/64"}, RouterLife: 30 * time.Minute}}}
	return st
}

func TestStatusTableMatchesGolden(t *testing.T) {
	allDown := sampleStatus()
	for i := range allDown.Uplinks {
		allDown.Uplinks[i].State = uplink.Down
		allDown.Uplinks[i].Reason = "carrier lost"
	}
	allDown.ActiveRoute, allDown.Route4, allDown.Route6 = "", "", ""
	tests := []struct {
		name, golden string
		st           api.Status
	}{
		{"a mixed gateway shows every kind of uplink", "status.golden", sampleStatus()},
		{"a gateway with nothing up says so loudly", "status-down.golden", allDown},
		{"LAN prefixes per provider: preferred, deprecated, translated, the last RA", "status-ipv6.golden", withIPv6()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := formatStatus(&buf, tt.st, fetched); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, buf.Bytes())
		})
	}
}

func TestEventLinesMatchGolden(t *testing.T) {
	at := fetched.Add(1500 * time.Millisecond)
	events := []api.Event{
		{Time: at, Kind: api.KindState, Uplink: "dsl", From: "up", To: "down", Reason: "carrier lost"},
		{Time: at, Kind: api.KindActive, Active: []string{"fiber"}, Reason: "dsl down", Took: 1200 * time.Microsecond},
		{Time: at, Kind: api.KindActive, Reason: "every uplink down: keeping the primary tier"},
		{Time: at, Kind: api.KindDrain, Uplink: "spare", Reason: "operator (uid 0)"},
		{Time: at, Kind: api.KindReload, Reason: "config reloaded: 1 uplink added"},
		{Time: at, Kind: api.KindError, Uplink: "fiber", Reason: "routing: replace route table 201: no such device"},
	}
	var buf bytes.Buffer
	for _, e := range events {
		buf.WriteString(formatEvent(e, time.UTC) + "\n")
	}
	golden(t, "events.golden", buf.Bytes())
}

func TestHumanDurations(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"}, {300 * time.Millisecond, "0s"}, {4 * time.Second, "4s"},
		{3*time.Minute + 12*time.Second, "3m12s"}, {2*time.Hour + 5*time.Minute + 9*time.Second, "2h5m"},
		{50 * time.Hour, "2d2h"},
	}
	for _, tt := range tests {
		if got := human(tt.d); got != tt.want {
			t.Errorf("human(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
