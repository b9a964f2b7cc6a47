package main

import "testing"

func TestParseISP(t *testing.T) {
	tests := []struct {
		arg  string
		want int
		ok   bool
	}{
		{"1", 1, true},
		{"isp2", 2, true},
		{"isp3", 0, false},
		{"0", 0, false},
		{"isp", 0, false},
		{"wan1", 0, false},
	}
	for _, tt := range tests {
		got, err := parseISP(tt.arg)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseISP(%q) = %d, %v; want %d, ok=%v", tt.arg, got, err, tt.want, tt.ok)
		}
	}
}

func TestEveryCommandHasAFunction(t *testing.T) {
	for _, name := range []string{"up", "down", "break", "heal", "serve", "flow"} {
		if commands[name] == nil {
			t.Errorf("no command %q", name)
		}
	}
}
