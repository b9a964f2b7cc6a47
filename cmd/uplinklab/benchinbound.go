package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// The inbound benchmark (`uplinklab bench -inbound`): customers on the Internet side resolve
// www.lb.example.com through Unbound, delegated to uplinkd's name servers on both uplinks.
const inboundMethod = "one fresh lab per run; uplinkd with the shipped defaults and [dns] (zone lb.example.com, www, the shipped TTL); Unbound in the internet namespace with a stub to ns-isp1 and ns-isp2. " +
	"The resolver is primed (it caches isp1's address), then isp1 dies silently at a random phase of the TTL (0 to ttl) and of the probe round. " +
	"inbound_outage_s: from the cut until the resolver first answers isp2's address (customers reach the business again); it is detection + what is left of the cached TTL + the resolver's retry of the dead server, so it depends on the phase. " +
	"dns_after_route_ms: from uplinkd's log line of the route change to its log line of the new answers (the same Set; the log has millisecond resolution). back_on_isp1_s: from the heal until the resolver answers isp1's address again. " +
	"flood: one source sends random names at -flood-qps for -flood-seconds to isp1's address; isp1 is cut silently half-way; uplinkd's threads and peak RSS, the bytes it answered against the bytes it got, and the detection time under the flood."

type inboundRun struct {
	Phase         float64 `json:"phase_s"` // when in the TTL the cut came
	Outage        float64 `json:"inbound_outage_s"`
	DNSAfterRoute float64 `json:"dns_after_route_ms"`
	Back          float64 `json:"back_on_isp1_s"`
}

