package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ChatPort is the port of the chat server: a long-lived TCP connection on which every line
// sent is answered with the source address the server sees, so a test can tell whether the
// connection still works and whether it kept its uplink.
const ChatPort = 9

// StartChat starts the chat server on Server4 and Server6 in the internet namespace. It runs
// until Close.
func (l *Lab) StartChat() error { return l.startTCPServer("chat", ChatPort, serveChat) }

// dialServer opens a TCP connection from role's namespace to Server4:port.
func (l *Lab) dialServer(ctx context.Context, role, what string, port uint16) (net.Conn, error) {
	return l.dialServerAt(ctx, role, what, netip.AddrPortFrom(Server4, port))
}

func (l *Lab) dialServerAt(ctx context.Context, role, what string, dst netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := l.InNS(role, func() error {
		d := net.Dialer{Control: inNSControl(l.NS(role)), Timeout: 3 * time.Second}
		var err error
		c, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: dial %s from %s: %w", what, l.NS(role), err)
	}
	return c, nil
}

// startTCPServer listens on Server4:port in the internet namespace and runs serve for every
// connection, until the lab closes (which closes the listener and every connection).
func (l *Lab) startTCPServer(what string, port uint16, serve func(net.Conn)) error {
	var lns []net.Listener
	err := l.InNS(RoleInet, func() error {
		lc := net.ListenConfig{Control: inNSControl(l.NS(RoleInet))}
		for _, a := range []netip.Addr{Server4, Server6} {
			ln, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(a, port).String())
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return fmt.Errorf("netlab: %s server: %w", what, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	for _, ln := range lns {
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Go(func() { serve(c) })
			}
		})
	}
	stop := func() {
		for _, ln := range lns {
			ln.Close()
		}
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	if !l.track(stop) {
		stop()
		return fmt.Errorf("netlab: %s server on a closed lab", what)
	}
	return nil
}

func serveChat(c net.Conn) {
	defer c.Close()
	r := bufio.NewScanner(c)
	for r.Scan() {
		if _, err := c.Write([]byte(c.RemoteAddr().String() + "\n")); err != nil {
			return
		}
	}
}

// Chat is a long-lived TCP connection from a lab namespace to the chat server.
type Chat struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialChat opens a chat connection from role's namespace to Server4.
func (l *Lab) DialChat(ctx context.Context, role string) (*Chat, error) {
	return l.DialChatTo(ctx, role, Server4)
}

// DialChatTo opens a chat connection from role's namespace to server (Server4 or Server6).
func (l *Lab) DialChatTo(ctx context.Context, role string, server netip.Addr) (*Chat, error) {
	c, err := l.dialServerAt(ctx, role, "chat", netip.AddrPortFrom(server, ChatPort))
	if err != nil {
		return nil, err
	}
	ch := &Chat{conn: c, r: bufio.NewReader(c)}
	if !l.track(func() { c.Close() }) {
		c.Close()
		return nil, errors.New("netlab: DialChat on a closed lab")
	}
	return ch, nil
}

// Ask sends a line and returns the source address the server saw ("198.51.100.2:40123"),
// waiting at most wait for the answer (TCP retransmits underneath, so a short outage heals).
func (c *Chat) Ask(wait time.Duration) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(wait))
	if _, err := c.conn.Write([]byte("?\n")); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// Close closes the connection.
func (c *Chat) Close() error { return c.conn.Close() }

// SpreadUDP opens n UDP "connections" from role's namespace to the echo server, each from its
// own source port, sends two datagrams on each and returns how many connections the server
// saw from each source address, and how many changed address between their two datagrams.
func (l *Lab) SpreadUDP(role string, n int) (bySource map[string]int, changed int, err error) {
	bySource = map[string]int{}
	err = l.InNS(role, func() error {
		lc := net.ListenConfig{Control: inNSControl(l.NS(role))}
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(Server4, EchoPort))
		buf := make([]byte, 256)
		for i := range n {
			pc, err := lc.ListenPacket(context.Background(), "udp4", ":0")
			if err != nil {
				return err
			}
			c := pc.(*net.UDPConn)
			var seen [2]string
			for k := range seen {
				msg := fmt.Sprintf("spread %d/%d|", i, k)
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.WriteToUDP([]byte(msg), dst); err != nil {
					c.Close()
					return err
				}
				m, _, err := c.ReadFromUDP(buf)
				if err != nil {
					c.Close()
					return fmt.Errorf("connection %d datagram %d: %w", i, k, err)
				}
				src, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:m]), msg), ":")
				seen[k] = src
			}
			c.Close()
			bySource[seen[0]]++
			if seen[0] != seen[1] {
				changed++
			}
		}
		return nil
	})
	return bySource, changed, err
}
