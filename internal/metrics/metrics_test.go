package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink"
)

// fakeSource serves a fixed snapshot and counts the reads.
type fakeSource struct {
	st    api.Status
	reads atomic.Int64
}

func (f *fakeSource) Status() api.Status { f.reads.Add(1); return f.st }

func twoUplinks() *fakeSource {
	since := time.Date(2026, 12, 1, 10, 2, 0, 0, time.UTC)
	return &fakeSource{st: api.Status{
		Version: "1.2.3",
		Active:  []string{"isp2"},
		Uplinks: []api.UplinkStatus{
			{Name: "isp1", State: uplink.Down, Since: since, Connections: 3, HoldDown: 20 * time.Second,
				Targets: []api.TargetStatus{{Address: "192.0.2.53", Loss: 100}, {Address: "198.51.100.53", Loss: 100}}},
			{Name: "isp2", State: uplink.Up, Since: since, Active: true, Drained: false, RTT: 12 * time.Millisecond, Loss: 5, Connections: -1,
				Targets: []api.TargetStatus{{Address: "192.0.2.53", RTT: 12 * time.Millisecond, Loss: 5}}},
		},
		IPv6: &api.IPv6Status{Advertise: "ra", Prefixes: []api.PrefixStatus{
			{Prefix: "2001:db8:a1::/64", Uplink: "isp1"}, {Prefix: "2001:db8:a2::/64", Uplink: "isp2", Preferred: true}},
			Translations: []string{"2001:db8:a1::/64 -> 2001:db8:a2::/64 via wan2"}},
		DNS: &api.DNSStatus{Zone: "lb.example.com.", Names: []api.DNSAnswers{
			{Name: "www.lb.example.com.", Addrs: []string{"203.0.113.80"}, Down: true, Fallback: true,
				Servers: []api.ServerStatus{{Server: "http://192.0.2.10:80/healthz", State: "down", Reason: "connection refused"}}},
			{Name: "mail.lb.example.com.", Addrs: []string{"198.51.100.66"}, Sites: []string{"lyon"}}}},
	}}
}

func scrape(t testing.TB, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func feed(m *Metrics) {
	a, b := netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("198.51.100.53")
	m.ObserveRound("isp1", uplink.Round{Results: []uplink.Result{{Target: a, OK: true, RTT: 8 * time.Millisecond}, {Target: b, Err: "timeout"}}})
	m.ObserveEvent(api.Event{Kind: api.KindState, Uplink: "isp1", From: "up", To: "down"})
	m.ObserveEvent(api.Event{Kind: api.KindActive, Active: []string{"isp2"}, Took: 14 * time.Millisecond})
	m.ObserveEvent(api.Event{Kind: api.KindReload, Reason: "configuration reloaded"})
	m.ObserveEvent(api.Event{Kind: api.KindReload, Reason: "refused: x"})
	m.ObserveEvent(api.Event{Kind: api.KindError, Reason: "netlink: boom"})
	m.HookRan("notify", "ok")
	m.HookDropped("notify")
}

func TestAScrapeShowsTheSnapshotAndTheCounters(t *testing.T) {
	src := twoUplinks()
	m := New(src, "1.2.3")
	feed(m)
	text := scrape(t, m)
	for _, want := range []string{
		`uplinkd_uplink_up{uplink="isp1"} 0`,
		`uplinkd_uplink_up{uplink="isp2"} 1`,
		`uplinkd_uplink_state{uplink="isp1",state="down"} 1`,
		`uplinkd_uplink_state{uplink="isp1",state="up"} 0`,
		`uplinkd_uplink_state{uplink="isp2",state="up"} 1`,
		`uplinkd_uplink_active{uplink="isp2"} 1`,
		`uplinkd_uplink_drained{uplink="isp1"} 0`,
		`uplinkd_uplink_rtt_seconds{uplink="isp2"} 0.012`,
		`uplinkd_uplink_loss_ratio{uplink="isp2"} 0.05`,
		`uplinkd_uplink_hold_down_seconds{uplink="isp1"} 20`,
		`uplinkd_uplink_connections{uplink="isp1"} 3`,
		`uplinkd_target_loss_ratio{uplink="isp1",target="198.51.100.53"} 1`,
		`uplinkd_probes_total{uplink="isp1",target="192.0.2.53",result="ok"} 1`,
		`uplinkd_probes_total{uplink="isp1",target="198.51.100.53",result="failed"} 1`,
		`uplinkd_target_rtt_seconds_bucket{uplink="isp1",target="192.0.2.53",le="0.01"} 1`,
		`uplinkd_transitions_total{to="down",uplink="isp1"} 1`,
		`uplinkd_switch_duration_seconds_bucket{le="0.025"} 1`,
		`uplinkd_reloads_total{result="ok"} 1`,
		`uplinkd_reloads_total{result="refused"} 1`,
		`uplinkd_apply_errors_total 1`,
		`uplinkd_hook_runs_total{hook="notify",result="ok"} 1`,
		`uplinkd_hook_dropped_total{hook="notify"} 1`,
		`uplinkd_build_info{goversion="`,
		`uplinkd_ipv6_prefix_preferred{uplink="isp1",prefix="2001:db8:a1::/64"} 0`,
		`uplinkd_ipv6_prefix_preferred{uplink="isp2",prefix="2001:db8:a2::/64"} 1`,
		`uplinkd_nptv6_translations 1`,
		`uplinkd_dns_server_up{name="www.lb.example.com.",server="http://192.0.2.10:80/healthz"} 0`,
		`uplinkd_dns_fallback{name="www.lb.example.com."} 1`,
		`uplinkd_dns_answer_site{name="mail.lb.example.com.",site="lyon"} 1`,
		`uplinkd_ra_sent_total 0`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(text, `uplinkd_uplink_connections{uplink="isp2"}`) {
		t.Error("an unknown connection count (-1) is exported; it should be absent")
	}
	for _, name := range Names {
		if !strings.Contains(text, "# TYPE "+name+" ") {
			t.Errorf("Names lists %s, but a scrape has no such family", name)
		}
	}
}

func TestForgetDropsTheCountersOfRemovedUplinks(t *testing.T) {
	m := New(twoUplinks(), "dev")
	feed(m)
	m.ObserveRound("isp2", uplink.Round{Results: []uplink.Result{{Target: netip.MustParseAddr("192.0.2.53"), OK: true}}})
	m.Forget(&uplink.Config{Uplinks: []uplink.Uplink{{Name: "isp2"}}})
	text := scrape(t, m)
	if strings.Contains(text, `uplinkd_probes_total{uplink="isp1",target="192.0.2.53",result="ok"}`) {
		t.Error("isp1's probe counter survived its removal")
	}
	if !strings.Contains(text, `uplinkd_probes_total{uplink="isp2",target="192.0.2.53",result="ok"} 1`) {
		t.Error("isp2's probe counter is gone")
	}
}

func TestFollowCountsEventsAndResubscribesWhenAStreamEnds(t *testing.T) {
	m := New(twoUplinks(), "dev")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	streams := make(chan chan api.Event, 2)
	subscribe := func(context.Context) <-chan api.Event {
		ch := make(chan api.Event, 1)
		streams <- ch
		return ch
	}
	done := make(chan struct{})
	go func() { defer close(done); m.Follow(ctx, subscribe, discard()) }()
	first := <-streams
	first <- api.Event{Kind: api.KindState, Uplink: "isp1", To: "down"}
	close(first) // the engine ended a stream that fell behind
	second := <-streams
	second <- api.Event{Kind: api.KindState, Uplink: "isp1", To: "up"}
	testkit.WaitUntil(t, 5*time.Second, "the second stream's event to be counted", func() bool {
		return strings.Contains(scrape(t, m), `uplinkd_transitions_total{to="up",uplink="isp1"} 1`)
	})
	cancel()
	close(second)
	<-done
}

func TestServeAnswersOnLoopbackAndStopsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(twoUplinks(), "dev")
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte("uplinkd_uplink_up")) {
		t.Errorf("GET /metrics: %s", body)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// TestPromtoolFindsNoProblem runs `promtool check metrics` (Debian package prometheus) over a
// scrape: names, units, suffixes and help texts follow Prometheus' conventions.
func TestPromtoolFindsNoProblem(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus); the exposition is not linted")
	}
	m := New(bigSnapshot(4, 3), "dev")
	feed(m)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape(t, m))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// bigSnapshot is a gateway with n uplinks of k targets each, every one measured.
