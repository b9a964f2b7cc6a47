package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// httpProber GETs / from the target's address (http or https) on a fresh connection and counts
// a 2xx or 3xx status (redirects are not followed). For https the certificate must be valid for
// the target's address (IP SAN), as public resolvers' are.
type httpProber struct {
	tls  bool
	port uint16
}

func newHTTP(m uplink.Method) Prober {
	return httpProber{tls: m.Name == uplink.MethodHTTPS, port: m.Port}
}

// tlsRoots replaces the system's roots (tests trust the lab's certificate with it).
var tlsRoots *x509.CertPool

// maxBody is how much of a response body is read before the connection is closed.
const maxBody = 4096

func (h httpProber) Probe(ctx context.Context, pin Pin, target netip.Addr, timeout time.Duration) Result {
	method := uplink.MethodHTTP
	if h.tls {
		method = uplink.MethodHTTPS
	}
	res := Result{Target: target}
	if res.Err = check(method, pin, target, timeout); res.Err != nil {
		return res
	}
	d := &net.Dialer{Control: MarkControl(pin.Mark)}
	if s := pin.source(target); s.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: s.AsSlice()}
	}
	tr := &http.Transport{
		DialContext:       d.DialContext,
		DisableKeepAlives: true, // a probe is a fresh connection through the uplink of now
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{RootCAs: tlsRoots, MinVersion: tls.VersionTLS12},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := fmt.Sprintf("%s://%s/", method, netip.AddrPortFrom(target, h.port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		res.Err = fmt.Errorf("probe: %s %s: %w", method, url, err)
		return res
	}
	req.Header.Set("User-Agent", "uplinkd-probe")
	start := time.Now()
	resp, err := client.Do(req)
	rtt := time.Since(start)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || rtt >= timeout {
			res.Err = noReply(method, target, pin, timeout)
			return res
		}
		res.Err = fmt.Errorf("probe: %s %s %s: %w", method, url, pin.describe(target), err)
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		res.Err = fmt.Errorf("probe: %s %s %s: status %s", method, url, pin.describe(target), resp.Status)
		return res
	}
	res.OK, res.RTT = true, rtt
	return res
}
