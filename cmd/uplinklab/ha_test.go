package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestBenchHAFlags(t *testing.T) {
	err := runBench(context.Background(), []string{"-ha", "-json", "-only", "nope"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}

// TestHADemo runs the narrated box loss end to end (without uplinkd: the pair itself).
func TestHADemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip(testkit.SkipReason)
	}
	var out bytes.Buffer
	if err := runHA(context.Background(), []string{"-no-uplinkd"}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"gw-a is master", "gw-b took over", "pushed TCP stream: survived", "cleaning up"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestBenchHA runs one box_lost run and checks the JSON line.
func TestBenchHA(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip(testkit.SkipReason)
	}
	var out bytes.Buffer
	if err := runBenchHA(context.Background(), []string{testkit.Uplinkd(t)}, 1, "box_lost", true, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var line haLine
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &line); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if line.Scenario != "box_lost" || line.Runs != 1 || !line.VIPMoved || line.LANOutageWorst <= 0 {
		t.Errorf("line: %+v", line)
	}
	// The outage splits into VRRP's takeover (three advert_int plus skew, less the phase of the
	// cut: 0.26 to 0.37 s here) and what follows it.
	if r := line.PerRun[0]; r.Takeover < 0.2 || r.Takeover > 1 || r.Recovery < -0.05 || r.Recovery > r.LANOutage {
		t.Errorf("takeover %.3f s, after it %.3f s, outage %.3f s", r.Takeover, r.Recovery, r.LANOutage)
	}
}
