package engine

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/uplinkd/uplinkd/uplink"
)

// Both families probed: IPv6 is judged apart.
var dualStack = strings.Replace(twoISPs, `targets = ["192.0.2.53", "198.51.100.53", "203.0.113.53"]`,
	`targets = ["192.0.2.53", "198.51.100.53", "2001:db8::53", "2001:db8:1::53"]`, 1)

func TestDeadIPv6AtAnISPMovesOnlyIPv6Traffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := startRig(t, dualStack)
		r.familyRounds("isp1", true, false, 3)
		st := r.e.Status()
		if st.Uplinks[0].State != uplink.Up || st.Uplinks[0].State6 == nil || *st.Uplinks[0].State6 != uplink.Down {
			t.Fatalf("isp1: %s, IPv6 %v; want IPv4 up and IPv6 down", st.Uplinks[0].State, st.Uplinks[0].State6)
		}
		if !slices.Equal(st.Active, []string{"isp1"}) || !slices.Equal(st.Active6, []string{"isp2"}) {
			t.Errorf("active %v, active6 %v; want IPv4 on isp1, IPv6 on isp2", st.Active, st.Active6)
		}
		if v4, v6 := r.dp.ActiveInterfaces(4), r.dp.ActiveInterfaces(6); !slices.Equal(v4, []string{"wan1"}) || !slices.Equal(v6, []string{"wan2"}) {
			t.Errorf("the kernel's active routes go via %v (IPv4) and %v (IPv6), want wan1 and wan2", v4, v6)
		}
		// The status shows the routes the kernel got, each family its own.
		if st.Route4 != "default via 198.51.100.101 dev wan1" || st.Route6 != "default via 2001:db8:2::1 dev wan2" {
			t.Errorf("status routes %q and %q, want IPv4 via wan1 and IPv6 via wan2", st.Route4, st.Route6)
		}
		pins, _ := r.dp.Pins()
		if !pins.PerFamily || pins.Uplinks[0].Eligible6 || !pins.Uplinks[1].Eligible6 || !pins.Uplinks[0].Eligible {
			t.Errorf("new IPv6 connections must go to isp2 only, IPv4 ones to isp1: %+v", pins)
		}
		if !slices.Contains(r.kinds(), "state isp1 → down") {
			t.Errorf("no event for isp1's IPv6: %v", r.kinds())
		}
		r.close()
	})
}
