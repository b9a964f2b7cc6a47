package ra

import (
	"net/netip"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
)

// fakeAddrs is lan0 with one address in each uplink's prefix.
type fakeAddrs struct{ addrs []routing.AddrPrefix }

func (f *fakeAddrs) Prefixes6(string) ([]routing.AddrPrefix, error) {
	return append([]routing.AddrPrefix(nil), f.addrs...), nil
}

func (f *fakeAddrs) SetPreferred(_ string, addr netip.Addr, preferred time.Duration, forever bool) error {
	for i := range f.addrs {
		if f.addrs[i].Addr == addr {
			f.addrs[i].Preferred, f.addrs[i].PreferredForever = preferred, forever
		}
	}
	return nil
}

func TestLifetimesDeprecateTheDeadUplinksLANAddressAndGiveBackWhatItHad(t *testing.T) {
	a1, a2 := netip.MustParseAddr("2001:db8:a1::1"), netip.MustParseAddr("2001:db8:a2::1")
	f := &fakeAddrs{addrs: []routing.AddrPrefix{
		{Addr: a1, Prefix: p1, Preferred: 20 * time.Minute, Valid: time.Hour},
		{Addr: a2, Prefix: p2, PreferredForever: true, Forever: true},
	}}
	l := NewLifetimes(f, nil)
	driven := func(active1, active2 bool) {
		t.Helper()
		s := state(active1, active2)
		s.IPv6.Advertise = uplink.AdvertiseLifetimes
		if err := l.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	driven(false, true) // isp1 dead
	if got := f.addrs[0]; got.Preferred != 0 || got.PreferredForever {
		t.Errorf("isp1 dead: %+v; want its LAN address deprecated", got)
	}
	if got := f.addrs[1]; !got.PreferredForever {
		t.Errorf("isp1 dead: %+v; want isp2's untouched", got)
	}
	driven(true, false) // back; now isp2 is the backup
	if got := f.addrs[0]; got.Preferred != 20*time.Minute {
		t.Errorf("isp1 back: %+v; want the 20 min it had (below the 45 min cap)", got)
	}
	if got := f.addrs[1]; got.Preferred != 0 || got.PreferredForever {
		t.Errorf("isp2 backup: %+v; want it deprecated", got)
	}
	if err := l.Set(state(true, true)); err != nil { // advertise = "ra" again: give everything back
		t.Fatal(err)
	}
	if got := f.addrs[1]; !got.PreferredForever {
		t.Errorf("driven mode left: %+v; want preferred forever as before", got)
	}
}
