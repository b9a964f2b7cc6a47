package ra

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/uplink"
)

var (
	p1 = netip.MustParsePrefix("2001:db8:a1::/64")
	p2 = netip.MustParsePrefix("2001:db8:a2::/64")
)

func state(active1, active2 bool) dataplane.State {
	v := uplink.IPv6{Interfaces: []string{"lan0"}, Advertise: uplink.AdvertiseRA, NPTv6: true,
		PreferredLifetime: 45 * time.Minute, ValidLifetime: 2 * time.Hour, RouterLifetime: 30 * time.Minute,
		RDNSS: []netip.Addr{netip.MustParseAddr("2001:db8:a1::53")}}
	pfx := func(p netip.Prefix) []dataplane.Prefix {
		return []dataplane.Prefix{{Prefix: p, Interfaces: []string{"lan0"}, Preferred: 45 * time.Minute, Valid: 2 * time.Hour}}
	}
	gw := netip.MustParseAddr("fe80::1")
	return dataplane.State{IPv6: v, Uplinks: []dataplane.Uplink{
		{Name: "isp1", Active6: active1, Usable6: active1, Gateway6: gw, Prefixes: pfx(p1)},
		{Name: "isp2", Active6: active2, Usable6: true, Gateway6: gw, Prefixes: pfx(p2)},
	}}
}

func TestAdvertsDeprecateThePrefixesOfUplinksThatCarryNoNewConnections(t *testing.T) {
	for _, tc := range []struct {
		name           string
		active1, activ bool
		pref1, pref2   time.Duration
	}{
		{"primary alive: the backup's prefix is deprecated before it is needed", true, false, 45 * time.Minute, 0},
		{"primary dead: its prefix is deprecated", false, true, 0, 45 * time.Minute},
		{"both carry (load sharing): both preferred", true, true, 45 * time.Minute, 45 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := Adverts(state(tc.active1, tc.activ))["lan0"]
			if !ok || len(a.Prefixes) != 2 {
				t.Fatalf("adverts: %+v", a)
			}
			if a.Prefixes[0].Preferred != tc.pref1 || a.Prefixes[1].Preferred != tc.pref2 {
				t.Errorf("preferred %s, %s; want %s, %s", a.Prefixes[0].Preferred, a.Prefixes[1].Preferred, tc.pref1, tc.pref2)
			}
			for _, p := range a.Prefixes {
				if p.Valid != 2*time.Hour { // RFC 4862 §5.5.3e: a deprecation never cuts it
					t.Errorf("%s valid %s; want 2h whatever its state", p.Prefix, p.Valid)
				}
			}
			if a.RouterLifetime != 30*time.Minute {
				t.Errorf("router lifetime %s", a.RouterLifetime)
			}
		})
	}
}

func TestNoAdvertsWhenNotOurs(t *testing.T) {
	s := state(true, false)
	s.Provisional = true
	if a := Adverts(s); a != nil {
		t.Errorf("provisional: %v; want nothing until a verdict", a)
	}
	s = state(true, false)
	s.IPv6.Advertise = uplink.AdvertiseLifetimes
	if a := Adverts(s); a != nil {
		t.Errorf("driven mode: %v; want nothing (another program advertises)", a)
	}
	s = state(true, false)
	s.Uplinks[0].Gateway6, s.Uplinks[1].Gateway6 = netip.Addr{}, netip.Addr{}
	if a := Adverts(s)["lan0"]; a.RouterLifetime != 0 || len(a.Prefixes) != 2 {
		t.Errorf("no IPv6 gateway at all: %+v; want router lifetime 0 and the prefixes still on link", a)
	}
}

func TestMessageCarriesEveryOption(t *testing.T) {
	a := Adverts(state(true, false))["lan0"]
	b, err := ndp.MarshalMessage(a.Message([]byte{2, 0, 0, 0, 0, 1}))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	ra := m.(*ndp.RouterAdvertisement)
	var pios, rdnss, lla int
	for _, o := range ra.Options {
		switch o := o.(type) {
		case *ndp.PrefixInformation:
			pios++
			if !o.OnLink || !o.AutonomousAddressConfiguration || o.PrefixLength != 64 {
				t.Errorf("PIO %+v: want on-link, autonomous, /64", o)
			}
		case *ndp.RecursiveDNSServer:
			rdnss++
		case *ndp.LinkLayerAddress:
			lla++
		}
	}
	if pios != 2 || rdnss != 1 || lla != 1 || ra.RouterLifetime != 30*time.Minute || ra.CurrentHopLimit != 64 {
		t.Errorf("RA %+v: want 2 PIOs, an RDNSS, the source link-layer address", ra)
	}
}

