package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/netlab"
)

// status_flood: the shipped config (pinning on) in the standard lab; READERS goroutines read
// GET /v1/status as user nobody (group nogroup, the socket's group) in a loop, CONNS TCP
// connections from the LAN through the gateway are held open, and root asks for the status
// every 100 ms. After FLOOD-WINDOW isp1 fails silently; failover is the time from the cut to
// the daemon's "active [isp2]" event. The baseline is the same failover with a fresh daemon
// and no flood.

const floodMethod = "status_flood: shipped config + socket_group nogroup, standard lab (masquerade); per run a fresh uplinkd " +
	"with no load is cut (isp1 silent) for the baseline, then a fresh uplinkd gets READERS non-root status readers " +
	"(as nobody:nogroup, each looping GET /v1/status on its own connection), CONNS TCP connections from the LAN held open " +
	"to the internet's hold server, and root's GET /v1/status every 100 ms; after the window isp1 is cut silently. " +
	"failover = cut → the 'active [isp2]' event; threads/RSS sampled from /proc every 100 ms over the whole flood."

type floodReport struct {
	reportError
	Scenario       string  `json:"scenario"`
	Runs           int     `json:"runs"`
	Readers        int     `json:"readers"`
	ReadersNonRoot bool    `json:"readers_non_root"` // a reader's change request was refused (403)
	ReaderRequests int64   `json:"reader_requests"`  // answered, over every run
	ReaderErrors   int64   `json:"reader_errors"`
	Conns          int     `json:"conns"`
	Conntrack      int     `json:"conntrack_entries_min"` // fewest entries in the gateway at the cut, over runs
	WindowS        float64 `json:"window_s"`
	ThreadsMax     int     `json:"threads_max"`
	RSSMaxKiB      int64   `json:"rss_max_kib"`
	VmHWMKiB       int64   `json:"vmhwm_kib"`
	RootSamples    int     `json:"root_status_samples"`
	RootErrors     int     `json:"root_status_errors"`
	RootP50MS      float64 `json:"root_status_p50_ms"`
	RootP95MS      float64 `json:"root_status_p95_ms"`
	RootMaxMS      float64 `json:"root_status_max_ms"`
	FailoverMS     *stat   `json:"failover_ms"`
	BaselineMS     *stat   `json:"failover_baseline_ms"`
	Targets        struct {
		Threads  bool `json:"threads_le_64"`
		RSS      bool `json:"rss_le_64mib"`
		Root     bool `json:"root_status_le_100ms"`
		Failover bool `json:"failover_unchanged"` // median within 100 ms of the baseline's
	} `json:"targets_met"`
	Method string `json:"method"`
}

func (r *floodReport) human() string {
	return fmt.Sprintf("%d readers, %d conns (conntrack ≥ %d), %d runs: threads ≤ %d (%s), RSS ≤ %s, VmHWM %s (%s), root status p50/p95/max %.1f/%.1f/%.1f ms, %d errors (%s); failover %s ms vs %s ms without flood (%s)",
		r.Readers, r.Conns, r.Conntrack, r.Runs, r.ThreadsMax, yesNo(r.Targets.Threads), fmtMiB(r.RSSMaxKiB), fmtMiB(r.VmHWMKiB), yesNo(r.Targets.RSS),
		r.RootP50MS, r.RootP95MS, r.RootMaxMS, r.RootErrors, yesNo(r.Targets.Root), fmtStat(r.FailoverMS), fmtStat(r.BaselineMS), yesNo(r.Targets.Failover))
}

func fmtStat(s *stat) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%g/%g", s.Median, s.Max)
}

// floodConfig is the shipped config with a socket the readers' group may open.
func floodConfig() netlab.DaemonConfig {
	c := defaultConfig
	c.SocketGroup = "nogroup"
	return c
}

