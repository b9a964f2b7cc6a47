package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// The Start helper runs probe.Start for each request in one process in a lab namespace and
// prints every finished round as a JSON line, until its stdin closes (or a minute passes).

const startHelperEnv = "UPLINKD_PROBE_START_HELPER"

type startRequest struct {
	Name     string
	Method   string
	Pin      Pin
	Targets  []netip.Addr
	Interval time.Duration
	Timeout  time.Duration
	// TargetMethods are per-target methods, as the configuration writes them ("tcp:9").
	TargetMethods map[netip.Addr]string
}

type startLine struct {
	Uplink string
	At     time.Time
	Round  uplink.Round
	FDs    int // open file descriptors of the helper when the round was printed
}

func runStartHelper(reqJSON string) int {
	var reqs []startRequest
	if err := json.Unmarshal([]byte(reqJSON), &reqs); err != nil {
		fmt.Fprintln(os.Stderr, "helper: bad request:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	var ups []*Uplink
	for _, req := range reqs {
		m, err := uplink.ParseMethod(req.Method)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 2
		}
		p := uplink.Probe{Targets: req.Targets, Method: m, Interval: req.Interval, Timeout: req.Timeout, DownAfter: 3}
		for target, spec := range req.TargetMethods {
			tm, err := uplink.ParseMethod(spec)
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper:", err)
				return 2
			}
			if p.TargetMethods == nil {
				p.TargetMethods = map[netip.Addr]uplink.Method{}
			}
			p.TargetMethods[target] = tm
		}
		u, err := Start(ctx, req.Name, p, req.Pin, func(r uplink.Round) {
			fds, _ := os.ReadDir("/proc/self/fd")
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(startLine{Uplink: req.Name, At: time.Now(), Round: r, FDs: len(fds)})
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 2
		}
		ups = append(ups, u)
	}
	done := make(chan struct{})
	go func() { _, _ = bufio.NewReader(os.Stdin).ReadString('\n'); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	for _, u := range ups {
		u.Stop()
	}
	return 0
}

// startIn runs the Start helper in role's namespace; lines delivers its rounds, stop ends it.
func startIn(t *testing.T, l *netlab.Lab, role string, reqs []startRequest) (lines <-chan startLine, stop func()) {
	t.Helper()
	js, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd, err := l.Command(ctx, role, exe)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), startHelperEnv+"="+string(js))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	ch := make(chan startLine, 1024)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ch)
		dec := json.NewDecoder(stdout)
		for {
			var ln startLine
			if err := dec.Decode(&ln); err != nil {
				return
			}
			select {
			case ch <- ln:
			default: // the test stopped reading
			}
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stdin.Close()
			wg.Wait()
			if err := cmd.Wait(); err != nil {
				t.Errorf("start helper: %v: %s", err, stderr.String())
			}
			cancel()
		})
	}
	t.Cleanup(stop)
	return ch, stop
}

// nextRound waits (bounded) for the next round of the named uplink.
func nextRound(t *testing.T, lines <-chan startLine, name string) startLine { // name "": any uplink
	t.Helper()
	limit := time.After(10 * time.Second)
	for {
		select {
		case ln, ok := <-lines:
			if !ok {
				t.Fatal("the start helper ended")
			}
			if name == "" || ln.Uplink == name {
				return ln
			}
		case <-limit:
			t.Fatalf("no round of %s within 10s", name)
		}
	}
}

