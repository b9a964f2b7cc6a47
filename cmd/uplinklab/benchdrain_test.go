package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

func TestKeptOfCountsOnlyMeasuredRuns(t *testing.T) {
	tests := []struct {
		name     string
		verdicts []string
		want     string
	}{
		{"every run kept", []string{"kept", "kept", "kept"}, "3/3 kept"},
		{"a broken run counts against", []string{"kept", "broken", "kept"}, "2/3 kept"},
		{"unmeasured runs are left out", []string{"kept", "", "broken"}, "1/2 kept"},
		{"nothing measured is no figure", []string{"", ""}, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keptOf(tt.verdicts, func(v string) string { return v }).String(); got != tt.want {
				t.Errorf("keptOf(%q) = %s, want %s", tt.verdicts, got, tt.want)
			}
		})
	}
}

func TestSummarizeCountsFailbackConnectionsKept(t *testing.T) {
	s := scenario{Fault: netlab.SilentFailure, NAT: netlab.NATMasquerade, Config: "tuned"}
	runs := []runResult{{FailbackTCP: "kept"}, {FailbackTCP: "broken"}, {FailbackTCP: "kept"}}
	if r := summarize(s, runs, nil); r.FailbackTCP == nil || *r.FailbackTCP != (kept{Kept: 2, Runs: 3}) {
		t.Errorf("failback_tcp %+v, want 2 of 3 kept", r.FailbackTCP)
	}
}

func TestSummarizeDrainGivesCountsAndMedians(t *testing.T) {
	runs := []drainResult{
		{Kept: true, Moved: time.Millisecond, NewTCP: 30 * time.Millisecond, Undrain: 2 * time.Millisecond},
		{Kept: false, Moved: 3 * time.Millisecond, NewTCP: 50 * time.Millisecond, Undrain: -1},
	}
	r := summarizeDrain(netlab.NATSNAT, runs, []string{"run 3: boom"})
	if r.NAT != "snat" || r.Runs != 2 || len(r.Errors) != 1 {
		t.Errorf("nat %s, runs %d, errors %v", r.NAT, r.Runs, r.Errors)
	}
	if r.DrainTCP.String() != "1/2 kept" {
		t.Errorf("drain_tcp %s, want 1/2 kept", r.DrainTCP)
	}
	if r.NewTCP == nil || r.NewTCP.Median != 40 || r.NewTCP.Max != 50 {
		t.Errorf("new_tcp %+v, want 40/50 ms", r.NewTCP)
	}
	if r.Undrain == nil || r.Undrain.Median != 2 {
		t.Errorf("undrain %+v, want the one measured run's 2 ms", r.Undrain)
	}
}

func TestTheDrainTableListsEachNATModeAndItsFailures(t *testing.T) {
	var b bytes.Buffer
	printDrainTable(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no drain figures printed %q", b.String())
	}
	printDrainTable(&b, []drainReport{
		summarizeDrain(netlab.NATMasquerade, []drainResult{{Kept: true, NewTCP: 20 * time.Millisecond}}, nil),
		summarizeDrain(netlab.NATSNAT, nil, []string{"no new TCP connection\nmore"}),
	})
	text := b.String()
	for _, want := range []string{"drain_tcp", "masquerade", "1/1 kept", "20.0/20.0 ms", "FAILED drain/snat: no new TCP connection\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the drain table lacks %q:\n%s", want, text)
		}
	}
}
