package probe

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawIO is the ICMP socket's send and receive as raw system calls on its non-blocking
// descriptor: they never block, and unlike the standard library's they do not wake Go's sysmon
// thread, which at a 100 ms interval cost more than the probes themselves (see alarm). Waiting
// for a reply still goes through the network poller (RawConn.Read). The buffers and the
// functions handed to RawConn are made once: a probe allocates nothing here. One goroutine
// sends (the run loop) and one receives (the reader).
type rawIO struct {
	conn *net.IPConn
	rc   syscall.RawConn

	out       []byte
	to        [unix.SizeofSockaddrInet6]byte // a sockaddr_in or sockaddr_in6
	toLen     uintptr
	sendErrno syscall.Errno
	sendFn    func(fd uintptr) bool

	in        []byte
	n         uintptr
	from      unix.RawSockaddrAny
	fromLen   uint32
	recvErrno syscall.Errno
	recvFn    func(fd uintptr) bool
}

func newRawIO(conn *net.IPConn) (*rawIO, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &rawIO{conn: conn, rc: rc}
	r.sendFn = func(fd uintptr) bool {
		_, _, r.sendErrno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&r.out[0])), uintptr(len(r.out)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&r.to[0])), r.toLen)
		return r.sendErrno != unix.EAGAIN
	}
	r.recvFn = func(fd uintptr) bool {
		r.fromLen = unix.SizeofSockaddrAny
		r.n, _, r.recvErrno = unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.in[0])), uintptr(len(r.in)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&r.from)), uintptr(unsafe.Pointer(&r.fromLen)))
		return r.recvErrno != unix.EAGAIN
	}
	return r, nil
}

// sendTo writes b to target. A target with a zone (a link-local address) takes the standard
// library's way, which knows how to turn the zone into an interface index.
func (r *rawIO) sendTo(b []byte, target netip.Addr) error {
	if target.Zone() != "" {
		_, err := r.conn.WriteTo(b, &net.IPAddr{IP: target.AsSlice(), Zone: target.Zone()})
		return err
	}
	r.to = [len(r.to)]byte{}
	if target.Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.to[0]))
		sa.Family, sa.Addr, r.toLen = unix.AF_INET, target.As4(), unix.SizeofSockaddrInet4
	} else {
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.to[0]))
		sa.Family, sa.Addr, r.toLen = unix.AF_INET6, target.As16(), unix.SizeofSockaddrInet6
	}
	r.out = b
	err := r.rc.Write(r.sendFn)
	r.out = nil
	if err == nil && r.sendErrno != 0 {
		err = &net.OpError{Op: "write", Net: r.conn.LocalAddr().Network(), Source: r.conn.LocalAddr(),
			Addr: &net.IPAddr{IP: target.AsSlice()}, Err: os.NewSyscallError("sendto", r.sendErrno)}
	}
	return err
}

// readFrom reads one datagram into buf, waiting for it through the network poller, and
// returns its length and sender.
func (r *rawIO) readFrom(buf []byte) (int, netip.Addr, error) {
	r.in = buf
	err := r.rc.Read(r.recvFn)
	r.in = nil
	if err != nil {
		return 0, netip.Addr{}, err
	}
	if r.recvErrno != 0 {
		return 0, netip.Addr{}, r.recvErrno
	}
	var from netip.Addr
	switch r.from.Addr.Family {
	case unix.AF_INET:
		from = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&r.from)).Addr)
	case unix.AF_INET6:
		from = netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(&r.from)).Addr).Unmap()
	}
	return int(r.n), from, nil
}