func (h *hostile) flood(ctx context.Context) (*floodReport, error) {
	o := h.opt
	r := &floodReport{Scenario: "status_flood", Runs: o.Runs, Readers: o.Readers, Conns: o.Conns, WindowS: o.FloodWindow.Seconds(), Method: floodMethod}
	uid, gid, err := netlab.Nobody()
	if err != nil {
		return r, err
	}
	lab, err := netlab.New(netlab.Options{Prefix: h.prefix(), Servers: true})
	if err != nil {
		return r, err
	}
	defer lab.Close()
	if err := lab.StartHold(); err != nil {
		return r, err
	}
	var failovers, baselines []float64
	var lat []time.Duration
	r.Conntrack = -1
	r.ReadersNonRoot = o.Readers > 0
	for i := range o.Runs {
		h.logf("status_flood run %d/%d: baseline failover", i+1, o.Runs)
		b, err := floodBaseline(ctx, lab, h.bin)
		if err != nil {
			return r, fmt.Errorf("baseline run %d: %w", i+1, err)
		}
		baselines = append(baselines, ms(b))
		h.logf("status_flood run %d/%d: %d readers, %d connections, %s", i+1, o.Runs, o.Readers, o.Conns, o.FloodWindow)
		fr, err := floodRun(ctx, lab, h.bin, o, uid, gid, h.logf)
		if err != nil {
			return r, fmt.Errorf("flood run %d: %w", i+1, err)
		}
		failovers = append(failovers, ms(fr.failover))
		lat = append(lat, fr.rootLat...)
		r.RootErrors += fr.rootErrors
		r.ReaderRequests += fr.readerOK
		r.ReaderErrors += fr.readerErr
		r.ReadersNonRoot = r.ReadersNonRoot && fr.nonRoot
		r.ThreadsMax = max(r.ThreadsMax, fr.threads)
		r.RSSMaxKiB = max(r.RSSMaxKiB, kib(fr.rss))
		r.VmHWMKiB = max(r.VmHWMKiB, kib(fr.hwm))
		if r.Conntrack < 0 || fr.conntrack < r.Conntrack {
			r.Conntrack = fr.conntrack
		}
		h.logf("status_flood run %d: failover %.0f ms (baseline %.0f ms), threads %d, RSS %s", i+1, ms(fr.failover), ms(b), fr.threads, fmtMiB(kib(fr.rss)))
	}
	slices.Sort(lat)
	r.RootSamples = len(lat)
	r.RootP50MS, r.RootP95MS, r.RootMaxMS = ms(percentile(lat, 0.5)), ms(percentile(lat, 0.95)), ms(percentile(lat, 1))
	r.FailoverMS, r.BaselineMS = medianMax(failovers), medianMax(baselines)
	r.Targets.Threads = r.ThreadsMax <= 64
	r.Targets.RSS = r.VmHWMKiB <= 64*1024
	r.Targets.Root = r.RootErrors == 0 && r.RootMaxMS <= 100
	r.Targets.Failover = r.FailoverMS != nil && r.BaselineMS != nil && r.FailoverMS.Median-r.BaselineMS.Median <= 100
	return r, nil
}

// cutAndWait cuts isp1 silently and returns the time until the daemon's "active [isp2]".
func cutAndWait(ctx context.Context, lab *netlab.Lab, d *netlab.Daemon) (time.Duration, error) {
	cut := time.Now()
	if err := lab.Break(1, netlab.SilentFailure); err != nil {
		return 0, err
	}
	ev, err := d.WaitEvent(ctx, 20*time.Second, cut, "active [isp2]", netlab.ActiveIs("isp2"))
	if err != nil {
		return 0, err
	}
	return ev.Time.Sub(cut), nil
}

func floodBaseline(ctx context.Context, lab *netlab.Lab, bin string) (took time.Duration, err error) {
	d, err := startDaemon(ctx, lab, bin, floodConfig(), 30*time.Second, nil)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, lab.Heal(1), d.Stop()) }()
	sleepCtx(ctx, time.Second) // as the flood run's daemon, not cut right after its start
	return cutAndWait(ctx, lab, d)
}

type floodResult struct {
	failover            time.Duration
	rootLat             []time.Duration
	rootErrors          int
	readerOK, readerErr int64
	nonRoot             bool
	threads             int
	rss, hwm            int64
	conntrack           int
	openTook            time.Duration
}

