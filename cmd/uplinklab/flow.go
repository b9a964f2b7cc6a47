package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// cmdFlow runs a UDP flow from the lab's LAN client to the echo server (`serve` or `up -hold`
// must be running) and prints each outage as it ends and a summary at the end.
func cmdFlow(ctx context.Context, args []string) error {
	fs, prefix := newFlags("flow")
	dur := fs.Duration("for", 30*time.Second, "how long to run (interrupt ends it early)")
	interval := fs.Duration("interval", 10*time.Millisecond, "time between datagrams")
	v6 := fs.Bool("6", false, "flow over IPv6")
	port := fs.Uint("sport", 40000, "fixed source port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port == 0 || *port > 65535 {
		return fmt.Errorf("-sport %d: want 1-65535", *port)
	}
	l, err := netlab.Attach(*prefix, "")
	if err != nil {
		return err
	}
	defer l.Release()
	to := netip.AddrPortFrom(netlab.Server4, netlab.EchoPort)
	if *v6 {
		to = netip.AddrPortFrom(netlab.Server6, netlab.EchoPort)
	}
	f, err := l.StartFlow(netlab.FlowOptions{To: to, SrcPort: uint16(*port), Interval: *interval})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	printed, via := 0, ""
	report := func(r netlab.FlowReport) {
		for _, o := range r.Outages[printed:] {
			if o.Ongoing {
				break
			}
			fmt.Printf("%s outage %v (%d datagrams lost)\n", o.Start.Format("15:04:05.000"), o.Duration().Round(time.Millisecond), o.Lost)
			printed++
		}
		if r.Via != via {
			fmt.Printf("%s server sees the flow from %s\n", time.Now().Format("15:04:05.000"), r.Via)
			via = r.Via
		}
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			report(f.Report())
		}
	}
	r := f.Stop()
	report(r)
	fmt.Printf("sent %d, answered %d, outages %d, longest %v\n", r.Sent, r.Received, len(r.Outages), r.Longest().Round(time.Millisecond))
	return nil
}
