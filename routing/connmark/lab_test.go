package connmark

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

// A small lab of network namespaces for the root tests, built with ip(8):
//
//	client (eth0 192.0.2.2) ── lan0 router wan1 ── eth0 peer1 (203.0.113.100 on lo)
//	                                       wan2 ── eth0 peer2 (203.0.113.100 on lo)
//
// The router has fwmark rules 0x100/0xff00 → table 201 (peer1) and
// 0x200/0xff00 → table 202 (peer2), a main default via peer1 (the "active"
// route for unmarked traffic) and masquerade on both uplinks. Every peer
// runs a UDP counter on :9000 and a TCP server on :9001 that answers every
// line with its name.

type lab struct {
	client, router, peer1, peer2 string // namespace names
	routerNS                     netns.NsHandle
	udp1, udp2                   *atomic.Int64 // datagrams each peer received
}

func newNS(t testing.TB, role string) string { return testkit.Netns(t, role) }

func run(t testing.TB, args ...string) string { return testkit.Run(t, args...) }

// ipBatch runs ip commands (one per line) in namespace ns.
func ipBatch(t testing.TB, ns, script string) {
	t.Helper()
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s -batch: %v\n%s\n%s", ns, err, out, script)
	}
}

func nsHandle(t testing.TB, name string) netns.NsHandle { return testkit.NsHandle(t, name) }

// inNS runs f in namespace ns (by name); sockets f opens stay there.
func inNS(t testing.TB, ns string, f func()) {
	t.Helper()
	if err := netlab.InNamespace(ns, func() error { f(); return nil }); err != nil {
		t.Fatal(err)
	}
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{client: newNS(t, "c"), router: newNS(t, "r"), peer1: newNS(t, "p"), peer2: newNS(t, "p")}
	ipBatch(t, l.router, fmt.Sprintf(`link add lan0 type veth peer name eth0 netns %s
link add wan1 type veth peer name eth0 netns %s
link add wan2 type veth peer name eth0 netns %s
addr add 192.0.2.1/24 dev lan0
addr add 198.51.100.1/30 dev wan1
addr add 198.51.100.5/30 dev wan2
link set lan0 up
link set wan1 up
link set wan2 up
route add default via 198.51.100.2 dev wan1
route add default via 198.51.100.2 dev wan1 table 201
route add default via 198.51.100.6 dev wan2 table 202
rule add pref 1010 fwmark 0x100/0xff00 lookup 201
rule add pref 1011 fwmark 0x200/0xff00 lookup 202
`, l.client, l.peer1, l.peer2))
	run(t, "ip", "netns", "exec", l.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	ipBatch(t, l.client, "addr add 192.0.2.2/24 dev eth0\nlink set eth0 up\nroute add default via 192.0.2.1\n")
	for i, p := range []string{l.peer1, l.peer2} {
		ipBatch(t, p, fmt.Sprintf("addr add 198.51.100.%d/30 dev eth0\nlink set eth0 up\naddr add 203.0.113.100/32 dev lo\n", 2+4*i))
	}
	l.routerNS = nsHandle(t, l.router)
	l.udp1 = l.serve(t, l.peer1, "peer1")
	l.udp2 = l.serve(t, l.peer2, "peer2")
	return l
}

// masquerade adds the lab's NAT as a table of its own (also the "someone
// else's table" the tests check we never touch).
func (l *lab) masquerade(t *testing.T) {
	nft(t, l.router, `table ip labnat {
	set uplinks { type ifname; elements = { "wan1", "wan2" } }
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname @uplinks counter masquerade
	}
}
table inet other {
	chain fw {
		type filter hook forward priority filter; policy accept;
		ct state invalid counter
		meta mark set meta mark | 0x1 comment "someone else's low bits"
	}
}
`)
}

func nft(t testing.TB, ns, script string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft -f in %s: %v\n%s\n%s", ns, err, out, script)
	}
	return string(out)
}

func nftList(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", ns, "nft"}, args...)...)
}

// serve starts the peer's servers; they stop when the test ends.
func (l *lab) serve(t *testing.T, ns, name string) *atomic.Int64 {
	t.Helper()
	var udp net.PacketConn
	var tcp net.Listener
	var err1, err2 error
	inNS(t, ns, func() {
		udp, err1 = net.ListenPacket("udp4", "203.0.113.100:9000")
		tcp, err2 = net.Listen("tcp4", "203.0.113.100:9001")
	})
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: listen: %v %v", name, err1, err2)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn // closed at the end, or a stranded flow would hold its handler
	t.Cleanup(func() {
		udp.Close()
		tcp.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			k, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			n.Add(1)
			_, _ = udp.WriteTo([]byte(name+" "+string(buf[:k])), from)
		}
	}()
	go func() {
		defer wg.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := fmt.Fprintf(c, "%s\n", name); err != nil {
						return
					}
				}
			}()
		}
	}()
	return &n
}

// flow is a long-lived TCP connection from the client.
type flow struct {
	c  net.Conn
	rd *bufio.Reader
}

func (l *lab) dial(t *testing.T) *flow {
	t.Helper()
	var c net.Conn
	var err error
	inNS(t, l.client, func() {
		c, err = net.DialTimeout("tcp4", "203.0.113.100:9001", 3*time.Second)
	})
	if err != nil {
		t.Fatalf("client: dial 203.0.113.100:9001: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &flow{c: c, rd: bufio.NewReader(c)}
}

// ask sends one line and returns the name of the peer that answered.
func (f *flow) ask() (string, error) {
	_ = f.c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := f.c.Write([]byte("who\n")); err != nil {
		return "", err
	}
	s, err := f.rd.ReadString('\n')
	return strings.TrimSpace(s), err
}

// sendUDP sends one datagram from each of n distinct client source ports
// (first..first+n-1), each a new connection, and waits (bounded) until the
// peers have counted them all. It returns what each peer received.
func (l *lab) sendUDP(t *testing.T, first, n int) (p1, p2 int64) {
	t.Helper()
	b1, b2 := l.udp1.Load(), l.udp2.Load()
	dst := &net.UDPAddr{IP: net.IPv4(203, 0, 113, 100), Port: 9000}
	var err error
	inNS(t, l.client, func() {
		for i := range n {
			var c *net.UDPConn
			c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: first + i})
			if err != nil {
				return
			}
			_, err = c.WriteTo([]byte("x"), dst)
			c.Close()
			if err != nil {
				return
			}
			// Let the peers catch up every 100 datagrams: a burst of 1,000 overflows a
			// receive buffer on a loaded machine, and a lost datagram is not what we test.
			for wait := 0; (i+1)%100 == 0 && wait < 100; wait++ {
				if l.udp1.Load()-b1+l.udp2.Load()-b2 >= int64(i+1) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	if err != nil {
		t.Fatalf("client: send UDP: %v", err)
	}
	for range 100 { // up to 5 s
		p1, p2 = l.udp1.Load()-b1, l.udp2.Load()-b2
		if p1+p2 >= int64(n) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p1, p2
}
