package connmark

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Why a big table needs a sized socket.
//
// The whole table goes to the kernel as one nfnetlink batch (one sendmsg),
// so that packets see the old ruleset or the new one, never a mix. The
// kernel refuses a batch longer than the socket's send buffer (EMSGSIZE,
// seen at 250 uplinks with the default 212,992 bytes). It then processes the
// batch and commits it inside that sendmsg, and only afterwards do we read
// the answers: an acknowledgement for every message (google/nftables asks
// for one each) and, for every rule, an echo of the rule (it sets NLM_F_ECHO
// to learn the handle). The kernel queues all of them on our socket at once;
// each costs its buffer's true size (an echo is allocated at a page, ~4 KiB,
// whatever it holds) against the receive buffer, and once that is full the
// rest are dropped and the next recvmsg fails with ENOBUFS. At 32 uplinks
// the batch has 286 messages (175 rules) and the default receive buffer overflows —
// after the kernel committed the table, so retrying only replaced it again
// and failed again, forever.
//
// The fix keeps the single atomic transaction and sizes the socket for it:
// the batch is first built against a fake connection to learn its length
// and number of messages, then the real socket gets a send buffer that fits
// the batch, a receive buffer that fits every answer (SO_*BUFFORCE: the
// daemon has CAP_NET_ADMIN; without it the ordinary limit, capped by
// net.core.[rw]mem_max, is tried), and NETLINK_CAP_ACK so that
// acknowledgements do not carry a copy of the request.

// Per-answer costs in the receive buffer, with a margin: an echoed rule is
// allocated at NLMSG_GOODSIZE (a page less overhead) and then trimmed, and a
// small skb costs about 1 KiB of true size. Measured on kernel 6.x: 250
// uplinks (1,990 messages, 1,256 rules) need between 2.1 and 3.6 MB; these
// costs give 7.5 MB. The buffer is a limit, not an allocation: the answers
// use the memory only until Flush has read them.
const (
	ackCost  = 1 << 10
	echoCost = 4 << 10
	// maxBatchBuffer bounds either buffer: far above what 250 uplinks with
	// many services need, far below anything that would hurt.
	maxBatchBuffer = 64 << 20
)

// batchSize is what one replacement sends: its messages and their length.
type batchSize struct {
	messages int // messages in the batch, without its begin and end markers
	rules    int // of which rules, each echoed back
	bytes    int // total length on the wire, headers included
}

// measure builds the replacement of rs against a fake netlink connection
// that records the batch and sends nothing.
func measure(rs ruleset) (batchSize, error) {
	var size batchSize
	errMeasured := errors.New("measured")
	c, err := nftables.New(nftables.WithTestDial(func(msgs []netlink.Message) ([]netlink.Message, error) {
		for _, m := range msgs {
			if t := m.Header.Type; t == unix.NFNL_MSG_BATCH_BEGIN || t == unix.NFNL_MSG_BATCH_END {
				size.bytes += nlmsgLen(m)
				continue
			}
			size.messages++
			size.bytes += nlmsgLen(m)
			if m.Header.Type&0xff == unix.NFT_MSG_NEWRULE {
				size.rules++
			}
		}
		return nil, errMeasured
	}))
	if err != nil {
		return size, fmt.Errorf("connmark: measure batch: %w", err)
	}
	if err := replace(c, rs); err != nil && !errors.Is(err, errMeasured) {
		return size, fmt.Errorf("connmark: measure batch: %w", err)
	}
	return size, nil
}

func nlmsgLen(m netlink.Message) int {
	return (unix.NLMSG_HDRLEN + len(m.Data) + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
}

// sendBuffer is the send buffer the batch needs: the kernel refuses a
// message longer than the buffer less 32 bytes.
func (s batchSize) sendBuffer() int { return min(s.bytes+64<<10, maxBatchBuffer) }

// recvBuffer is the receive buffer every answer fits in at once.
func (s batchSize) recvBuffer() int {
	return min(s.messages*ackCost+s.rules*echoCost+s.bytes+64<<10, maxBatchBuffer)
}

// sockOption sizes a netlink socket for the batch (see the top of this file).
func (s batchSize) sockOption(c *netlink.Conn) error {
	if s.bytes >= maxBatchBuffer {
		return fmt.Errorf("connmark: table of %d bytes is too big for one transaction", s.bytes)
	}
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		return fmt.Errorf("connmark: set NETLINK_CAP_ACK: %w", err)
	}
	if err := setBuffer(c, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, s.sendBuffer()); err != nil {
		return fmt.Errorf("connmark: size send buffer for a batch of %d bytes: %w", s.bytes, err)
	}
	if err := setBuffer(c, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, s.recvBuffer()); err != nil {
		return fmt.Errorf("connmark: size receive buffer for %d answers: %w", s.messages+s.rules, err)
	}
	return nil
}

// setBuffer sets a socket buffer to at least n bytes, with force (needs
// CAP_NET_ADMIN) or else the ordinary option, which the kernel caps. The
// kernel doubles the value it is given, for its bookkeeping; the buffer it
// reports is the limit that counts, so half of n is asked for.
func setBuffer(c *netlink.Conn, force, plain, n int) error {
	if n <= 212992 { // the usual default: nothing to do
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, (n+1)/2)
		if errors.Is(serr, syscall.EPERM) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, plain, (n+1)/2)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
