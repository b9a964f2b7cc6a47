package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// tcpProber opens a TCP connection to target:port and closes it: for targets or networks that
// filter ICMP. Only a completed handshake counts; a refused connection is a failure (a reset
// might come from a middlebox rather than the target).
type tcpProber struct{ port uint16 }

func newTCP(m uplink.Method) Prober { return tcpProber{port: m.Port} }

func (t tcpProber) Probe(ctx context.Context, pin Pin, target netip.Addr, timeout time.Duration) Result {
	res := Result{Target: target}
	if res.Err = check("tcp", pin, target, timeout); res.Err != nil {
		return res
	}
	d := net.Dialer{Control: MarkControl(pin.Mark)}
	if s := pin.source(target); s.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: s.AsSlice()}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dst := netip.AddrPortFrom(target, t.port)
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", dst.String())
	rtt := time.Since(start)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			res.Err = noReply("tcp", target, pin, timeout)
			return res
		}
		res.Err = fmt.Errorf("probe: tcp %s %s: %w", dst, pin.describe(target), err)
		return res
	}
	c.Close()
	if rtt > timeout {
		res.Err = noReply("tcp", target, pin, timeout)
		return res
	}
	res.OK, res.RTT = true, rtt
	return res
}

// MarkControl sets SO_MARK on the socket before it connects (needs CAP_NET_ADMIN): a dialer
// with it leaves through the uplink of that mark. Mark 0 leaves the socket alone.
func MarkControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		if mark == 0 {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, int(mark))
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set mark %#x: %w", mark, os.NewSyscallError("setsockopt SO_MARK", serr))
		}
		return nil
	}
}
