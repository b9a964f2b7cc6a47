package main

// The failover benchmark's scenarios: which fault, NAT mode and config each run uses.

import (
	"fmt"
	"strings"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// scenario is one fault × NAT × config.
type scenario struct {
	Fault  netlab.Fault
	NAT    string
	Config string // "default" or "tuned"
}

func (s scenario) String() string { return s.Fault.String() + "/" + s.NAT + "/" + s.Config }

func (s scenario) daemonConfig() netlab.DaemonConfig {
	if s.Config == "tuned" {
		return tunedConfig
	}
	return defaultConfig
}

// target is what the README promises for the scenario.
func (s scenario) target() string {
	switch {
	case s.Fault == netlab.CarrierLoss:
		return "flow ≤ 0.05 s"
	case s.Fault == netlab.SilentFailure && s.Config == "tuned":
		return "flow ≤ 0.3 s"
	case s.Fault == netlab.SilentFailure:
		return "flow ≤ 1 s (median)"
	}
	return "degrade, no flaps"
}

// allScenarios lists every scenario in the order they run.
func allScenarios() []scenario {
	var out []scenario
	for _, nat := range []string{netlab.NATMasquerade, netlab.NATSNAT} {
		for _, cfg := range []string{"default", "tuned"} {
			for _, f := range []netlab.Fault{netlab.SilentFailure, netlab.CarrierLoss, netlab.Loss30} {
				out = append(out, scenario{Fault: f, NAT: nat, Config: cfg})
			}
		}
	}
	return out
}

// selectScenarios keeps the scenarios matching any of the comma-separated FAULT/NAT/CONFIG
// patterns (empty: all).
func selectScenarios(only string) ([]scenario, error) {
	all := allScenarios()
	if strings.TrimSpace(only) == "" {
		return all, nil
	}
	keep := make([]bool, len(all))
	for pat := range strings.SplitSeq(only, ",") {
		parts := strings.Split(strings.TrimSpace(pat), "/")
		if len(parts) > 3 {
			return nil, fmt.Errorf("-only %q: want FAULT/NAT/CONFIG", pat)
		}
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		matched := false
		for i, s := range all {
			if matchPart(parts[0], s.Fault.String()) && matchPart(parts[1], s.NAT) && matchPart(parts[2], s.Config) {
				keep[i], matched = true, true
			}
		}
		if !matched {
			return nil, fmt.Errorf("-only %q matches no scenario (faults silent, carrier, loss30; NAT masquerade, snat; configs default, tuned)", pat)
		}
	}
	var out []scenario
	for i, s := range all {
		if keep[i] {
			out = append(out, s)
		}
	}
	return out, nil
}

func matchPart(pat, v string) bool { return pat == "" || pat == "*" || pat == v }