// A prefix that leaves the LAN (a renumbered delegation) is advertised with lifetimes 0 for two
// hours, so hosts stop using it at once instead of when its preferred lifetime runs out.
func TestAPrefixThatLeftIsAdvertisedDeadForTwoHours(t *testing.T) {
	now := time.Now()
	p3 := netip.MustParsePrefix("2001:db8:a1:7::/64")
	f := &iface{gone: map[netip.Prefix]time.Time{}}
	f.set(f.withGone(Advert{Prefixes: []PIO{{Prefix: p1, Uplink: "isp1", Preferred: time.Hour, Valid: 2 * time.Hour}}}, now))
	a := f.withGone(Advert{Prefixes: []PIO{{Prefix: p3, Uplink: "isp1", Preferred: time.Hour, Valid: 2 * time.Hour}}}, now)
	f.set(a)
	if len(a.Prefixes) != 2 || a.Prefixes[1] != (PIO{Prefix: p1}) {
		t.Fatalf("after the renumbering: %+v; want the new prefix and the old one with lifetimes 0", a.Prefixes)
	}
	a = f.withGone(Advert{Prefixes: []PIO{{Prefix: p3, Uplink: "isp1", Preferred: time.Hour, Valid: 2 * time.Hour}}}, now.Add(time.Hour))
	if len(a.Prefixes) != 2 {
		t.Errorf("an hour later: %+v; the old prefix is still advertised dead", a.Prefixes)
	}
	a = f.withGone(Advert{Prefixes: []PIO{{Prefix: p3, Uplink: "isp1", Preferred: time.Hour, Valid: 2 * time.Hour}}}, now.Add(2*time.Hour))
	if len(a.Prefixes) != 1 {
		t.Errorf("two hours later: %+v; want the old prefix gone", a.Prefixes)
	}
}

// A followed delegation's lifetimes count down: each RA carries what the lease has left when
// it is sent, never more, and the [ipv6] caps still apply (RFC 9096).
func TestAFollowedDelegationsLifetimesCountDownAtEachSend(t *testing.T) {
	read := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	st := state(true, false)
	st.Uplinks[0].Prefixes[0].PreferredUntil = read.Add(1792 * time.Second)
	st.Uplinks[0].Prefixes[0].ValidUntil = read.Add(3592 * time.Second)
	st.Uplinks[0].Prefixes[0].Preferred, st.Uplinks[0].Prefixes[0].Valid = 45*time.Minute, 2*time.Hour // the caps
	a := Adverts(st)["lan0"]
	for _, tc := range []struct {
		after       time.Duration
		pref, valid time.Duration
	}{
		{0, 1792 * time.Second, 3592 * time.Second},
		{20*time.Second + 300*time.Millisecond, 1771 * time.Second, 3571 * time.Second}, // rounded down
		{120 * time.Second, 1672 * time.Second, 3472 * time.Second},
		{1800 * time.Second, 0, 1792 * time.Second}, // deprecated by the lease itself
		{4000 * time.Second, 0, 0},
	} {
		got := a.At(read.Add(tc.after))
		p := got.Prefixes[0]
		if p.Preferred != tc.pref || p.Valid != tc.valid {
			t.Errorf("%s after the read: %s / %s, want %s / %s", tc.after, p.Preferred, p.Valid, tc.pref, tc.valid)
		}
		if q := got.Prefixes[1]; q.Preferred != 0 || q.Valid != 2*time.Hour {
			t.Errorf("%s after the read: the static prefix %s / %s, want 0 / 2h (it does not count down)", tc.after, q.Preferred, q.Valid)
		}
	}
	renewed := Adverts(st)["lan0"]
	renewed.Prefixes[0].ValidUntil = read.Add(time.Hour) // a renewal: no burst, the next RA carries it
	if !a.Equal(renewed) {
		t.Errorf("a renewed lease makes a change: %+v", renewed)
	}
}
