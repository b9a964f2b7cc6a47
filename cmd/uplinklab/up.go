package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// cmdUp builds the lab and leaves it up (for `down` to remove), or with -hold keeps it, with
// the traffic servers, until interrupted and then removes it.
func cmdUp(ctx context.Context, args []string) error {
	fs, prefix := newFlags("up")
	nat := fs.String("nat", netlab.NATMasquerade, "gateway NAT mode: masquerade or snat")
	hold := fs.Bool("hold", false, "run the traffic servers and remove the lab on interrupt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needRoot(); err != nil {
		return err
	}
	l, err := netlab.New(netlab.Options{Prefix: *prefix, NAT: *nat, Servers: *hold})
	if err != nil {
		return err
	}
	if ctx.Err() != nil { // interrupted while building
		return errors.Join(ctx.Err(), l.Close())
	}
	fmt.Printf("lab %q up (NAT %s): namespaces", l.Prefix(), l.NAT())
	for _, r := range []string{netlab.RoleLAN, netlab.RoleGW, netlab.RoleISP1, netlab.RoleISP2, netlab.RoleInet} {
		fmt.Printf(" %s", l.NS(r))
	}
	fmt.Println()
	fmt.Printf("run uplinkd with: ip netns exec %s uplinkd -config ...\n", l.NS(netlab.RoleGW))
	if !*hold {
		fmt.Printf("remove with: uplinklab down -prefix %s\n", l.Prefix())
		return nil
	}
	fmt.Printf("servers: udp echo %s:%d, tcp %s:%d (and IPv6 %s); interrupt to remove the lab\n",
		netlab.Server4, netlab.EchoPort, netlab.Server4, netlab.TCPPort, netlab.Server6)
	<-ctx.Done()
	return l.Close()
}
