package netlab

import (
	"net/netip"
	"testing"
)

func TestScaleLabAddressesStayInDocumentationRangesAndNeverRepeat(t *testing.T) {
	docs := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}
	for _, n := range []int{1, 64, 65, 128, 129, MaxScaleUplinks} {
		s := &ScaleLab{N: n}
		seen := map[netip.Addr]int{}
		for k := range n {
			gw, addr := s.Gateway(k), s.Address(k)
			link := netip.PrefixFrom(addr, s.bits()).Masked()
			if !link.Contains(gw) {
				t.Fatalf("%d uplinks: uplink %d's gateway %s is not on its link %s", n, k, gw, link)
			}
			for _, a := range []netip.Addr{gw, addr} {
				inDocs := false
				for _, p := range docs {
					inDocs = inDocs || p.Contains(a)
				}
				if !inDocs {
					t.Fatalf("%d uplinks: uplink %d uses %s, outside the documentation ranges", n, k, a)
				}
				if prev, dup := seen[a]; dup {
					t.Fatalf("%d uplinks: %s is used by uplinks %d and %d", n, a, prev, k)
				}
				seen[a] = k
			}
		}
	}
}
