package main

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

// The gateway does not NAT its own traffic (the lab's, like many real ones): a local connection
// must leave through the uplink whose address is its source, whatever the balance says, or the
// other ISP drops it (the lab's ISPs filter foreign sources, BCP 38). So every connection from
// either address must work, and the server must see that very address.
func TestTheGatewaysOwnConnectionsLeaveThroughTheirSourceAddresssUplink(t *testing.T) {
	lab := testkit.Lab(t, netlab.Options{Servers: true})
	cfg := fastConfig()
	cfg.SameTier = true // two active uplinks: new connections are balanced 1:1
	d := startDaemon(t, lab, cfg)
	d.waitActive(5*time.Second, "isp1", "isp2")
	dst := netip.AddrPortFrom(netlab.Server4, netlab.TCPPort)
	for _, src := range []netip.Addr{netlab.GWWAN1Addr4, netlab.GWWAN2Addr4} {
		for i := range 10 { // balanced at random: 10 tries each make a wrong pick near certain to show
			seen, err := dialFrom(lab, src, dst)
			if err != nil {
				t.Fatalf("connection %d from %s failed (did it leave through the other ISP?): %v", i, src, err)
			}
			if seen != src.String() {
				t.Fatalf("connection %d from %s arrived from %s", i, src, seen)
			}
		}
	}
	// And without a chosen source the kernel's choice is followed the same way.
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		src, err := lab.CheckTCP(ctx, netlab.RoleGW, dst)
		cancel()
		if err != nil {
			t.Fatalf("the gateway's own connection %d failed: %v", i, err)
		}
		if host, _, _ := strings.Cut(src, ":"); host != netlab.GWWAN1Addr4.String() && host != netlab.GWWAN2Addr4.String() {
			t.Fatalf("connection %d arrived from %s, not from an uplink address", i, host)
		}
	}
}

// dialFrom opens a TCP connection from the gateway bound to src and returns the address the
// server saw.
func dialFrom(lab *netlab.Lab, src netip.Addr, dst netip.AddrPort) (string, error) {
	var seen string
	err := lab.InNS(netlab.RoleGW, func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		seen, _, _ = strings.Cut(strings.TrimSpace(line), ":")
		return nil
	})
	return seen, err
}
