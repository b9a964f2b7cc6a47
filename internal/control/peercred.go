package control

import (
	"context"
	"net"

	"golang.org/x/sys/unix"
)

// peer is who is on the other end of a control connection, from SO_PEERCRED.
type peer struct {
	known bool // false when the credentials could not be read: treated as unprivileged
	uid   uint32
	gid   uint32
	pid   int32
}

type peerKey struct{}

// withPeer is the http.Server ConnContext hook: it reads the peer's credentials once per
// connection, when it is accepted, and keeps them in the connection's context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*limitedConn); ok { // read at accept already
		return context.WithValue(ctx, peerKey{}, lc.peer)
	}
	return context.WithValue(ctx, peerKey{}, peerCred(c))
}

func peerFrom(ctx context.Context) peer {
	p, _ := ctx.Value(peerKey{}).(peer)
	return p
}

func peerCred(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{}
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil || cred == nil {
		return peer{}
	}
	return peer{known: true, uid: cred.Uid, gid: cred.Gid, pid: cred.Pid}
}
