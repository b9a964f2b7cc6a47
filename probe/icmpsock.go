package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// icmpSocket is one uplink's long-lived raw ICMP socket for one address family: pinned (SO_MARK,
// bound to the uplink's source address), with a kernel filter that passes only echo replies
// carrying the uplink's own identifier, so the reader wakes for its own replies only. Sequence
// numbers tell the probes apart; the payload carries the send time, so the RTT is exact
// whatever the scheduler did in between.
type icmpSocket struct {
	v6   bool
	id   uint16
	io   *rawIO        // the socket (io.conn), sent to and read from by raw system calls
	quit chan struct{} // closed by close: the reader stops waiting to deliver
	done sync.WaitGroup
}

// epoch makes payload timestamps monotonic (time.Since reads the monotonic clock).
var epoch = time.Now()

// payload is the echo data: 8 bytes of send time since epoch, then the uplink's nonce so a
// reply to another process that happens to use the same identifier is not taken for ours.
const payloadLen = 16

type icmpReply struct {
	from netip.Addr
	seq  uint16
	rtt  time.Duration
}

// openICMP opens the socket and starts its reader, which calls deliver for every reply until
// the socket is closed.
func openICMP(v6 bool, id uint16, nonce uint64, pin Pin, deliver func(r icmpReply, quit <-chan struct{})) (*icmpSocket, error) {
	network, src := "ip4:icmp", pin.Source4
	if v6 {
		network, src = "ip6:ipv6-icmp", pin.Source6
	}
	laddr := ""
	if src.IsValid() {
		laddr = src.String()
	}
	lc := net.ListenConfig{Control: MarkControl(pin.Mark)}
	pc, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, err
	}
	conn := pc.(*net.IPConn)
	if err := filterEchoReplies(conn, v6, id); err != nil {
		conn.Close()
		return nil, fmt.Errorf("filter echo replies: %w", err)
	}
	rio, err := newRawIO(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &icmpSocket{v6: v6, id: id, io: rio, quit: make(chan struct{})}
	s.done.Go(func() { s.read(nonce, deliver) })
	return s, nil
}

// filterEchoReplies installs the kernel filter: echo replies with identifier id only. An IPv4
// raw socket sees the IP header (the filter skips it); an IPv6 one starts at the ICMPv6 header.
func filterEchoReplies(conn *net.IPConn, v6 bool, id uint16) error {
	reply := uint32(ipv4.ICMPTypeEchoReply)
	var load []bpf.Instruction
	if v6 {
		reply = uint32(ipv6.ICMPTypeEchoReply)
		load = []bpf.Instruction{bpf.LoadAbsolute{Off: 0, Size: 1}}
	} else {
		load = []bpf.Instruction{bpf.LoadMemShift{Off: 0}, bpf.LoadIndirect{Off: 0, Size: 1}}
	}
	idLoad := bpf.Instruction(bpf.LoadIndirect{Off: 4, Size: 2})
	if v6 {
		idLoad = bpf.LoadAbsolute{Off: 4, Size: 2}
	}
	prog := append(load,
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: reply, SkipTrue: 3},
		idLoad,
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(id), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	)
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	if v6 {
		p := ipv6.NewPacketConn(conn)
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeEchoReply)
		if err := p.SetICMPFilter(&f); err != nil {
			return err
		}
		return p.SetBPF(raw)
	}
	return ipv4.NewPacketConn(conn).SetBPF(raw)
}

func (s *icmpSocket) read(nonce uint64, deliver func(r icmpReply, quit <-chan struct{})) {
	proto := 1 // ICMP
	if s.v6 {
		proto = 58 // ICMPv6
	}
	buf := make([]byte, 1500)
	for {
		n, addr, err := s.io.readFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error on a raw socket (e.g. an ICMP error queued for it)
		}
		now := time.Since(epoch)
		msg := buf[:n]
		if !s.v6 { // an IPv4 raw socket reads the IP header too
			if n < 1 || n < int(msg[0]&0x0f)*4 {
				continue
			}
			msg = msg[int(msg[0]&0x0f)*4:]
		}
		m, err := icmp.ParseMessage(proto, msg)
		if err != nil {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		if !ok || echo.ID != int(s.id) || len(echo.Data) < payloadLen || binary.BigEndian.Uint64(echo.Data[8:]) != nonce {
			continue
		}
		if !addr.IsValid() {
			continue
		}
		sent := time.Duration(binary.BigEndian.Uint64(echo.Data))
		deliver(icmpReply{from: addr.Unmap(), seq: uint16(echo.Seq), rtt: max(0, now-sent)}, s.quit)
	}
}

// send writes one echo request to target.
func (s *icmpSocket) send(target netip.Addr, seq uint16, nonce uint64) error {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if s.v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	data := make([]byte, payloadLen)
	binary.BigEndian.PutUint64(data, uint64(time.Since(epoch)))
	binary.BigEndian.PutUint64(data[8:], nonce)
	// IPv4: Marshal computes the checksum; ICMPv6: the kernel does (raw ICMPv6 sockets).
	b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(s.id), Seq: int(seq), Data: data}}).Marshal(nil)
	if err != nil {
		return err
	}
	return s.io.sendTo(b, target)
}

// close closes the socket and waits for its reader.
func (s *icmpSocket) close() {
	close(s.quit)
	s.io.conn.Close()
	s.done.Wait()
}
