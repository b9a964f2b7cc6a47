package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	probing "github.com/prometheus-community/pro-bing"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

// The socket-model comparison (run by hand: UPLINKD_SOCKET_MODEL_BENCH=16 go test -run
// SocketModel -v ./probe/, the number being the uplinks): 16 uplinks × 8 targets at 500 ms, (a) probe.Start (one raw socket
// per uplink and family) against (b) a long-running pro-bing Pinger per target (Count -1),
// each in its own helper process in the lab's gateway namespace; the CPU time of the process
// over the window.

const socketModelEnv = "UPLINKD_SOCKET_MODEL_HELPER"

type socketModelResult struct {
	Model   string
	CPU     time.Duration
	Replies int64
	Threads int
}

func runSocketModelHelper(model string) int {
	const window = 20 * time.Second
	uplinks := 16
	fmt.Sscan(os.Getenv("UPLINKD_SOCKET_MODEL_BENCH"), &uplinks)
	targets := append(append([]netip.Addr{}, netlab.Targets4...), netlab.Targets6...)
	targets = append(targets, netlab.Server4, netlab.Server6)
	up := netlab.Uplinks[0]
	pin := Pin{Mark: up.Mark, Source4: up.GW4, Source6: up.GW6}
	ctx, cancel := context.WithTimeout(context.Background(), window+2*time.Second)
	defer cancel()
	var replies atomic.Int64
	var stop []func()
	switch model {
	case "start":
		p := uplink.Probe{Targets: targets, Method: uplink.Method{Name: uplink.MethodICMP}, Interval: 500 * time.Millisecond, Timeout: time.Second, DownAfter: 3}
		for i := range uplinks {
			u, err := Start(ctx, fmt.Sprint("u", i), p, pin, func(r uplink.Round) {
				for _, x := range r.Results {
					if x.OK {
						replies.Add(1)
					}
				}
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			stop = append(stop, u.Stop)
		}
	case "pinger":
		var wg sync.WaitGroup
		for range uplinks {
			for _, t := range targets {
				id, err := ids.acquire()
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 2
				}
				p := probing.New(t.String())
				p.SetIPAddr(&net.IPAddr{IP: t.AsSlice()})
				p.SetPrivileged(true)
				p.SetLogger(probing.NoopLogger{})
				p.SetID(id)
				p.SetMark(uint(pin.Mark))
				p.Source = pin.source(t).String()
				p.Count = -1
				p.Interval = 500 * time.Millisecond
				p.RecordRtts = false
				p.RecordTTLs = false
				p.OnRecv = func(*probing.Packet) { replies.Add(1) }
				wg.Go(func() { _ = p.RunWithContext(ctx) })
			}
		}
		stop = append(stop, func() { cancel(); wg.Wait() })
	}
	time.Sleep(2 * time.Second) // settle (a measurement, not an assertion)
	before := cpuTime()
	n0 := replies.Load()
	time.Sleep(window - 2*time.Second)
	res := socketModelResult{Model: model, CPU: cpuTime() - before, Replies: replies.Load() - n0}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				fmt.Sscan(v, &res.Threads)
			}
		}
	}
	for _, s := range stop {
		s()
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestSocketModelCost(t *testing.T) {
	if os.Getenv("UPLINKD_SOCKET_MODEL_BENCH") == "" {
		t.Skip("a measurement, run by hand: UPLINKD_SOCKET_MODEL_BENCH=1")
	}
	l := policyLab(t, netlab.Options{})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"start", "pinger"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd, err := l.Command(ctx, netlab.RoleGW, exe)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		cmd.Env = append(os.Environ(), socketModelEnv+"="+model)
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		var r socketModelResult
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s: %q: %v", model, out, err)
		}
		t.Logf("%-6s %s×8 at 500ms: %.2f %% of a core over 18 s, %d replies, %d threads", model, os.Getenv("UPLINKD_SOCKET_MODEL_BENCH"), 100*r.CPU.Seconds()/18, r.Replies, r.Threads)
	}
}
