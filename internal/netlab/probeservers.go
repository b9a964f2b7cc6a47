package netlab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Ports of the probe-method servers (StartProbeServers) on Server4 and Server6.
const (
	HTTPPort  = 8080 // GET / → 200; GET /redirect → 302; anything else → 404
	HTTPSPort = 8443 // the same over TLS, certificate for Server4 and Server6 (see ProbeServers.Roots)
	DNSPort   = 53   // UDP: every query answered REFUSED (an answer is what a dns probe checks)
)

// ProbeServers are the servers http, https and dns probes are tested against.
type ProbeServers struct {
	// Roots trusts the https server's certificate; Certs holds it.
	Roots *x509.CertPool
	Certs []*x509.Certificate
}

// StartProbeServers starts, in the internet namespace, an HTTP, an HTTPS and a DNS server on
// Server4 and Server6. They run in this process until the lab is closed.
func (l *Lab) StartProbeServers() (*ProbeServers, error) {
	cert, roots, err := selfSigned(Server4, Server6)
	if err != nil {
		return nil, err
	}
	var lns []net.Listener
	var pcs []net.PacketConn
	ns := l.NS(RoleInet)
	err = l.InNS(RoleInet, func() error {
		lc := net.ListenConfig{Control: inNSControl(ns)}
		for _, a := range []netip.Addr{Server4, Server6} {
			for _, port := range []uint16{HTTPPort, HTTPSPort} {
				ln, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(a, port).String())
				if err != nil {
					return fmt.Errorf("netlab: http server: %w", err)
				}
				if port == HTTPSPort {
					ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
				}
				lns = append(lns, ln)
			}
			pc, err := lc.ListenPacket(context.Background(), "udp", netip.AddrPortFrom(a, DNSPort).String())
			if err != nil {
				return fmt.Errorf("netlab: dns server: %w", err)
			}
			pcs = append(pcs, pc)
		}
		return nil
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/", http.StatusFound) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	var wg sync.WaitGroup
	stop := func() {
		_ = srv.Close()
		for _, ln := range lns {
			ln.Close()
		}
		for _, pc := range pcs {
			pc.Close()
		}
		wg.Wait()
	}
	if err != nil {
		stop()
		return nil, err
	}
	for _, ln := range lns {
		wg.Go(func() { _ = srv.Serve(ln) })
	}
	for _, pc := range pcs {
		wg.Go(func() { serveRefused(pc) })
	}
	if !l.track(stop) {
		stop()
		return nil, errors.New("netlab: StartProbeServers on a closed lab")
	}
	return &ProbeServers{Roots: roots, Certs: []*x509.Certificate{cert.Leaf}}, nil
}

// serveRefused answers every DNS query with its own question, QR set and rcode REFUSED.
func serveRefused(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n < 12 {
			continue
		}
		buf[2] |= 0x80                   // QR: a response
		buf[3] = buf[3]&0xf0 | 5         // RCODE 5: REFUSED
		_, _ = pc.WriteTo(buf[:n], from) // the question section stays; no answers
	}
}

// selfSigned makes a certificate for the addresses and a pool that trusts it.
func selfSigned(addrs ...netip.Addr) (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "netlab probe server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, a := range addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, a.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, pool, nil
}
