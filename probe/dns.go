package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/uplink"
)

// dnsProber sends one query (". NS" over UDP) and counts any answer, whatever its rcode: a
// REFUSED from a resolver that serves only its customers still proves the path works.
type dnsProber struct{ port uint16 }

func newDNS(m uplink.Method) Prober { return dnsProber{port: m.Port} }

func (p dnsProber) Probe(ctx context.Context, pin Pin, target netip.Addr, timeout time.Duration) Result {
	res := Result{Target: target}
	if res.Err = check(uplink.MethodDNS, pin, target, timeout); res.Err != nil {
		return res
	}
	d := &net.Dialer{Control: MarkControl(pin.Mark)}
	if s := pin.source(target); s.IsValid() {
		d.LocalAddr = &net.UDPAddr{IP: s.AsSlice()}
	}
	c := &dns.Client{Net: "udp", Dialer: d, Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dst := netip.AddrPortFrom(target, p.port)
	_, rtt, err := c.ExchangeContext(ctx, m, dst.String())
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			res.Err = noReply(uplink.MethodDNS, target, pin, timeout)
			return res
		}
		res.Err = fmt.Errorf("probe: dns %s %s: %w", dst, pin.describe(target), err)
		return res
	}
	if rtt > timeout {
		res.Err = noReply(uplink.MethodDNS, target, pin, timeout)
		return res
	}
	res.OK, res.RTT = true, rtt
	return res
}