func bigSnapshot(n, k int) *fakeSource {
	src := &fakeSource{st: api.Status{Version: "dev"}}
	for i := range n {
		u := api.UplinkStatus{Name: fmt.Sprintf("isp%d", i+1), State: uplink.Up, Since: time.Now(), Active: i == 0,
			RTT: time.Duration(i+1) * time.Millisecond, Loss: 1, Connections: 100 * i}
		for j := range k {
			u.Targets = append(u.Targets, api.TargetStatus{Address: fmt.Sprintf("192.0.2.%d", j+1), RTT: time.Millisecond, Loss: 1, Samples: 20})
		}
		src.st.Uplinks = append(src.st.Uplinks, u)
	}
	return src
}

// BenchmarkScrape64Uplinks8Targets is one whole scrape (gather and encode, as promhttp does)
// of a gateway with 64 uplinks × 8 targets whose probe counters and RTT histograms all have
// data. It runs on one goroutine, so ns/op is the CPU a scrape costs uplinkd.
func BenchmarkScrape64Uplinks8Targets(b *testing.B) {
	src := bigSnapshot(64, 8)
	m := New(src, "dev")
	for _, u := range src.st.Uplinks {
		r := uplink.Round{}
		for j, t := range u.Targets {
			r.Results = append(r.Results, uplink.Result{Target: netip.MustParseAddr(t.Address), OK: j%4 != 0, RTT: time.Duration(j+1) * time.Millisecond})
		}
		for range 3 {
			m.ObserveRound(u.Name, r)
		}
	}
	h := m.Handler()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip") // as Prometheus asks
	var size int
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		size = rec.Body.Len()
	}
	// CPU of the whole process (every thread, the garbage collector's too) per scrape.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/scrape")
	b.ReportMetric(float64(size)/1024, "gzipKiB/scrape")
	series := strings.Count(scrape(b, m), "\n") - strings.Count(scrape(b, m), "\n#")
	b.ReportMetric(float64(series), "series")
}

// BenchmarkObserveRound is what the engine's loop pays per probe round of 8 targets.
func BenchmarkObserveRound(b *testing.B) {
	m := New(bigSnapshot(1, 8), "dev")
	r := uplink.Round{}
	for j := range 8 {
		r.Results = append(r.Results, uplink.Result{Target: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", j+1)), OK: j != 0, RTT: time.Millisecond})
	}
	for b.Loop() {
		m.ObserveRound("isp1", r)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestNamesAreSortedOutOfDuplicates(t *testing.T) {
	s := slices.Clone(Names)
	slices.Sort(s)
	if len(slices.Compact(s)) != len(Names) {
		t.Error("Names lists a metric twice")
	}
}
