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
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/uplink"
)

// httpProber GETs the method's path (/ by default) from the target's address (http or https) on
// a fresh connection and counts a 2xx or 3xx status (redirects are not followed) and, when the
// method expects a text, a body that holds it in its first 4 KiB (a server check's health
// page). For https the certificate must be valid for the target's address (IP SAN), as public
// resolvers' are.
type httpProber struct {
	tls          bool
	port         uint16
	path, expect string
}

func newHTTP(m uplink.Method) Prober {
	path := m.Path
	if path == "" {
		path = "/"
	}
	return httpProber{tls: m.Name == uplink.MethodHTTPS, port: m.Port, path: path, expect: m.Expect}
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
	url := fmt.Sprintf("%s://%s%s", method, netip.AddrPortFrom(target, h.port), h.path)
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
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		res.Err = fmt.Errorf("probe: %s %s %s: status %s", method, url, pin.describe(target), resp.Status)
		return res
	}
	if h.expect != "" && !strings.Contains(string(body), h.expect) {
		res.Err = fmt.Errorf("probe: %s %s %s: status %s, but the body lacks %q", method, url, pin.describe(target), resp.Status, h.expect)
		return res
	}
	res.OK, res.RTT = true, rtt
	return res
}
