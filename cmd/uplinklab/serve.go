package main

import (
	"context"
	"fmt"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// cmdServe runs the UDP echo and TCP servers in a running lab's internet namespace until
// interrupted. It does not remove the lab.
func cmdServe(ctx context.Context, args []string) error {
	fs, prefix := newFlags("serve")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := netlab.Attach(*prefix, "")
	if err != nil {
		return err
	}
	if err := l.StartServers(); err != nil {
		return err
	}
	fmt.Printf("serving udp echo on %s and %s port %d, tcp port %d; interrupt to stop\n",
		netlab.Server4, netlab.Server6, netlab.EchoPort, netlab.TCPPort)
	<-ctx.Done()
	return l.Release() // the lab stays up: only `down` removes an attached lab
}
