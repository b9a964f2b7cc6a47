package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// StartServers starts, in the internet namespace, a UDP echo server on Server4/Server6 port
// EchoPort and a TCP server on port TCPPort. Both tell the client the source address they saw,
// which is the uplink (and NAT address) its traffic took. They run in this process until Close.
// Calling it again does nothing.
func (l *Lab) StartServers() error {
	l.mu.Lock()
	started := l.servers
	l.servers = true
	l.mu.Unlock()
	if started {
		return nil
	}
	var udps []*net.UDPConn
	var tcps []*net.TCPListener
	ns := l.NS(RoleInet)
	err := l.InNS(RoleInet, func() error {
		lc := net.ListenConfig{Control: inNSControl(ns)}
		for _, a := range []netip.Addr{Server4, Server6} {
			pc, err := lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(a, EchoPort).String())
			if err != nil {
				return fmt.Errorf("netlab: udp echo server: %w", err)
			}
			udps = append(udps, pc.(*net.UDPConn))
			ln, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(a, TCPPort).String())
			if err != nil {
				return fmt.Errorf("netlab: tcp server: %w", err)
			}
			tcps = append(tcps, ln.(*net.TCPListener))
		}
		return nil
	})
	var wg sync.WaitGroup
	stop := func() {
		for _, c := range udps {
			c.Close()
		}
		for _, ln := range tcps {
			ln.Close()
		}
		wg.Wait()
	}
	if err != nil {
		stop()
		return err
	}
	for _, c := range udps {
		wg.Go(func() { serveEcho(c) })
	}
	for _, ln := range tcps {
		wg.Go(func() { serveTCP(ln) })
	}
	if !l.track(stop) {
		stop()
		return errors.New("netlab: StartServers on a closed lab")
	}
	return nil
}

// serveEcho answers each datagram with itself followed by the source address it came from;
// it ends when c is closed.
func serveEcho(c *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. an ICMP error reported on the socket
		}
		reply := append(buf[:n:n], from.String()...)
		_, _ = c.WriteToUDPAddrPort(reply, from)
	}
}

// serveTCP writes each new connection's source address and a newline, then closes it; it ends
// when ln is closed.
func serveTCP(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(c.RemoteAddr().String() + "\n"))
		c.Close()
	}
}

// CheckTCP opens a new TCP connection from role's namespace to dst (a StartServers server) and
// returns the source address the server saw ("198.51.100.2:40123"): proof that new connections
// work, and of which uplink they took. Without a deadline on ctx it gives up after 3 s.
func (l *Lab) CheckTCP(ctx context.Context, role string, dst netip.AddrPort) (string, error) {
	_, seen, err := l.CheckTCPFrom(ctx, role, netip.Addr{}, dst)
	return seen, err
}

// CheckTCPFrom is CheckTCP from source address src (invalid: the kernel picks one, as for a
// plain connect()); it also returns the connection's own local address, which differs from
// what the server saw when the gateway translated it.
func (l *Lab) CheckTCPFrom(ctx context.Context, role string, src netip.Addr, dst netip.AddrPort) (local netip.AddrPort, seen string, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
	}
	err = l.InNS(role, func() error {
		d := net.Dialer{Control: inNSControl(l.NS(role))}
		if src.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		}
		c, err := d.DialContext(ctx, "tcp", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		local = c.LocalAddr().(*net.TCPAddr).AddrPort()
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		buf := make([]byte, 128)
		n := 0
		for n < len(buf) { // bounded by the buffer and the deadline
			m, err := c.Read(buf[n:])
			n += m
			if err != nil || (n > 0 && buf[n-1] == '\n') {
				break
			}
		}
		if n == 0 || buf[n-1] != '\n' {
			return fmt.Errorf("no greeting from %s", dst)
		}
		seen = string(buf[:n-1])
		return nil
	})
	if err != nil {
		return local, "", fmt.Errorf("netlab: new tcp connection from %s to %s: %w", l.NS(role), dst, err)
	}
	return local, seen, nil
}

// Ping sends one echo request from role's namespace to dst and waits up to a second for the
// reply; extra arguments go to ping(8) (e.g. "-I", "198.51.100.66").
func (l *Lab) Ping(ctx context.Context, role string, dst netip.Addr, extra ...string) error {
	args := append([]string{"ping", "-n", "-q", "-c", "1", "-W", "1"}, extra...)
	_, err := l.Exec(ctx, role, append(args, dst.String())...)
	return err
}
