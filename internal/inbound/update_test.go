package inbound

import (
	"net/netip"
	"testing"

	"github.com/uplinkd/uplinkd/internal/dataplane"
)

func TestUpdatesLeaveByALiveUplinkWithItsOwnAddress(t *testing.T) {
	st := dataplane.State{Uplinks: []dataplane.Uplink{
		{Name: "isp1", Mark: 0x100, Addrs: []netip.Addr{isp1v4, isp1v6}},
		{Name: "isp2", Mark: 0x200, Addrs: []netip.Addr{isp2v4, isp2v6}, Usable: true, Usable6: true, Active: true, Active6: true},
		{Name: "isp3", Mark: 0x300, Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.9")}, Usable: true},
	}}
	got := paths(st, netip.MustParseAddr("192.0.2.53"))
	if len(got) != 2 || got[0].uplink != "isp2" || got[0].src != isp2v4 || got[0].mark != 0x200 || got[1].uplink != "isp3" {
		t.Errorf("IPv4 server: %+v, want isp2 (active) then isp3, never the dead isp1", got)
	}
	if got := paths(st, netip.MustParseAddr("2001:db8::53")); len(got) != 1 || got[0].src != isp2v6 {
		t.Errorf("IPv6 server: %+v, want isp2's IPv6 address", got)
	}
	for i := range st.Uplinks {
		st.Uplinks[i].Usable, st.Uplinks[i].Active = false, false
	}
	if got := paths(st, netip.MustParseAddr("192.0.2.53")); len(got) != 3 {
		t.Errorf("nothing usable: %+v, want every uplink tried", got)
	}
}
