// Command uplinklab builds and drives the namespace lab (internal/netlab) by hand: for the demo,
// the benchmark and for poking at uplinkd.
//
//	uplinklab up    [-prefix ullab] [-nat masquerade|snat] [-hold]
//	uplinklab down  [-prefix ullab]
//	uplinklab break [-prefix ullab] ISP FAULT   (FAULT: silent, carrier, loss30, loss19, loss10, ipv6-silent)
//	uplinklab heal  [-prefix ullab] ISP
//	uplinklab serve [-prefix ullab]             UDP echo and TCP servers in inet until interrupted
//	uplinklab flow  [-prefix ullab] [-for 30s] [-interval 10ms]  a UDP flow from lan; prints outages
//	uplinklab demo  [-fast] [-uplinkd PATH] [-svg FILE] [-ipv6 | -inbound | -sites]  narrated failover and failback of uplinkd in a fresh lab
//	uplinklab bench-busy [-busy-seconds 60] [-json FILE]  busy line (tbf) and 10 % loss: isp1's down transitions
//	uplinklab bench-scale [-sizes 2x3@500ms,...] [-window 30s]  uplinkd's CPU, RSS and threads with many uplinks
//	uplinklab bench-hostile [-only SCENARIO,...] [-fight 60s] [-flaps 200] [-idle 60s] ...  figures under hostile load
//	uplinklab bench [-runs 3] [-json FILE] [-only FAULT/NAT/CONFIG] [-idle 30s] [-drain=false]  failover and drain figures
//	uplinklab bench -ha [-json] [-runs 3] [-only SCENARIO]  gateway-pair figures, one JSON line per scenario
//	uplinklab bench -quality [-json] [-runs 3] [-tuned] [-steady 1m]  a voice service on a bloated line
//	uplinklab bench -inbound [-json] [-runs 3] [-ttl 30s] [-flood-qps 20000]  customers resolving through the DNS server
//	uplinklab bench -ipv6 [-json] [-runs 3]                 IPv6 clients on a prefix per ISP: RAs and NPTv6
//	uplinklab bench -sites [-json] [-runs 3] [-ttl 30s] [-partition 60s]  two sites: power loss, fallback, partition
//	uplinklab ha    [-no-uplinkd] [-no-conntrackd]     narrated box loss and takeover in a gateway pair
//
// main only dispatches: each sub-command lives in its own file (break and heal share faults.go;
// the benchmark spreads over bench*.go: flags, scenarios, measurement, report, drain).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// commands maps a sub-command to its function; each parses its own flags from args.
var commands = map[string]func(ctx context.Context, args []string) error{
	"up":            cmdUp,
	"down":          cmdDown,
	"break":         cmdBreak,
	"heal":          cmdHeal,
	"serve":         cmdServe,
	"flow":          cmdFlow,
	"demo":          cmdDemo,
	"bench":         cmdBench,
	"bench-busy":    cmdBenchBusy,
	"bench-scale":   cmdBenchScale,
	"bench-hostile": cmdBenchHostile,
	"ha":            cmdHA,
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "uplinklab: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	// Interrupts end the context: every command then cleans up what it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd(ctx, os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "uplinklab:", err)
		os.Exit(1)
	}
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: uplinklab COMMAND [flags]   (commands: %v; COMMAND -h for flags)\n", names)
}