type inboundFloodResult struct {
	QPS           int     `json:"qps"`
	Seconds       float64 `json:"seconds"`
	QueryBytes    int64   `json:"query_bytes"`
	ResponseBytes int64   `json:"response_bytes"`
	Responses     int64   `json:"responses"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	Threads       int     `json:"threads_max"`
	CPUSeconds    float64 `json:"cpu_s"`
	Detection     float64 `json:"detection_under_flood_s"`
}

type inboundReport struct {
	Signed       bool                `json:"dnssec"`
	TTL          float64             `json:"ttl_s"`
	Runs         int                 `json:"runs"`
	OutageMedian float64             `json:"inbound_outage_median_s"`
	OutageWorst  float64             `json:"inbound_outage_worst_s"`
	DNSMedian    float64             `json:"dns_after_route_median_ms"`
	DNSWorst     float64             `json:"dns_after_route_worst_ms"`
	BackMedian   float64             `json:"back_on_isp1_median_s"`
	PerRun       []inboundRun        `json:"per_run"`
	Flood        *inboundFloodResult `json:"flood,omitempty"`
	Method       string              `json:"method"`
}

const benchZone = "lb.example.com"

func runBenchInboundFlags(ctx context.Context, args []string, stdout, progress io.Writer) error {
	fs, _ := newFlags("bench -inbound")
	fs.Bool("inbound", true, "the inbound (DNS) benchmark")
	jsonOnly := fs.Bool("json", false, "print only the JSON report")
	runs := fs.Int("runs", 3, "runs (a fresh lab each)")
	bin := fs.String("uplinkd", "", "uplinkd binary to run (default: go build ./cmd/uplinkd)")
	ttl := fs.Duration("ttl", uplink.DefaultDNSTTL, "the zone's TTL ([dns] ttl)")
	qps := fs.Int("flood-qps", 20000, "queries per second of the flood (0 skips it)")
	floodFor := fs.Duration("flood-seconds", 10*time.Second, "how long the flood lasts")
	signed := fs.Bool("dnssec", false, "sign the zone ([dns] dnssec, a fresh key) and send the flood's queries with DO")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runs < 1 || *runs > 50 || *ttl < time.Second || *qps < 0 || *qps > 200000 || *floodFor < 2*time.Second || *floodFor > 5*time.Minute {
		return fmt.Errorf("want -runs 1..50, -ttl ≥ 1s, -flood-qps 0..200000, -flood-seconds 2s..5m")
	}
	path, done, err := rootAndBinary(ctx, *bin)
	if err != nil {
		return err
	}
	defer done()
	key := ""
	if *signed {
		dir, err := os.MkdirTemp("", "uplinklab-dnssec")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		key = filepath.Join(dir, "dnssec.key")
		if _, err := config.GenerateDNSSECKey(key, benchZone); err != nil {
			return err
		}
	}
	rep := inboundReport{Signed: *signed, TTL: ttl.Seconds(), Runs: *runs, Method: inboundMethod}
	for r := range *runs {
		fmt.Fprintf(progress, "inbound run %d/%d\n", r+1, *runs)
		run, err := inboundOnce(ctx, path, *ttl, key)
		if err != nil {
			return fmt.Errorf("inbound run %d: %w", r+1, err)
		}
		fmt.Fprintf(progress, "  phase %.2fs: outage %.2fs, answers %.1f ms after the route, back %.2fs\n", run.Phase, run.Outage, run.DNSAfterRoute, run.Back)
		rep.PerRun = append(rep.PerRun, run)
	}
	col := func(f func(inboundRun) float64) *stat {
		var v []float64
		for _, r := range rep.PerRun {
			v = append(v, f(r))
		}
		return medianMax(v)
	}
	o, d, b := col(func(r inboundRun) float64 { return r.Outage }), col(func(r inboundRun) float64 { return r.DNSAfterRoute }), col(func(r inboundRun) float64 { return r.Back })
	rep.OutageMedian, rep.OutageWorst, rep.DNSMedian, rep.DNSWorst, rep.BackMedian = o.Median, o.Max, d.Median, d.Max, b.Median
	if *qps > 0 {
		fmt.Fprintf(progress, "inbound flood: %d q/s for %s\n", *qps, *floodFor)
		if rep.Flood, err = inboundFlood(ctx, path, *ttl, *qps, *floodFor, key); err != nil {
			return fmt.Errorf("flood: %w", err)
		}
	}
	if !*jsonOnly {
		fmt.Fprintf(stdout, "inbound (TTL %s, %d runs): outage %.2f / %.2f s (median / worst), answers %.1f / %.1f ms after the route, back on isp1 %.2f s\n",
			*ttl, *runs, rep.OutageMedian, rep.OutageWorst, rep.DNSMedian, rep.DNSWorst, rep.BackMedian)
		if f := rep.Flood; f != nil {
			fmt.Fprintf(stdout, "flood %d q/s for %.0f s: got %d B, answered %d B in %d responses; uplinkd ≤ %d threads, peak RSS %.1f MiB, %.2f s CPU; isp1 detected down in %.2f s under the flood\n",
				f.QPS, f.Seconds, f.QueryBytes, f.ResponseBytes, f.Responses, f.Threads, f.PeakRSSMiB, f.CPUSeconds, f.Detection)
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}

func inboundLab(ctx context.Context, bin string, ttl time.Duration, key string) (*netlab.Lab, *netlab.Daemon, error) {
	lab, err := netlab.New(netlab.Options{})
	if err != nil {
		return nil, nil, err
	}
	cfg := shipped()
	cfg.Extra = fmt.Sprintf("\n[dns]\nzone = %q\nttl = %q\n\n[[dns.name]]\nname = \"www\"\n", benchZone, ttl)
	if key != "" { // signed: the flood's queries ask for DNSSEC records too
		cfg.Extra = strings.Replace(cfg.Extra, "\n\n[[dns.name]]", fmt.Sprintf("\ndnssec = %q\n\n[[dns.name]]", key), 1)
	}
	d, err := startDaemon(ctx, lab, bin, cfg, 20*time.Second, nil)
	if err != nil {
		lab.Close()
		return nil, nil, err
	}
	return lab, d, nil
}

func inboundOnce(ctx context.Context, bin string, ttl time.Duration, key string) (run inboundRun, err error) {
	lab, d, err := inboundLab(ctx, bin, ttl, key)
	if err != nil {
		return run, err
	}
	defer lab.Close()
	defer d.Stop()
	dir, err := os.MkdirTemp("", "uplinklab-unbound")
	if err != nil {
		return run, err
	}
	defer os.RemoveAll(dir)
	resolver := netlab.Server4
	ub, err := lab.StartUnbound(ctx, netlab.RoleInet, resolver, benchZone, []netip.Addr{netlab.GWWAN1Addr4, netlab.GWWAN2Addr4}, dir)
	if err != nil {
		return run, err
	}
	defer ub.Stop(2 * time.Second)
	resolve := func() string {
		a, err := lab.Dig(ctx, netlab.RoleInet, "@"+resolver.String(), "www."+benchZone, "A")
		if err != nil || len(a.Answer) != 1 {
			return ""
		}
		return a.Answer[0][1]
	}
	// until resolve answers want, polled every 50 ms, at most limit.
	until := func(want netip.Addr, from time.Time, limit time.Duration) (float64, error) {
		if s, ok := pollUntil(ctx, from, limit, 50*time.Millisecond, func() bool { return resolve() == want.String() }); ok {
			return s, nil
		}
		return 0, fmt.Errorf("the resolver did not answer %s within %s", want, limit)
	}
	if _, err := until(netlab.GWWAN1Addr4, time.Now(), 10*time.Second); err != nil {
		return run, err
	}
	primed := time.Now()
	phase := time.Duration(rand.Int64N(int64(ttl)))
	sleepCtx(ctx, phase)
	run.Phase = time.Since(primed).Seconds()
	logFrom := len(d.Proc().Output())
	cut := time.Now()
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		return run, err
	}
	if run.Outage, err = until(netlab.GWWAN2Addr4, cut, ttl+30*time.Second); err != nil {
		return run, err
	}
	run.DNSAfterRoute = dnsAfterRoute(string(d.Proc().Output()[logFrom:]))
	healed := time.Now()
	if err := lab.Heal(1); err != nil {
		return run, err
	}
	if run.Back, err = until(netlab.GWWAN1Addr4, healed, ttl+60*time.Second); err != nil {
		return run, err
	}
	return run, nil
}

var logTime = regexp.MustCompile(`^time=(\S+) `)

// dnsAfterRoute is the time in ms from the first "routing: replace route … table <active>"
// line of log to the first "dns answers" line after it; -1 when either is missing.
func dnsAfterRoute(log string) float64 {
	var route time.Time
	for _, line := range strings.Split(log, "\n") {
		m := logTime.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		switch {
		case route.IsZero() && strings.Contains(line, `msg="routing: replace route ipv4 table `+strconv.Itoa(uplink.DefaultTableBase)+" "):
			route = t
		case !route.IsZero() && strings.Contains(line, `msg="dns answers"`):
			return float64(t.Sub(route).Microseconds()) / 1000
		}
	}
	return -1
}

