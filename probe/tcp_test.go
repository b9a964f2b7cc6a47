package probe

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

func TestTCPProbesLeaveThroughTheUplinkOfTheirMark(t *testing.T) {
	l := policyLab(t, netlab.Options{Servers: true})
	servers := []netip.Addr{netlab.Server4, netlab.Server6}
	for _, u := range netlab.Uplinks {
		t.Run(u.Role, func(t *testing.T) {
			before := counters(t, l)
			res := roundIn(t, l, netlab.RoleGW, helperRequest{Method: "tcp:80", Pin: Pin{Mark: u.Mark, Source4: u.GW4, Source6: u.GW6}, Targets: servers})
			d := sub(counters(t, l), before)
			for _, r := range res {
				if !r.OK {
					t.Errorf("tcp probe of %s failed: %s", r.Target, r.Err)
				}
			}
			if mine, other := d[u.N-1], d[2-u.N]; mine.Up == 0 || other.Up != 0 || mine.Spoofed+other.Spoofed != 0 {
				t.Fatalf("packets forwarded: %s %+v, other %+v: want all through %s", u.Role, mine, other, u.Role)
			}
		})
	}
}

func TestTCPProbeOfAClosedPortFails(t *testing.T) {
	l := policyLab(t, netlab.Options{Servers: true})
	u := netlab.Uplinks[0]
	res := roundIn(t, l, netlab.RoleGW, helperRequest{Method: "tcp:81", Pin: Pin{Mark: u.Mark, Source4: u.GW4}, Targets: []netip.Addr{netlab.Server4}})
	if res[0].OK || !strings.Contains(res[0].Err, "connection refused") {
		t.Fatalf("got OK=%v err=%q, want connection refused", res[0].OK, res[0].Err)
	}
}

func TestTCPProbeThroughADeadUplinkTimesOut(t *testing.T) {
	l := policyLab(t, netlab.Options{Servers: true})
	if err := l.Break(2, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	u := netlab.Uplinks[1]
	res := roundIn(t, l, netlab.RoleGW, helperRequest{Method: "tcp", Pin: Pin{Mark: u.Mark, Source4: u.GW4}, Targets: []netip.Addr{netlab.Server4}})
	if res[0].OK || !strings.Contains(res[0].Err, "no reply within 1s") {
		t.Fatalf("got OK=%v err=%q, want no reply within 1s", res[0].OK, res[0].Err)
	}
}
