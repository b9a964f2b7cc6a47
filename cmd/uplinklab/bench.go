package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// Method of the benchmark, also written into the JSON so the figures carry their definition.
//
// One lab per NAT mode is reused: every run starts a fresh uplinkd (so no flap damping carries
// over between runs) with a fresh flow on its own source port, breaks isp1, heals it and waits
// for the failback before the next run.
const benchMethod = "one lab per NAT mode; each run: a fresh uplinkd, a fresh UDP flow (10 ms datagrams, one source port), " +
	"break isp1 at a random phase of the probe round, heal it, wait for failback. restore_flow: cut → first answered datagram after the outage " +
	"(not for loss30: there flow_loss_pct is the flow's loss from 1 s after the move to 10 s after the cut, since pinning keeps a working flow on the degraded uplink); restore_new: cut → first new TCP connection from the LAN " +
	"that succeeds through isp2 (attempts every 25 ms, 200 ms timeout); failback: heal → daemon's active set is isp1; " +
	"failback_tcp: a chat TCP connection opened from the LAN once new connections work through isp2 is asked 3 times (100 ms apart, " +
	"2 s each) after the failback and counts as kept when every answer came through isp2; " +
	"switch: the daemon's own 'took' for the failover; moved: cut → active set changes; flaps: isp1 state changes in " +
	"the first 10 s of loss; cpu/vmhwm: uplinkd's utime+stime and VmHWM at the end of each run. " + drainMethod

// cmdBench measures failover and failback over faults, NAT modes and configs, and the daemon's
// idle cost, and prints a table and JSON.
func cmdBench(ctx context.Context, args []string) error {
	return runBench(ctx, args, os.Stdout, os.Stderr)
}

func runBench(ctx context.Context, args []string, stdout, progress io.Writer) error {
	if slices.Contains(args, "-ha") || slices.Contains(args, "--ha") {
		return runBenchHAFlags(ctx, args, stdout, progress) // the gateway pair: benchha.go
	}
	if slices.Contains(args, "-quality") || slices.Contains(args, "--quality") {
		return runBenchQualityFlags(ctx, args, stdout, progress) // per-service targets: benchquality.go
	}
	if slices.Contains(args, "-ipv6") || slices.Contains(args, "--ipv6") {
		return runBenchIPv6Flags(ctx, args, stdout, progress) // LAN prefixes per ISP: benchipv6.go
	}
	if slices.Contains(args, "-inbound") || slices.Contains(args, "--inbound") {
		return runBenchInboundFlags(ctx, args, stdout, progress) // customers resolving: benchinbound.go
	}
	if slices.Contains(args, "-sites") || slices.Contains(args, "--sites") {
		return runBenchSitesFlags(ctx, args, stdout, progress) // several sites: benchsites.go
	}
	fs, prefix := newFlags("bench")
	*prefix = "" // unique labs: never clash with `uplinklab up`
	runs := fs.Int("runs", 3, "runs per scenario")
	jsonPath := fs.String("json", "", "write the JSON report to this file instead of stdout after the table")
	only := fs.String("only", "", "comma-separated scenarios FAULT/NAT/CONFIG; an empty or * part matches all (e.g. silent/masquerade/tuned, carrier//, //default)")
	idle := fs.Duration("idle", 30*time.Second, "how long to measure the idle daemon per config (0 skips it)")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	drain := fs.Bool("drain", true, "also measure a graceful drain of isp1 with a connection on it, in every lab built")
	svgDir := fs.String("svg", "", "write an SVG timeline of each run (states, active uplinks, the LAN flow's blackouts, probe RTTs) into this `directory`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 || *runs > 100 {
		return fmt.Errorf("-runs %d: want 1 to 100", *runs)
	}
	scenarios, err := selectScenarios(*only)
	if err != nil {
		return err
	}
	path, done, err := rootAndBinary(ctx, *bin)
	if err != nil {
		return err
	}
	defer done()
	b := &bench{bin: path, runs: *runs, prefix: *prefix, progress: progress, sport: 41000, svgDir: *svgDir}
	if b.svgDir != "" {
		if err := os.MkdirAll(b.svgDir, 0o755); err != nil {
			return err
		}
	}
	rep := benchReport{Started: time.Now().UTC(), CPUs: runtime.NumCPU(), Kernel: kernelRelease(), Runs: *runs, Method: benchMethod, References: references}
	for _, nat := range []string{netlab.NATMasquerade, netlab.NATSNAT} {
		var mine []scenario
		for _, s := range scenarios {
			if s.NAT == nat {
				mine = append(mine, s)
			}
		}
		idleFor := *idle
		if nat != netlab.NATMasquerade {
			idleFor = 0
		}
		if len(mine) == 0 && idleFor <= 0 {
			continue
		}
		if err := b.withLab(ctx, nat, mine, idleFor, *drain, &rep); err != nil {
			return err
		}
	}
	printTable(stdout, rep)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	if *jsonPath != "" {
		return os.WriteFile(*jsonPath, js, 0o644)
	}
	fmt.Fprintln(stdout)
	_, err = stdout.Write(js)
	return err
}
