package ra

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

var (
	host    = netip.MustParseAddr("fe80::10")
	self    = netip.MustParseAddr("fe80::1")
	rogue   = netip.MustParseAddr("fe80::bad")
	mac     = []byte{2, 0, 0, 0, 0, 0x10}
	solicit = func(opts ...ndp.Option) []byte {
		b, _ := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: opts})
		return b
	}
)

func TestHear(t *testing.T) {
	lla := &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}
	foreign, _ := ndp.MarshalMessage(Adverts(state(true, false))["lan0"].Message(mac))
	for _, tc := range []struct {
		name string
		b    []byte
		src  netip.Addr
		hops int
		want kind
	}{
		{"a host solicits", solicit(lla), host, 255, solicited},
		{"a host without an address solicits", solicit(), netip.IPv6Unspecified(), 255, solicited},
		{"from :: with a link-layer address (RFC 4861 §6.1.1)", solicit(lla), netip.IPv6Unspecified(), 255, ignored},
		{"routed from elsewhere: hop limit below 255", solicit(lla), host, 64, ignored},
		{"another router", foreign, rogue, 255, foreignRA},
		{"our own RA looped back", foreign, self, 255, ignored},
		{"an RA from a global address", foreign, netip.MustParseAddr("2001:db8::1"), 255, ignored},
		{"garbage", []byte{133, 0, 0}, host, 255, ignored},
		{"an echo request", []byte{128, 0, 0, 0, 0, 1, 0, 1}, host, 255, ignored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hear(tc.b, tc.src, tc.hops, self).kind; got != tc.want {
				t.Errorf("kind %d, want %d", got, tc.want)
			}
		})
	}
}

// FuzzHear: whatever a LAN host sends, classifying it never panics and only a well-formed
// solicitation or advertisement counts.
func FuzzHear(f *testing.F) {
	f.Add(solicit(&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}), true)
	adv, _ := ndp.MarshalMessage(Adverts(state(true, false))["lan0"].Message(mac))
	f.Add(adv, false)
	f.Add([]byte{134, 0, 0, 0, 64, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 64, 0xc0}, false)
	f.Fuzz(func(t *testing.T, b []byte, unspecified bool) {
		src := rogue
		if unspecified {
			src = netip.IPv6Unspecified()
		}
		h := hear(b, src, 255, self)
		if h.kind != ignored && (len(b) < 4 || b[0] != 133 && b[0] != 134) {
			t.Fatalf("%x classified as %d", b, h.kind)
		}
		if len(h.prefixes) > 8 {
			t.Fatalf("%d prefixes kept from one RA", len(h.prefixes))
		}
	})
}
