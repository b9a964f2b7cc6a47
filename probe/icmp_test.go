package probe

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

func TestICMPProbesLeaveThroughTheUplinkOfTheirMark(t *testing.T) {
	l := policyLab(t, netlab.Options{})
	up1, up2 := netlab.Uplinks[0], netlab.Uplinks[1]
	both := []netip.Addr{netlab.Targets4[0], netlab.Targets6[0]}
	tests := []struct {
		name    string
		pin     Pin
		wantISP int
	}{
		{"mark 0x100 with isp1's sources leaves through isp1", Pin{Mark: up1.Mark, Source4: up1.GW4, Source6: up1.GW6}, 1},
		// isp2 is not the main table's default: only the mark can send these through it (and
		// isp1 would drop them for their source if the mark were lost).
		{"mark 0x200 with isp2's sources leaves through isp2", Pin{Mark: up2.Mark, Source4: up2.GW4, Source6: up2.GW6}, 2},
		{"mark 0x200 alone leaves through isp2 from isp2's addresses", Pin{Mark: up2.Mark}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counters(t, l)
			res := roundIn(t, l, netlab.RoleGW, helperRequest{Method: "icmp", Pin: tt.pin, Targets: both})
			d := sub(counters(t, l), before)
			for _, r := range res {
				if !r.OK {
					t.Errorf("probe of %s failed: %s", r.Target, r.Err)
				}
			}
			want, other := d[tt.wantISP-1], d[2-tt.wantISP]
			if want.UpICMP != 2 || other.UpICMP != 0 {
				t.Fatalf("echo requests forwarded: isp%d %d (want 2), other isp %d (want 0)", tt.wantISP, want.UpICMP, other.UpICMP)
			}
			if want.Spoofed != 0 || other.Spoofed != 0 {
				t.Fatalf("BCP 38 dropped probes: %+v", d)
			}
		})
	}
}

func TestICMPRoundWithATargetThatDropsPingsFailsOnlyThatTarget(t *testing.T) {
	l := policyLab(t, netlab.Options{})
	if err := l.DropICMP(netlab.Targets4[1]); err != nil {
		t.Fatal(err)
	}
	up := netlab.Uplinks[0]
	res := roundIn(t, l, netlab.RoleGW, helperRequest{Method: "icmp", Pin: Pin{Mark: up.Mark, Source4: up.GW4}, Targets: netlab.Targets4})
	if len(res) != 3 {
		t.Fatalf("got %d results, want 3", len(res))
	}
	for i, r := range res {
		if r.Target != netlab.Targets4[i] {
			t.Errorf("result %d is for %s, want %s", i, r.Target, netlab.Targets4[i])
		}
		if drops := i == 1; r.OK == drops {
			t.Errorf("%s: OK=%v err=%q (it drops pings: %v)", r.Target, r.OK, r.Err, drops)
		}
	}
	if !strings.Contains(res[1].Err, "no reply within 1s") {
		t.Errorf("the dropped probe should say why: %q", res[1].Err)
	}
	t.Logf("rtts: %v %v", res[0].RTT, res[2].RTT)
}

func TestICMPProbeWithoutARouteSaysSo(t *testing.T) {
	l := policyLab(t, netlab.Options{})
	res := roundIn(t, l, netlab.RoleGW, helperRequest{Method: "icmp", Pin: Pin{Mark: 0x300}, Targets: []netip.Addr{netlab.Targets4[0], netlab.Targets6[0]}})
	for _, r := range res {
		if r.OK || !strings.Contains(r.Err, "unreachable") && !strings.Contains(r.Err, "no route") {
			t.Errorf("%s: OK=%v err=%q, want an unreachable error", r.Target, r.OK, r.Err)
		}
		t.Logf("%s: %s", r.Target, r.Err)
	}
}

func TestICMPProbesOfBothUplinksAtOnceDoNotCross(t *testing.T) {
	l := policyLab(t, netlab.Options{})
	// isp1 is dead: only its probes may fail, although isp2's run at the same time to the same
	// targets from the same process.
	if err := l.Break(1, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	targets := append(append([]netip.Addr{}, netlab.Targets4...), netlab.Targets6...)
	res := roundsIn(t, l, netlab.RoleGW, []helperRequest{
		{Method: "icmp", Pin: Pin{Mark: 0x100, Source4: netlab.GWWAN1Addr4, Source6: netlab.GWWAN1Addr6}, Targets: targets},
		{Method: "icmp", Pin: Pin{Mark: 0x200, Source4: netlab.GWWAN2Addr4, Source6: netlab.GWWAN2Addr6}, Targets: targets},
	})
	for i, want := range []bool{false, true} {
		for _, r := range res[i] {
			if r.OK != want {
				t.Errorf("uplink %d, %s: OK=%v err=%q, want OK=%v", i+1, r.Target, r.OK, r.Err, want)
			}
		}
	}
}
