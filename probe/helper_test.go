package probe

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink"
)

// The namespace tests run the probes in a helper process: this test binary re-executed under
// `ip netns exec <gateway>`. Raw sockets are created in the namespace of the thread that creates
// them, and Round and pro-bing start goroutines on threads of their own: switching one locked
// thread with netns.Set would leave those in the root namespace. A whole process in the
// namespace cannot send from anywhere else.

const helperEnv = "UPLINKD_PROBE_HELPER" // set to the JSON of a []helperRequest

type helperRequest struct {
	Method  string
	Pin     Pin
	RootPEM []byte // trusted for https (the lab's certificate)
	Targets []netip.Addr
	Timeout time.Duration
}

type helperResult struct {
	Target netip.Addr
	OK     bool
	RTT    time.Duration
	Err    string
}

func TestMain(m *testing.M) {
	if req := os.Getenv(helperEnv); req != "" {
		os.Exit(runHelper(req))
	}
	if model := os.Getenv(socketModelEnv); model != "" {
		os.Exit(runSocketModelHelper(model))
	}
	if req := os.Getenv(startHelperEnv); req != "" {
		os.Exit(runStartHelper(req))
	}
	os.Exit(m.Run())
}

// runHelper runs one round per request, all at once, and prints their results as JSON.
func runHelper(reqJSON string) int {
	var reqs []helperRequest
	if err := json.Unmarshal([]byte(reqJSON), &reqs); err != nil {
		fmt.Fprintln(os.Stderr, "helper: bad request:", err)
		return 2
	}
	out := make([][]helperResult, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		if len(req.RootPEM) > 0 {
			tlsRoots = x509.NewCertPool()
			tlsRoots.AppendCertsFromPEM(req.RootPEM)
		}
		m, err := uplink.ParseMethod(req.Method)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 2
		}
		p, err := New(m)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 2
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), req.Timeout+10*time.Second)
			defer cancel()
			for _, r := range round(ctx, func(netip.Addr) Prober { return p }, req.Pin, req.Targets, req.Timeout) {
				hr := helperResult{Target: r.Target, OK: r.OK, RTT: r.RTT}
				if r.Err != nil {
					hr.Err = r.Err.Error()
				}
				out[i] = append(out[i], hr)
			}
		})
	}
	wg.Wait()
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return 2
	}
	return 0
}

// roundIn runs one Round in role's namespace of the lab and returns its results.
func roundIn(t *testing.T, l *netlab.Lab, role string, req helperRequest) []helperResult {
	t.Helper()
	return roundsIn(t, l, role, []helperRequest{req})[0]
}

// roundsIn runs several Rounds at once in one process in role's namespace.
func roundsIn(t *testing.T, l *netlab.Lab, role string, reqs []helperRequest) [][]helperResult {
	t.Helper()
	var longest time.Duration
	for i := range reqs {
		if reqs[i].Timeout == 0 {
			reqs[i].Timeout = time.Second
		}
		longest = max(longest, reqs[i].Timeout)
	}
	js, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), longest+30*time.Second)
	defer cancel()
	cmd, err := l.Command(ctx, role, exe)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe helper in %s: %v: %s", l.NS(role), err, stderr.String())
	}
	var res [][]helperResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(reqs) {
		t.Fatalf("probe helper output %q: %v", out, err)
	}
	return res
}

// policyLab is a lab whose gateway routes the uplink marks as the daemon would:
// `fwmark 0x100/0xff00 lookup 1001` with 1001's default via isp1, 0x200 → 1002 → isp2 (both
// families), then `from <its address> lookup` its table; a third mark 0x300 → table 203 holds
// only an unreachable default.
func policyLab(t *testing.T, opts netlab.Options) *netlab.Lab {
	t.Helper()
	l := testkit.Lab(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cmds [][]string
	for _, u := range netlab.Uplinks {
		for _, fam := range []string{"-4", "-6"} {
			via := u.ISP4.String()
			if fam == "-6" {
				via = u.ISP6.String()
			}
			cmds = append(cmds,
				[]string{"ip", fam, "rule", "add", "pref", fmt.Sprint(1000 + u.N), "fwmark", fmt.Sprintf("%#x/0xff00", u.Mark), "lookup", fmt.Sprint(u.Table)},
				[]string{"ip", fam, "route", "add", "default", "via", via, "dev", u.GWIf, "table", fmt.Sprint(u.Table)})
		}
	}
	// After the marks, as the daemon does: the gateway's own packets that carry no mark leave
	// by their source. The kernel sends some without a socket, and so without its mark: the
	// reset answering a target's banner or FIN that arrives after the probe closed.
	for _, u := range netlab.Uplinks {
		cmds = append(cmds,
			[]string{"ip", "-4", "rule", "add", "pref", fmt.Sprint(1010 + u.N), "from", u.GW4.String(), "lookup", fmt.Sprint(u.Table)},
			[]string{"ip", "-6", "rule", "add", "pref", fmt.Sprint(1010 + u.N), "from", u.GW6.String(), "lookup", fmt.Sprint(u.Table)})
	}
	for _, fam := range []string{"-4", "-6"} {
		cmds = append(cmds,
			[]string{"ip", fam, "rule", "add", "pref", "1003", "fwmark", "0x300/0xff00", "lookup", "203"},
			[]string{"ip", fam, "route", "add", "unreachable", "default", "table", "203"})
	}
	for _, c := range cmds {
		if _, err := l.Exec(ctx, netlab.RoleGW, c...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func counters(t *testing.T, l *netlab.Lab) [2]netlab.Counters {
	t.Helper()
	var c [2]netlab.Counters
	for i := range c {
		var err error
		if c[i], err = l.Counters(i + 1); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func sub(a, b [2]netlab.Counters) [2]netlab.Counters {
	return [2]netlab.Counters{a[0].Sub(b[0]), a[1].Sub(b[1])}
}