func floodRun(ctx context.Context, lab *netlab.Lab, bin string, o hostileOptions, uid, gid int, logf func(string, ...any)) (res floodResult, err error) {
	d, err := startDaemon(ctx, lab, bin, floodConfig(), 30*time.Second, nil)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, lab.Heal(1), d.Stop()) }()
	dir := filepath.Dir(d.ConfigPath())
	if err := os.Chmod(dir, 0o711); err != nil { // nobody must reach the socket (root:nogroup 0660)
		return res, err
	}
	sock := filepath.Join(dir, "uplinkd.sock")
	pid := d.Proc().Pid()

	// The readers: each its own client (one connection, kept alive), as nobody.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	defer func() { stopLoad(); load.Wait() }()
	var readerOK, readerErr atomic.Int64
	readers := make([]*control.Client, o.Readers)
	for i := range readers {
		readers[i] = control.NewClientDial(sock, netlab.UnixDialAs(sock, uid, gid))
	}
	if len(readers) > 0 { // proof that the daemon sees them as non-root: a change is refused
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		uerr := readers[0].Undrain(c, "isp2")
		cancel()
		res.nonRoot = errors.Is(uerr, control.ErrPermission)
		if !res.nonRoot {
			return res, fmt.Errorf("a reader's undrain was not refused as non-root: %v", uerr)
		}
	}
	for _, c := range readers {
		load.Go(func() {
			for loadCtx.Err() == nil { // bounded by the run: stopLoad ends it
				rc, cancel := context.WithTimeout(loadCtx, 5*time.Second)
				_, err := c.Status(rc)
				cancel()
				if err == nil {
					readerOK.Add(1)
					continue
				}
				if loadCtx.Err() == nil {
					readerErr.Add(1)
					sleepCtx(loadCtx, 50*time.Millisecond)
				}
			}
		})
	}
	// Root's status every 100 ms, and the daemon's threads and memory from /proc; the
	// poller's own figures, copied into res once it has ended.
	var samp struct {
		mu      sync.Mutex
		lat     []time.Duration
		errors  int
		threads int
		rss     int64
	}
	root := d.Client()
	load.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			c, cancel := context.WithTimeout(loadCtx, 5*time.Second)
			_, err := root.Status(c)
			cancel()
			took := time.Since(start)
			if loadCtx.Err() != nil {
				return
			}
			ps, perr := netlab.ReadProcStats(pid)
			samp.mu.Lock()
			if err != nil {
				samp.errors++
			} else {
				samp.lat = append(samp.lat, took)
			}
			if perr == nil {
				samp.threads = max(samp.threads, ps.Threads)
				samp.rss = max(samp.rss, ps.RSS)
			}
			samp.mu.Unlock()
		}
	})
	start := time.Now()
	conns, err := lab.OpenTCP(ctx, netlab.RoleLAN, netip.AddrPortFrom(netlab.Server4, netlab.HoldPort), o.Conns)
	if err != nil {
		return res, err
	}
	defer conns.Close()
	res.openTook = time.Since(start)
	logf("status_flood: %d connections open after %s", conns.Len(), res.openTook.Round(time.Millisecond))
	sleepCtx(ctx, max(0, o.FloodWindow-time.Since(start)))
	if n, err := netlab.ConntrackCount(lab.NS(netlab.RoleGW)); err == nil {
		res.conntrack = n
	} else {
		return res, err
	}
	if res.failover, err = cutAndWait(ctx, lab, d); err != nil {
		return res, err
	}
	sleepCtx(ctx, time.Second) // the conntrack cleanup of isp1 runs under the flood too
	stopLoad()
	load.Wait()
	res.rootLat, res.rootErrors, res.threads, res.rss = samp.lat, samp.errors, samp.threads, samp.rss
	u, err := d.Usage()
	if err != nil {
		return res, err
	}
	res.hwm = u.VmHWM
	res.readerOK, res.readerErr = readerOK.Load(), readerErr.Load()
	if _, err := d.Status(ctx); err != nil {
		return res, fmt.Errorf("status after the flood: %w", err)
	}
	return res, nil
}
