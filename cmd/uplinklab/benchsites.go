package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// The several-sites benchmark (`uplinklab bench -sites`): two sites, each with its own uplinkd,
// web server and name servers (netlab.StartSites), customers resolving through Unbound.
const sitesMethod = "one fresh lab per run: site paris (the lab's gateway, two ISPs, its web server on the LAN behind a DNAT) and site lyon (a gateway with one uplink on the Internet, its web server on itself), both uplinkd with the shipped probing and [dns.check] defaults and the shipped TTL (-ttl), www failover paris then lyon; Unbound on the Internet with a stub to every site's name servers. " +
	"The resolver is primed (paris), then paris loses power (its uplinkd stopped and its ISPs' wires down at once) at a random phase of the TTL. " +
	"site_loss_outage_s: from the cut until a customer (dig through Unbound, then a TCP connection to the answer, every 100 ms) reaches lyon: lyon's detection + what is left of the cached TTL + the resolver's retry of paris's dead name servers, so it depends on the phase. " +
	"withdrawn_after_s: from the cut until lyon's name servers answer lyon only. agree_after_s: from power back (paris's uplinkd restarted) until both sites answer paris. " +
	"fallback_after_s: from both web servers stopped until both sites answer the fallback. " +
	"partition: the Internet drops what the sites send each other for -partition while customers reach both; changes_in_partition counts each site's answer changes for www, and verified says every answer of each site held only its own addresses or the other's it had verified before."

type sitesRun struct {
	Phase     float64 `json:"phase_s"`
	Outage    float64 `json:"site_loss_outage_s"`
	Withdrawn float64 `json:"withdrawn_after_s"`
	Agree     float64 `json:"agree_after_s"`
	Fallback  float64 `json:"fallback_after_s"`
}

type sitesReport struct {
	TTL              float64        `json:"ttl_s"`
	Runs             int            `json:"runs"`
	OutageMedian     float64        `json:"site_loss_outage_median_s"`
	OutageWorst      float64        `json:"site_loss_outage_worst_s"`
	WithdrawnMedian  float64        `json:"withdrawn_after_median_s"`
	WithdrawnWorst   float64        `json:"withdrawn_after_worst_s"`
	AgreeMedian      float64        `json:"agree_after_median_s"`
	FallbackMedian   float64        `json:"fallback_after_median_s"`
	FallbackWorst    float64        `json:"fallback_after_worst_s"`
	PartitionSeconds float64        `json:"partition_s,omitempty"`
	Changes          map[string]int `json:"changes_in_partition,omitempty"`
	Verified         bool           `json:"verified_in_partition"`
	Idle             *sitesCost     `json:"idle_cost,omitempty"`
	PerRun           []sitesRun     `json:"per_run"`
	Method           string         `json:"method"`
}