// inboundFlood floods isp1's address with random names from one source, cuts isp1 half-way
// and measures what the flood costs uplinkd and whether detection slows.
func inboundFlood(ctx context.Context, bin string, ttl time.Duration, qps int, dur time.Duration, key string) (*inboundFloodResult, error) {
	lab, d, err := inboundLab(ctx, bin, ttl, key)
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	defer d.Stop()
	var conn *net.UDPConn
	if err := lab.InNS(netlab.RoleInet, func() error {
		var err error
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netlab.Server4, 0)))
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	res := &inboundFloodResult{QPS: qps, Seconds: dur.Seconds()}
	var respBytes, responses atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			respBytes.Add(int64(n))
			responses.Add(1)
		}
	}()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netlab.GWWAN1Addr4, 53))
	pid := d.Proc().Pid()
	start := time.Now()
	var cut, down time.Time
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	perTick := max(1, qps/1000)
	q := new(dns.Msg)
	if key != "" {
		q.SetEdns0(1232, true) // DO: each new name would want a signed denial
	}
	for sent := 0; time.Since(start) < dur; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		for want := int(time.Since(start).Seconds() * float64(qps)); sent < want && sent < want+perTick; sent++ {
			q.SetQuestion(fmt.Sprintf("r%08x.%s.", rand.Uint32(), benchZone), dns.TypeA)
			q.Id = dns.Id()
			wire, _ := q.Pack()
			if n, err := conn.WriteToUDP(wire, dst); err == nil {
				res.QueryBytes += int64(n)
			}
		}
		if cut.IsZero() && time.Since(start) > dur/2 {
			if err := lab.Break(1, netlab.SilentFailure); err != nil {
				return nil, err
			}
			cut = time.Now()
		}
		if !cut.IsZero() && down.IsZero() && time.Since(cut) > 100*time.Millisecond && int(time.Since(start)/time.Millisecond)%100 == 0 {
			if st, err := d.Status(ctx); err == nil && slices.Equal(st.Active, []string{"isp2"}) {
				down = time.Now()
			}
		}
		if n := threads(pid); n > res.Threads {
			res.Threads = n
		}
	}
	if down.IsZero() { // the status is polled at most every 100 ms; one last look
		if _, err := d.WaitStatus(ctx, 10*time.Second, "isp2 active", func(st api.Status) bool { return slices.Equal(st.Active, []string{"isp2"}) }); err != nil {
			return nil, err
		}
		down = time.Now()
	}
	res.Detection = round(down.Sub(cut).Seconds(), 3)
	sleepCtx(ctx, 200*time.Millisecond)
	res.ResponseBytes, res.Responses = respBytes.Load(), responses.Load()
	u, err := netlab.ReadUsage(pid)
	if err != nil {
		return nil, err
	}
	res.PeakRSSMiB = round(float64(u.VmHWM)/(1<<20), 1)
	res.CPUSeconds = round(u.CPU.Seconds(), 2)
	return res, nil
}

// threads is the thread count of pid (0 when unknown).
func threads(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
