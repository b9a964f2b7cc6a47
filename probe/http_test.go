package probe

import (
	"encoding/pem"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// probeServersLab is a policy lab with the http, https and dns servers; it returns the PEM of
// the https server's certificate.
func probeServersLab(t *testing.T) (*netlab.Lab, []byte) {
	t.Helper()
	l := policyLab(t, netlab.Options{})
	srv, err := l.StartProbeServers()
	if err != nil {
		t.Fatal(err)
	}
	var pemBytes []byte
	for _, c := range srv.Certs {
		pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return l, pemBytes
}

func TestConnectionProbesLeaveThroughTheUplinkOfTheirMark(t *testing.T) {
	l, roots := probeServersLab(t)
	servers := []netip.Addr{netlab.Server4, netlab.Server6}
	for _, method := range []string{fmt.Sprint("http:", netlab.HTTPPort), fmt.Sprint("https:", netlab.HTTPSPort), fmt.Sprint("dns:", netlab.DNSPort)} {
		for _, u := range netlab.Uplinks {
			t.Run(method+" through "+u.Role, func(t *testing.T) {
				before := counters(t, l)
				res := roundIn(t, l, netlab.RoleGW, helperRequest{Method: method, RootPEM: roots, Pin: Pin{Mark: u.Mark, Source4: u.GW4, Source6: u.GW6}, Targets: servers})
				d := sub(counters(t, l), before)
				for _, r := range res {
					if !r.OK || r.RTT <= 0 {
						t.Errorf("%s probe of %s: OK=%v err=%q", method, r.Target, r.OK, r.Err)
					}
				}
				if mine, other := d[u.N-1], d[2-u.N]; mine.Up == 0 || other.Up != 0 || mine.Spoofed+other.Spoofed != 0 {
					t.Fatalf("packets forwarded: %s %+v, other %+v: want all through %s", u.Role, mine, other, u.Role)
				}
			})
		}
	}
}

func TestConnectionProbesFailForTheRightReason(t *testing.T) {
	l, roots := probeServersLab(t)
	if err := l.Break(2, netlab.SilentFailure); err != nil {
		t.Fatal(err)
	}
	up1, up2 := netlab.Uplinks[0], netlab.Uplinks[1]
	pin1 := Pin{Mark: up1.Mark, Source4: up1.GW4}
	pin2 := Pin{Mark: up2.Mark, Source4: up2.GW4}
	tests := []struct {
		name, method string
		pin          Pin
		roots        []byte
		want         string
	}{
		{"https without trusting the certificate", fmt.Sprint("https:", netlab.HTTPSPort), pin1, nil, "certificate"},
		{"http to a closed port", "http:81", pin1, nil, "connection refused"},
		{"http through a dead uplink", fmt.Sprint("http:", netlab.HTTPPort), pin2, nil, "no reply within 1s"},
		{"dns through a dead uplink", fmt.Sprint("dns:", netlab.DNSPort), pin2, nil, "no reply within 1s"},
		{"https through a dead uplink", fmt.Sprint("https:", netlab.HTTPSPort), pin2, roots, "no reply within 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := roundIn(t, l, netlab.RoleGW, helperRequest{Method: tt.method, RootPEM: tt.roots, Pin: tt.pin, Targets: []netip.Addr{netlab.Server4}})
			if res[0].OK || !strings.Contains(res[0].Err, tt.want) {
				t.Fatalf("OK=%v err=%q, want an error containing %q", res[0].OK, res[0].Err, tt.want)
			}
		})
	}
}