func TestStartProbesThroughOneLongLivedSocketPerFamily(t *testing.T) {
	l := policyLab(t, netlab.Options{})
	up := netlab.Uplinks[0]
	targets := append(append([]netip.Addr{}, netlab.Targets4...), netlab.Targets6...)
	before := counters(t, l)
	lines, stop := startIn(t, l, netlab.RoleGW, []startRequest{{Name: "isp1", Method: "icmp",
		Pin: Pin{Mark: up.Mark, Source4: up.GW4, Source6: up.GW6}, Targets: targets, Interval: 50 * time.Millisecond, Timeout: time.Second}})
	var fds []int
	for range 20 {
		ln := nextRound(t, lines, "isp1")
		for i, r := range ln.Round.Results {
			if r.Target != targets[i] || !r.OK || r.RTT <= 0 {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
		fds = append(fds, ln.FDs)
	}
	stop()
	d := sub(counters(t, l), before)
	if d[0].UpICMP < 20*uint64(len(targets)) || d[1].UpICMP != 0 || d[0].Spoofed+d[1].Spoofed != 0 {
		t.Fatalf("echo requests: isp1 %+v, isp2 %+v", d[0], d[1])
	}
	if fds[len(fds)-1] != fds[2] {
		t.Errorf("open descriptors changed from %d to %d: sockets should live as long as the uplink", fds[2], fds[len(fds)-1])
	}
}

func TestStartJudgesASilentFailureQuicklyAndKeepsTheOtherUplink(t *testing.T) {
	l := policyLab(t, netlab.Options{})
	var reqs []startRequest
	for _, u := range netlab.Uplinks {
		reqs = append(reqs, startRequest{Name: u.Role, Method: "icmp", Pin: Pin{Mark: u.Mark, Source4: u.GW4, Source6: u.GW6},
			Targets: netlab.Targets4, Interval: 500 * time.Millisecond, Timeout: time.Second})
	}
	lines, _ := startIn(t, l, netlab.RoleGW, reqs)
	for range 2 {
		nextRound(t, lines, "isp1")
	}
	cut := time.Now()
	if err := l.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	failed, isp2 := 0, 0
	var down time.Time
	for deadline := time.Now().Add(10 * time.Second); down.IsZero() && time.Now().Before(deadline); {
		ln := nextRound(t, lines, "")
		if ln.Uplink == "isp2" {
			isp2++
			for _, r := range ln.Round.Results {
				if !r.OK {
					t.Fatalf("isp2 failed while isp1 was broken: %+v", r)
				}
			}
			continue
		}
		if ln.Round.Start.Before(cut) {
			continue
		}
		ok := 0
		for _, r := range ln.Round.Results {
			if r.OK || r.Alive {
				ok++
			}
		}
		if ok >= 2 {
			failed = 0
			continue
		}
		if failed++; failed == 3 {
			down = ln.At
		}
	}
	if down.IsZero() {
		t.Fatal("isp1 was not judged within 10s of the cut")
	}
	t.Logf("3 failed rounds %s after the cut (interval 500ms)", down.Sub(cut))
	if d := down.Sub(cut); d > 1500*time.Millisecond {
		t.Errorf("judged %s after the cut, want well under 1.5s", d)
	}
}

func TestStartRunsConnectionMethodsThroughTheSameSchedule(t *testing.T) {
	l, _ := probeServersLab(t)
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	up := netlab.Uplinks[1]
	pin := Pin{Mark: up.Mark, Source4: up.GW4, Source6: up.GW6}
	servers := []netip.Addr{netlab.Server4, netlab.Server6}
	lines, _ := startIn(t, l, netlab.RoleGW, []startRequest{
		{Name: "dns", Method: fmt.Sprint("dns:", netlab.DNSPort), Pin: pin, Targets: servers, Interval: 50 * time.Millisecond, Timeout: time.Second},
		{Name: "tcp", Method: "tcp", Pin: pin, Targets: servers, Interval: 50 * time.Millisecond, Timeout: time.Second},
	})
	for _, name := range []string{"dns", "tcp"} {
		for range 5 {
			ln := nextRound(t, lines, name)
			for i, r := range ln.Round.Results {
				if r.Target != servers[i] || !r.OK {
					t.Fatalf("%s result %d: %+v", name, i, r)
				}
			}
		}
	}
}

func TestStartProbesEachTargetByItsOwnMethod(t *testing.T) {
	l, _ := probeServersLab(t)
	if err := l.StartServers(); err != nil {
		t.Fatal(err)
	}
	up := netlab.Uplinks[1]
	pin := Pin{Mark: up.Mark, Source4: up.GW4, Source6: up.GW6}
	// The server answers pings too: a closed TCP port tells a target probed by its own method
	// from one pinged.
	targets := []netip.Addr{netlab.Targets4[0], netlab.Server4, netlab.Server6}
	lines, _ := startIn(t, l, netlab.RoleGW, []startRequest{{
		Name: "mixed", Method: "icmp", Pin: pin, Targets: targets, Interval: 50 * time.Millisecond, Timeout: time.Second,
		TargetMethods: map[netip.Addr]string{netlab.Server4: "tcp:1", netlab.Server6: fmt.Sprint("dns:", netlab.DNSPort)},
	}})
	for range 5 {
		ln := nextRound(t, lines, "mixed")
		res := ln.Round.Results
		if !res[0].OK || res[1].OK || !strings.Contains(res[1].Err, "tcp") || !res[2].OK {
			t.Fatalf("want the ping and the DNS query answered and tcp:1 refused: %+v", res)
		}
	}
}
