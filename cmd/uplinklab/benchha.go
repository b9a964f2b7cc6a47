package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// The gateway-pair benchmark (`uplinklab bench -ha`): one fresh pair per run (keepalived,
// conntrackd and uplinkd on both boxes, the example configs), flows from the LAN, one event.
const haMethod = "one fresh pair per run (keepalived VRRPv3 advert_int 0.1, conntrackd FTFW, uplinkd with the shipped defaults on both boxes, " +
	"packaging/examples configs); from the LAN: a UDP flow at 100 pps, a TCP echo connection and a server-pushed TCP stream (client silent), " +
	"opened before the event. lan_outage_s: longest run of unanswered datagrams overlapping the event; *_survived: the connection " +
	"opened before still works after (udp: answered again; tcp: echoes, same source seen by the server; push: new data arrives); " +
	"vip_moved: the VIPs are on the other box once settled."

// haScenarios are the events, in the order they run.
var haScenarios = []struct {
	name, event string
}{
	{"box_lost", "power cut of the master: SIGKILL of keepalived, its VRRP child, conntrackd and uplinkd, then all its links down"},
	{"master_isp_silent", "isp1's upstream dies silently (both boxes lose it); the master's uplinkd moves the LAN to isp2"},
	{"standby", "uplinkctl standby on the master (its uplinkd writes internal/ha.StandbyValue, -200, to keepalived's track file); without uplinkd the bench writes the value itself"},
}

// haRun is one run's figures.
type haRun struct {
	LANOutage       float64  `json:"lan_outage_s"`
	TCPSurvived     bool     `json:"tcp_survived"`
	TCPPushSurvived bool     `json:"tcp_push_survived"`
	UDPSurvived     bool     `json:"udp_survived"`
	UDPSameMapping  bool     `json:"udp_same_mapping"`
	VIPMoved        bool     `json:"vip_moved"`
	SplitBrain      bool     `json:"split_brain"`
	Details         []string `json:"details,omitempty"`
}

// haLine is one JSON line per scenario.
type haLine struct {
	Scenario        string  `json:"scenario"`
	Event           string  `json:"event"`
	Runs            int     `json:"runs"`
	LANOutage       float64 `json:"lan_outage_s"` // median
	LANOutageMedian float64 `json:"lan_outage_median_s"`
	LANOutageWorst  float64 `json:"lan_outage_worst_s"`
	// The booleans hold for every run; the counts say in how many.
	TCPSurvived     bool    `json:"tcp_survived"`
	TCPPushSurvived bool    `json:"tcp_push_survived"`
	UDPSurvived     bool    `json:"udp_survived"`
	VIPMoved        bool    `json:"vip_moved"`
	TCPSurvivedN    int     `json:"tcp_survived_runs"`
	TCPPushN        int     `json:"tcp_push_survived_runs"`
	UDPSurvivedN    int     `json:"udp_survived_runs"`
	VIPMovedN       int     `json:"vip_moved_runs"`
	Uplinkd         bool    `json:"uplinkd"` // false: the bare pair (-bare)
	PerRun          []haRun `json:"per_run"`
	Method          string  `json:"method"`
}

// runBenchHA runs every pair scenario runs times and prints one JSON line per scenario (with
// -json, only the lines; otherwise a short summary line before each).
func runBenchHA(ctx context.Context, bin string, runs int, only string, jsonOnly bool, stdout, progress io.Writer) error {
	for i, sc := range haScenarios {
		if only != "" && only != sc.name || bin == "" && sc.name == "master_isp_silent" {
			continue // without uplinkd nothing judges the ISPs
		}
		line := haLine{Scenario: sc.name, Event: sc.event, Runs: runs, Method: haMethod, Uplinkd: bin != "",
			TCPSurvived: true, TCPPushSurvived: true, UDPSurvived: true, VIPMoved: true}
		var outages []float64
		for r := range runs {
			fmt.Fprintf(progress, "ha %s run %d/%d\n", sc.name, r+1, runs)
			run, err := haOnce(ctx, bin, sc.name, uint16(44000+100*i+r))
			if err != nil {
				return fmt.Errorf("ha %s run %d: %w", sc.name, r+1, err)
			}
			line.PerRun = append(line.PerRun, run)
			outages = append(outages, run.LANOutage)
			count := func(ok bool, all *bool, n *int) {
				if ok {
					*n++
				} else {
					*all = false
				}
			}
			count(run.TCPSurvived, &line.TCPSurvived, &line.TCPSurvivedN)
			count(run.TCPPushSurvived, &line.TCPPushSurvived, &line.TCPPushN)
			count(run.UDPSurvived, &line.UDPSurvived, &line.UDPSurvivedN)
			count(run.VIPMoved, &line.VIPMoved, &line.VIPMovedN)
		}
		slices.Sort(outages)
		line.LANOutageMedian = outages[len(outages)/2]
		line.LANOutageWorst = outages[len(outages)-1]
		line.LANOutage = line.LANOutageMedian
		if !jsonOnly {
			fmt.Fprintf(stdout, "# %s: LAN outage median %.3f s, worst %.3f s; udp %d/%d, tcp %d/%d, push %d/%d, vip moved %d/%d\n",
				sc.name, line.LANOutageMedian, line.LANOutageWorst, line.UDPSurvivedN, runs, line.TCPSurvivedN, runs,
				line.TCPPushN, runs, line.VIPMovedN, runs)
		}
		js, err := json.Marshal(line)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(js))
	}
	return nil
}

