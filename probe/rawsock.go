package probe

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ICMP socket's send and receive as raw system calls on its non-blocking descriptor: they
// never block, and unlike the standard library's they do not wake Go's sysmon thread, which
// at a 100 ms interval cost more than the probes themselves (see alarm). Waiting for a reply
// still goes through the network poller (RawConn.Read).

// rawSendTo writes b to target through c. A target with a zone (a link-local address) takes
// the standard library's way, which knows how to turn the zone into an interface index.
func rawSendTo(c *net.IPConn, rc syscall.RawConn, b []byte, target netip.Addr) error {
	if target.Zone() != "" {
		_, err := c.WriteTo(b, &net.IPAddr{IP: target.AsSlice(), Zone: target.Zone()})
		return err
	}
	var sa4 unix.RawSockaddrInet4
	var sa6 unix.RawSockaddrInet6
	sa, salen := unsafe.Pointer(&sa4), unsafe.Sizeof(sa4)
	if target.Is4() {
		sa4.Family, sa4.Addr = unix.AF_INET, target.As4()
	} else {
		sa6.Family, sa6.Addr = unix.AF_INET6, target.As16()
		sa, salen = unsafe.Pointer(&sa6), unsafe.Sizeof(sa6)
	}
	var errno syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_DONTWAIT, uintptr(sa), salen)
		return errno != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: &net.IPAddr{IP: target.AsSlice()},
			Err: os.NewSyscallError("sendto", errno)}
	}
	return nil
}

// rawReadFrom reads one datagram into buf, waiting for it through the network poller, and
// returns its length and sender.
func rawReadFrom(rc syscall.RawConn, buf []byte) (int, netip.Addr, error) {
	var sa unix.RawSockaddrAny
	var n uintptr
	var errno syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		salen := uint32(unsafe.Sizeof(sa))
		n, _, errno = unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
		return errno != unix.EAGAIN
	})
	if err != nil {
		return 0, netip.Addr{}, err
	}
	if errno != 0 {
		return 0, netip.Addr{}, errno
	}
	raw := (*[unix.SizeofSockaddrAny]byte)(unsafe.Pointer(&sa))
	var from netip.Addr
	switch binary.NativeEndian.Uint16(raw[:2]) {
	case unix.AF_INET:
		from = netip.AddrFrom4([4]byte(raw[4:8]))
	case unix.AF_INET6:
		from = netip.AddrFrom16([16]byte(raw[8:24])).Unmap()
	}
	return int(n), from, nil
}
