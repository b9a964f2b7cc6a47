package uplink

import (
	"net/netip"
	"testing"
	"time"
)

func TestAServerIsJudgedWithHysteresis(t *testing.T) {
	c := DefaultServerCheck
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	var h ServerHealth
	if !h.Passing() {
		t.Fatal("a server not judged yet must count as passing")
	}
	steps := []struct {
		ok               bool
		changed, passing bool
	}{
		{true, true, true},    // the first pass: up at once
		{false, false, true},  // one failure
		{false, false, true},  // two
		{false, true, false},  // down_after 3: down
		{true, false, false},  // one pass
		{false, false, false}, // the run is broken
		{true, false, false},
		{true, false, false},
		{true, true, true}, // up_after 3 in a row: up
	}
	for i, s := range steps {
		now = now.Add(c.Interval)
		if got := h.Observe(s.ok, "why", now, c); got != s.changed || h.Passing() != s.passing {
			t.Fatalf("step %d (ok %v): changed %v passing %v, want %v %v", i, s.ok, got, h.Passing(), s.changed, s.passing)
		}
	}
	if h.Since != now || h.Reason != "why" || h.String() != "up: why" {
		t.Errorf("%+v %q", h, h.String())
	}
	var dead ServerHealth // a server dead from the start is judged after down_after failures
	for i := range c.DownAfter {
		changed := dead.Observe(false, "connection refused", now, c)
		if changed != (i == c.DownAfter-1) {
			t.Errorf("failure %d: changed %v", i+1, changed)
		}
	}
	if dead.Passing() || dead.String() != "down: connection refused" {
		t.Errorf("%+v", dead)
	}
}

func TestServersAreParsedAsTheConfigWritesThem(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.10")
	for in, want := range map[string]Server{
		"192.0.2.10":                     {a, Method{Name: MethodTCP, Port: 80}},
		"tcp://192.0.2.10:443":           {a, Method{Name: MethodTCP, Port: 443}},
		"http://192.0.2.10/healthz":      {a, Method{Name: MethodHTTP, Port: 80, Path: "/healthz"}},
		"https://[2001:db8::10]:8443/up": {netip.MustParseAddr("2001:db8::10"), Method{Name: MethodHTTPS, Port: 8443, Path: "/up"}},
		"http://192.0.2.10:8080/a/b?c=d": {a, Method{Name: MethodHTTP, Port: 8080, Path: "/a/b?c=d"}},
	} {
		got, err := ParseServer(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", in, got, err, want)
		}
	}
	if s, _ := ParseServer("http://192.0.2.10:8080/healthz"); s.String() != "http://192.0.2.10:8080/healthz" {
		t.Errorf("String %q", s)
	}
	for _, bad := range []string{"icmp://192.0.2.10", "dns://192.0.2.10", "tcp://192.0.2.10/path", "www.example.com", "http://host/x", "http://192.0.2.10/a b", "tcp://192.0.2.10:0"} {
		if _, err := ParseServer(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