func runBenchSitesFlags(ctx context.Context, args []string, stdout, progress io.Writer) error {
	fs, _ := newFlags("bench -sites")
	fs.Bool("sites", true, "the several-sites benchmark")
	jsonOnly := fs.Bool("json", false, "print only the JSON report")
	runs := fs.Int("runs", 3, "runs (a fresh lab each)")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	ttl := fs.Duration("ttl", uplink.DefaultDNSTTL, "the zone's TTL ([dns] ttl)")
	partition := fs.Duration("partition", 60*time.Second, "how long the sites are cut from each other (0 skips it)")
	idle := fs.Duration("idle", 30*time.Second, "how long to measure the checks' idle cost, 16 names × 4 sites (0 skips it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 || *runs > 20 || *ttl < time.Second || *ttl > 5*time.Minute || *partition < 0 || *partition > 10*time.Minute {
		return fmt.Errorf("want -runs 1..20, -ttl 1s..5m, -partition 0..10m")
	}
	path, done, err := rootAndBinary(ctx, *bin)
	if err != nil {
		return err
	}
	defer done()
	rep := sitesReport{TTL: ttl.Seconds(), Runs: *runs, Method: sitesMethod}
	for r := range *runs {
		fmt.Fprintf(progress, "sites run %d/%d\n", r+1, *runs)
		run, err := sitesOnce(ctx, path, *ttl)
		if err != nil {
			return fmt.Errorf("sites run %d: %w", r+1, err)
		}
		fmt.Fprintf(progress, "  phase %.1fs: outage %.2fs, withdrawn %.2fs, agree %.2fs, fallback %.2fs\n", run.Phase, run.Outage, run.Withdrawn, run.Agree, run.Fallback)
		rep.PerRun = append(rep.PerRun, run)
	}
	col := func(f func(sitesRun) float64) *stat {
		var v []float64
		for _, r := range rep.PerRun {
			v = append(v, f(r))
		}
		return medianMax(v)
	}
	o, w := col(func(r sitesRun) float64 { return r.Outage }), col(func(r sitesRun) float64 { return r.Withdrawn })
	a, f := col(func(r sitesRun) float64 { return r.Agree }), col(func(r sitesRun) float64 { return r.Fallback })
	rep.OutageMedian, rep.OutageWorst, rep.WithdrawnMedian, rep.WithdrawnWorst = o.Median, o.Max, w.Median, w.Max
	rep.AgreeMedian, rep.FallbackMedian, rep.FallbackWorst = a.Median, f.Median, f.Max
	if *partition > 0 {
		fmt.Fprintf(progress, "partition for %s\n", *partition)
		if rep.Changes, rep.Verified, err = sitesPartition(ctx, path, *ttl, *partition); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		rep.PartitionSeconds = partition.Seconds()
	}
	if *idle > 0 {
		fmt.Fprintf(progress, "idle cost for %s\n", *idle)
		if rep.Idle, err = sitesIdleCost(ctx, path, *idle); err != nil {
			return fmt.Errorf("idle cost: %w", err)
		}
	}
	if !*jsonOnly {
		if c := rep.Idle; c != nil {
			fmt.Fprintf(stdout, "idle, %d names × %d sites × 2 uplinks (%d checked targets): %.2f %% of a core, %.2f %% without them\n", c.Names, c.Sites, c.Checks, c.WithPct, c.WithoutPct)
		}
		fmt.Fprintf(stdout, "sites (TTL %s, %d runs): site loss outage %.2f / %.2f s (median / worst), withdrawn %.2f / %.2f s, agree %.2f s, fallback %.2f / %.2f s\n",
			*ttl, *runs, rep.OutageMedian, rep.OutageWorst, rep.WithdrawnMedian, rep.WithdrawnWorst, rep.AgreeMedian, rep.FallbackMedian, rep.FallbackWorst)
		if rep.Changes != nil {
			fmt.Fprintf(stdout, "partition %s: answer changes %v, every answer verified by its site: %v\n", *partition, rep.Changes, rep.Verified)
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}

// sitesLab builds a lab with both sites running.
func sitesLab(ctx context.Context, bin string, ttl time.Duration) (*netlab.Lab, *netlab.Sites, error) {
	lab, err := netlab.New(netlab.Options{})
	if err != nil {
		return nil, nil, err
	}
	s, err := lab.StartSites(ctx, netlab.SitesOptions{Binary: bin, Probe: shipped(), TTL: ttl, InfoLogs: true})
	if err != nil {
		lab.Close()
		return nil, nil, err
	}
	return lab, s, nil
}

func sitesOnce(ctx context.Context, bin string, ttl time.Duration) (run sitesRun, err error) {
	lab, s, err := sitesLab(ctx, bin, ttl)
	if err != nil {
		return run, err
	}
	defer lab.Close()
	at := func(site string) func(string) bool { return func(x string) bool { return x == site } }
	if _, ok := s.WaitVisit(ctx, 20*time.Second, at(netlab.SiteA)); !ok {
		return run, fmt.Errorf("customers never reached paris")
	}
	primed := time.Now()
	sleepCtx(ctx, time.Duration(rand.Int64N(int64(ttl))))
	run.Phase = time.Since(primed).Seconds()
	cut := time.Now()
	if err := s.A.Stop(); err != nil {
		return run, err
	}
	if err := lab.PowerCut(netlab.RoleGW); err != nil {
		return run, err
	}
	withdrawn := make(chan float64, 1)
	go func() {
		secs, _ := pollUntil(ctx, cut, 30*time.Second, 50*time.Millisecond, func() bool { return netlab.OnlyOf(s.Answers(ctx, netlab.SiteB), netlab.SiteB) })
		withdrawn <- secs
	}()
	secs, ok := s.WaitVisit(ctx, ttl+60*time.Second, at(netlab.SiteB))
	if !ok {
		return run, fmt.Errorf("customers never reached lyon")
	}
	run.Outage, run.Withdrawn = secs, <-withdrawn

	if err := lab.PowerBack(netlab.RoleGW); err != nil {
		return run, err
	}
	back := time.Now()
	if err := s.StartDaemon(ctx, netlab.SiteA); err != nil {
		return run, err
	}
	if run.Agree, ok = pollUntil(ctx, back, 60*time.Second, 50*time.Millisecond, func() bool {
		return s.Agree(ctx, netlab.SiteA)
	}); !ok {
		return run, fmt.Errorf("the sites never agreed on paris after the power came back")
	}
	dead := time.Now()
	s.WebA.Stop()
	s.WebB.Stop()
	fallback := []string{"203.0.113.80"}
	if run.Fallback, ok = pollUntil(ctx, dead, 30*time.Second, 50*time.Millisecond, func() bool {
		return slices.Equal(s.Answers(ctx, netlab.SiteA), fallback) && slices.Equal(s.Answers(ctx, netlab.SiteB), fallback)
	}); !ok {
		return run, fmt.Errorf("the sites never answered the fallback")
	}
	return run, nil
}

// sitesPartition cuts the sites from each other for d and counts each site's answer changes;
// verified: each site's answers held only its own addresses once it had noticed.
func sitesPartition(ctx context.Context, bin string, ttl, d time.Duration) (map[string]int, bool, error) {
	lab, s, err := sitesLab(ctx, bin, ttl)
	if err != nil {
		return nil, false, err
	}
	defer lab.Close()
	if _, ok := pollUntil(ctx, time.Now(), 20*time.Second, 100*time.Millisecond, func() bool {
		return netlab.OnlyOf(s.Answers(ctx, netlab.SiteA), netlab.SiteA) && netlab.OnlyOf(s.Answers(ctx, netlab.SiteB), netlab.SiteA)
	}); !ok {
		return nil, false, fmt.Errorf("the sites never agreed before the partition")
	}
	if err := lab.Partition(); err != nil {
		return nil, false, err
	}
	defer lab.Unpartition()
	changes := map[string]int{netlab.SiteA: 0, netlab.SiteB: 0}
	last := map[string]string{}
	for _, site := range []string{netlab.SiteA, netlab.SiteB} {
		last[site] = strings.Join(s.Answers(ctx, site), " ")
	}
	verified := true
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil { // bounded by d
		for _, site := range []string{netlab.SiteA, netlab.SiteB} {
			got := s.Answers(ctx, site)
			text := strings.Join(got, " ")
			if text != last[site] && text != "" {
				changes[site]++
				last[site] = text
			}
			// paris always serves itself; lyon, cut from paris, may only keep paris's
			// addresses until its checks fail, then answers itself.
			if site == netlab.SiteA && !netlab.OnlyOf(got, netlab.SiteA) && len(got) > 0 {
				verified = false
			}
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	if !netlab.OnlyOf(s.Answers(ctx, netlab.SiteB), netlab.SiteB) {
		verified = false // lyon still answered paris, which it could no longer verify
	}
	return changes, verified, nil
}

// sitesCost is what the checks cost idle: uplinkd with 16 names × 4 sites (this one, lyon and
// two more on the Internet) × 2 uplinks on the shipped defaults, against the same daemon
// without them, each measured over window.
type sitesCost struct {
	Names      int     `json:"names"`
	Sites      int     `json:"sites"`
	Checks     int     `json:"checked_targets"`
	WithPct    float64 `json:"cpu_pct"`
	WithoutPct float64 `json:"cpu_pct_without"`
}

func sitesIdleCost(ctx context.Context, bin string, window time.Duration) (*sitesCost, error) {
	lab, err := netlab.New(netlab.Options{})
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	if _, err := lab.StartWebServer(netlab.RoleLAN, netlab.SiteA, netip.AddrPortFrom(netlab.Client4, netlab.WebPort)); err != nil {
		return nil, err
	}
	// The other sites' addresses all live on the Internet: one server answers them all.
	if _, err := lab.StartWebServer(netlab.RoleInet, "elsewhere", netip.AddrPortFrom(netip.IPv4Unspecified(), netlab.WebPort)); err != nil {
		return nil, err
	}
	remote := []netip.Addr{netlab.Targets4[0], netlab.Targets4[1], netlab.Targets4[2]}
	var b strings.Builder
	fmt.Fprintf(&b, "\n[dns]\nzone = %q\nsite = \"paris\"\n", netlab.SitesZone)
	const names = 16
	for i := range names {
		fmt.Fprintf(&b, "\n[[dns.name]]\nname = \"www%d\"\nservers = [\"http://%s/healthz\"]\nexpect = \"ok\"\n", i, netip.AddrPortFrom(netlab.Client4, netlab.WebPort))
	}
	fmt.Fprintf(&b, "\n[[site]]\nname = \"paris\"\nnameservers = [%q]\naddresses = [%q]\n", netlab.GWWAN1Addr4, netlab.GWWAN1Addr4)
	for i, a := range remote {
		fmt.Fprintf(&b, "\n[[site]]\nname = \"site%d\"\nnameservers = [%q]\naddresses = [%q]\n", i+2, a, a)
	}
	measure := func(extra string) (float64, error) {
		cfg := shipped()
		cfg.Extra = extra
		d, err := startDaemon(ctx, lab, bin, cfg, 20*time.Second, nil)
		if err != nil {
			return 0, err
		}
		defer d.Stop()
		sleepCtx(ctx, 5*time.Second) // past the start
		u0, err := d.Usage()
		if err != nil {
			return 0, err
		}
		start := time.Now()
		sleepCtx(ctx, window)
		u1, err := d.Usage()
		if err != nil {
			return 0, err
		}
		return round(100*(u1.CPU-u0.CPU).Seconds()/time.Since(start).Seconds(), 2), nil
	}
	c := &sitesCost{Names: names, Sites: 1 + len(remote), Checks: names * (1 + len(remote))}
	if c.WithPct, err = measure(b.String()); err != nil {
		return nil, err
	}
	if c.WithoutPct, err = measure(""); err != nil {
		return nil, err
	}
	return c, nil
}
