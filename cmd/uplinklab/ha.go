package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// cmdHA narrates a box loss and a takeover in a fresh gateway pair (internal/netlab pair):
// keepalived + conntrackd (+ uplinkd) on gw-a and gw-b, flows from the LAN, a power cut of the
// master, what the LAN felt, and the cleanup.
func cmdHA(ctx context.Context, args []string) error {
	return runHA(ctx, args, os.Stdout)
}

func runHA(ctx context.Context, args []string, w io.Writer) error {
	fs, prefix := newFlags("ha")
	*prefix = ""
	bin := fs.String("uplinkd", "", "uplinkd binary to run on both boxes (default: go build ./cmd/uplinkd)")
	noUplinkd := fs.Bool("no-uplinkd", false, "run keepalived and conntrackd only")
	noConntrackd := fs.Bool("no-conntrackd", false, "run without conntrackd: see which connections die")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needRoot(); err != nil {
		return err
	}
	tl := &timeline{w: w, start: time.Now()}
	opts := netlab.PairOptions{Prefix: *prefix, NoConntrackd: *noConntrackd, Daemon: defaultConfig}
	if !*noUplinkd {
		path, done, err := uplinkdBinary(ctx, *bin, tl.say)
		if err != nil {
			return err
		}
		defer done()
		opts.Uplinkd = path
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tl.say("building the pair: lan ─ switch ─ gw-a | gw-b ─ switches ─ isp1 | isp2 ─ internet, sync link gw-a ═ gw-b")
	what := "keepalived (VRRPv3, 100 ms adverts)"
	if !opts.NoConntrackd {
		what += " + conntrackd (FTFW on the sync link)"
	}
	if opts.Uplinkd != "" {
		what += " + uplinkd"
	}
	tl.say("starting %s on each box, gw-a first", what)
	p, err := netlab.NewPair(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		tl.say("cleaning up: stopping every process, removing the namespaces")
		if cerr := p.Close(); cerr != nil {
			fmt.Fprintln(w, "cleanup:", cerr)
		}
	}()
	m, ok := p.Master()
	if !ok {
		return fmt.Errorf("no single master")
	}
	tl.say("%s is master: it holds %s (LAN gateway), %s and %s (what isp1 and isp2 route to; SNAT source)",
		m, netlab.PairVIPLAN, netlab.PairVIPWAN[0], netlab.PairVIPWAN[1])
	tl.say("starting from the LAN: a UDP flow (100 datagrams/s), a TCP echo connection, a TCP stream the server pushes while the client stays silent")
	tl.say("in a moment: power cut of %s (every process SIGKILLed, then all links down; no goodbye advert)", m)
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 43001,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, m.Other(), 5*time.Second) },
	}, func() error {
		tl.say("power cut: %s", m)
		return p.PowerCut(m)
	})
	if err != nil {
		return err
	}
	if ob.VIPMoved {
		tl.say("%s took over: it now holds every virtual address", ob.After)
	} else {
		tl.say("the virtual addresses did not move (%v)", ob.Details)
	}
	tl.say("the LAN was dark for %v (longest gap of the 100 pps flow)", ob.LANOutage.Round(time.Millisecond))
	verdict := func(ok bool) string {
		if ok {
			return "survived"
		}
		return "DIED"
	}
	tl.say("UDP flow: %s (same NAT mapping: %v); TCP echo: %s; pushed TCP stream: %s",
		verdict(ob.UDPSurvived), ob.UDPSameMapping, verdict(ob.TCPSurvived), verdict(ob.PushSurvived))
	for _, d := range ob.Details {
		tl.say("  %s", d)
	}
	tl.say("bringing %s back: it sees a master of equal priority and stays backup (no bounce, no second outage)", m)
	if err := p.StartBox(ctx, m); err != nil {
		return err
	}
	if err := p.WaitMaster(ctx, ob.After, 3*time.Second); err != nil {
		return err
	}
	tl.say("%s is still master; %s is a hot backup again", ob.After, m)
	return nil
}
