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
	"opened before the event, which comes at a random phase of the VRRP advertisements (0 to 100 ms). lan_outage_s: longest run of unanswered datagrams overlapping the event; *_survived: the connection " +
	"opened before still works after (udp: answered again; tcp: echoes, same source seen by the server; push: new data arrives); " +
	"vip_moved: the VIPs are on the other box once settled; takeover_s: from the event until the LAN VIP is on the other box (VRRP: 3 advert_int + skew, less the phase); after_takeover_s: from then until the flow is answered again (conntrackd's commit, the notify script, uplinkd)."

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
	Takeover        float64  `json:"takeover_s"`       // event → LAN VIP on the other box (VRRP)
	Recovery        float64  `json:"after_takeover_s"` // then → the LAN flow answered again
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
	// The outage is VRRP's takeover (which depends on where the cut falls between two
	// advertisements: up to advert_int, 100 ms) plus the recovery after it (conntrackd's commit,
	// the notify script, uplinkd): medians of each.
	TakeoverMedian float64 `json:"takeover_median_s"`
	RecoveryMedian float64 `json:"after_takeover_median_s"`
	RecoveryWorst  float64 `json:"after_takeover_worst_s"`
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
// runBenchHA runs each scenario runs times with every binary of bins ("": the bare pair),
// interleaved run by run so that the machine's noise falls on all alike, and prints a line per
// scenario and binary.
func runBenchHA(ctx context.Context, bins []string, runs int, only string, jsonOnly bool, stdout, progress io.Writer) error {
	for i, sc := range haScenarios {
		if only != "" && only != sc.name {
			continue
		}
		lines := make([]haLine, len(bins))
		for k, bin := range bins {
			lines[k] = haLine{Scenario: sc.name, Event: sc.event, Runs: runs, Method: haMethod, Uplinkd: bin != "",
				TCPSurvived: true, TCPPushSurvived: true, UDPSurvived: true, VIPMoved: true}
		}
		for r := range runs {
			for k, bin := range bins {
				if bin == "" && sc.name == "master_isp_silent" {
					continue // without uplinkd nothing judges the ISPs
				}
				fmt.Fprintf(progress, "ha %s run %d/%d (%s)\n", sc.name, r+1, runs, map[bool]string{true: "uplinkd", false: "bare"}[bin != ""])
				run, err := haOnce(ctx, bin, sc.name, uint16(44000+100*i+10*r+k))
				if err != nil {
					return fmt.Errorf("ha %s run %d: %w", sc.name, r+1, err)
				}
				lines[k].add(run)
			}
		}
		for _, line := range lines {
			if len(line.PerRun) == 0 {
				continue
			}
			line.summarise()
			if !jsonOnly {
				fmt.Fprintf(stdout, "# %s (%s): LAN outage median %.3f s, worst %.3f s = takeover %.3f + after it %.3f (worst %.3f); udp %d/%d, tcp %d/%d, push %d/%d, vip moved %d/%d\n",
					sc.name, map[bool]string{true: "uplinkd", false: "bare"}[line.Uplinkd], line.LANOutageMedian, line.LANOutageWorst,
					line.TakeoverMedian, line.RecoveryMedian, line.RecoveryWorst, line.UDPSurvivedN, runs, line.TCPSurvivedN, runs,
					line.TCPPushN, runs, line.VIPMovedN, runs)
			}
			js, err := json.Marshal(line)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(js))
		}
	}
	return nil
}

// add counts one run in.
func (line *haLine) add(run haRun) {
	line.PerRun = append(line.PerRun, run)
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

// summarise computes the medians and worsts of the runs.
func (line *haLine) summarise() {
	var outages, takeovers, recoveries []float64
	for _, r := range line.PerRun {
		outages, takeovers, recoveries = append(outages, r.LANOutage), append(takeovers, r.Takeover), append(recoveries, r.Recovery)
	}
	for _, xs := range [][]float64{outages, takeovers, recoveries} {
		slices.Sort(xs)
	}
	mid := len(outages) / 2
	line.LANOutageMedian, line.LANOutageWorst = outages[mid], outages[len(outages)-1]
	line.LANOutage = line.LANOutageMedian
	line.TakeoverMedian = takeovers[mid]
	line.RecoveryMedian, line.RecoveryWorst = recoveries[mid], recoveries[len(recoveries)-1]
}

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
	opts := netlab.ObserveOptions{SrcPort: sport, Phase: 100 * time.Millisecond} // advert_int
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
		LANOutage: ob.LANOutage.Seconds(), Takeover: ob.Takeover.Seconds(), Recovery: ob.Recovery.Seconds(),
		TCPSurvived: ob.TCPSurvived, TCPPushSurvived: ob.PushSurvived,
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
	compare := fs.Bool("compare", false, "run the bare pair and the pair with uplinkd alternately, run by run, and print both")
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
		return runBenchHA(ctx, []string{""}, *runs, *only, *jsonOnly, stdout, progress)
	}
	path, done, err := uplinkdBinary(ctx, *bin, nil)
	if err != nil {
		return err
	}
	defer done()
	bins := []string{path}
	if *compare {
		bins = []string{"", path}
	}
	return runBenchHA(ctx, bins, *runs, *only, *jsonOnly, stdout, progress)
}
