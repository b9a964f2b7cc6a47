package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// The gateway does not NAT its own traffic (the lab's, like many real ones): a local connection
// must leave through the uplink whose address the kernel chose as its source, whatever the
// balance says, or the other ISP drops it (BCP 38).
func TestTheGatewaysOwnConnectionsLeaveThroughTheirSourceAddresssUplink(t *testing.T) {
	lab := netlab.ForTest(t, netlab.Options{Servers: true})
	cfg := fastConfig()
	cfg.SameTier = true // two active uplinks: new connections are balanced 1:1
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1", "isp2")
	seen := map[string]int{}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		src, err := lab.CheckTCP(ctx, netlab.RoleGW, netip.AddrPortFrom(netlab.Server4, netlab.TCPPort))
		cancel()
		if err != nil {
			t.Fatalf("the gateway's own connection %d failed: %v", i, err)
		}
		host, _, _ := strings.Cut(src, ":")
		seen[host]++
	}
	t.Logf("the gateway's own connections came from %v", seen)
}
