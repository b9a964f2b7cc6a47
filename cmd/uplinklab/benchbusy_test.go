package main

import (
	"context"
	"strings"
	"testing"
)

func TestBusyAndScaleBenchmarksRefuseBadFlagsBeforeBuildingAnything(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(context.Context, []string) error
		args []string
		want string
	}{
		{"a busy window under 5 s", cmdBenchBusy, []string{"-busy-seconds", "1"}, "want 5 to 600"},
		{"a scale window under a second", cmdBenchScale, []string{"-window", "10ms"}, "want 1s to 10m"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(context.Background(), tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