// haOnce builds a pair, runs one scenario and removes the pair.
func haOnce(ctx context.Context, bin, scenario string, sport uint16) (run haRun, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	p, err := netlab.NewPair(ctx, netlab.PairOptions{Uplinkd: bin, Daemon: defaultConfig})
	if err != nil {
		return run, err
	}
	defer func() {
		if cerr := p.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	m, ok := p.Master()
	if !ok {
		return run, fmt.Errorf("no single master")
	}
	opts := netlab.ObserveOptions{SrcPort: sport}
	var event func() error
	switch scenario {
	case "box_lost":
		opts.Settled = func(ctx context.Context) error { return p.WaitMaster(ctx, m.Other(), 5*time.Second) }
		event = func() error { return p.PowerCut(m) }
	case "standby":
		opts.Settled = func(ctx context.Context) error { return p.WaitMaster(ctx, m.Other(), 5*time.Second) }
		event = func() error { return p.Standby(m, true) }
	case "master_isp_silent":
		var at time.Time
		opts.Quiet = 2 * time.Second
		opts.Settled = func(ctx context.Context) error {
			_, err := p.Daemon(m).WaitEvent(ctx, 10*time.Second, at, "the master's uplinkd to move to isp2", netlab.ActiveIs("isp2"))
			return err
		}
		event = func() error { at = time.Now(); return p.Break(1, netlab.SilentFailure) }
	default:
		return run, fmt.Errorf("unknown scenario %q", scenario)
	}
	ob, err := p.Observe(ctx, opts, event)
	if err != nil {
		return run, err
	}
	return haRun{
		LANOutage: ob.LANOutage.Seconds(), TCPSurvived: ob.TCPSurvived, TCPPushSurvived: ob.PushSurvived,
		UDPSurvived: ob.UDPSurvived, UDPSameMapping: ob.UDPSameMapping, VIPMoved: ob.VIPMoved,
		SplitBrain: ob.SplitBrain, Details: ob.Details,
	}, nil
}

// runBenchHAFlags parses `bench -ha` flags: -json is a switch here (JSON lines only).
func runBenchHAFlags(ctx context.Context, args []string, stdout, progress io.Writer) error {
	fs, _ := newFlags("bench -ha")
	fs.Bool("ha", true, "the gateway-pair benchmark")
	jsonOnly := fs.Bool("json", false, "print only the JSON lines (one per scenario)")
	runs := fs.Int("runs", 3, "runs per scenario (a fresh pair each)")
	only := fs.String("only", "", "one scenario: box_lost, master_isp_silent or standby")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	bare := fs.Bool("bare", false, "the pair without uplinkd (keepalived and conntrackd only), for comparison; master_isp_silent is skipped")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 || *runs > 100 {
		return fmt.Errorf("-runs %d: want 1 to 100", *runs)
	}
	if *only != "" && !slices.ContainsFunc(haScenarios, func(s struct{ name, event string }) bool { return s.name == *only }) {
		return fmt.Errorf("-only %q: want box_lost, master_isp_silent or standby", *only)
	}
	if err := needRoot(); err != nil {
		return err
	}
	if *bare {
		return runBenchHA(ctx, "", *runs, *only, *jsonOnly, stdout, progress)
	}
	path, done, err := uplinkdBinary(ctx, *bin, nil)
	if err != nil {
		return err
	}
	defer done()
	return runBenchHA(ctx, path, *runs, *only, *jsonOnly, stdout, progress)
}
