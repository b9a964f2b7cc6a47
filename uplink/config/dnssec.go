package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// DNSSECKey is the zone's combined signing key (ECDSA P-256, algorithm 13): its DNSKEY record
// (flags 257, the key the parent's DS names) and the signer.
type DNSSECKey struct {
	DNSKEY *dns.DNSKEY
	Signer crypto.Signer
}

// KeyTag is the key's tag, as the DS and the RRSIGs name it.
func (k DNSSECKey) KeyTag() uint16 { return k.DNSKEY.KeyTag() }

// DS is the record to give the parent zone (the registrar): SHA-256 of the DNSKEY.
func (k DNSSECKey) DS() *dns.DS { return k.DNSKEY.ToDS(dns.SHA256) }

// LoadDNSSECKey reads the zone's signing key from a private file (readSecret): BIND's private
// key format, as `uplinkd --dnssec-keygen FILE` or `dnssec-keygen -a ECDSAP256SHA256` write it.
// zone is the DNSKEY's owner.
func LoadDNSSECKey(path, zone string) (DNSSECKey, error) {
	b, err := readSecret(path)
	if err != nil {
		return DNSSECKey{}, err
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	if f := fields["private-key-format"]; f != "v1.2" && f != "v1.3" {
		return DNSSECKey{}, fmt.Errorf("%s: want BIND's private key format (Private-key-format: v1.3, Algorithm: 13, PrivateKey: …); make one with uplinkd --dnssec-keygen %s", path, path)
	}
	if alg, _, _ := strings.Cut(fields["algorithm"], " "); alg != "13" {
		return DNSSECKey{}, fmt.Errorf("%s: algorithm %q: only 13 (ECDSAP256SHA256) is used: small signatures that fit in 1232 bytes", path, fields["algorithm"])
	}
	raw, err := base64.StdEncoding.DecodeString(fields["privatekey"])
	if err != nil {
		return DNSSECKey{}, fmt.Errorf("%s: PrivateKey: %w", path, err)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return DNSSECKey{}, fmt.Errorf("%s: PrivateKey: %w", path, err)
	}
	return keyOf(priv, zone)
}

// keyOf makes the DNSKEY of priv in zone.
func keyOf(priv *ecdsa.PrivateKey, zone string) (DNSSECKey, error) {
	pub, err := priv.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return DNSSECKey{}, err
	}
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: dns.Fqdn(strings.ToLower(zone)), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256, PublicKey: base64.StdEncoding.EncodeToString(pub[1:])}
	return DNSSECKey{DNSKEY: k, Signer: priv}, nil
}

// GenerateDNSSECKey writes a new signing key to path (mode 600; an existing file is never
// overwritten) and returns it for zone.
func GenerateDNSSECKey(path, zone string) (DNSSECKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DNSSECKey{}, err
	}
	k, err := keyOf(priv, zone)
	if err != nil {
		return DNSSECKey{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return DNSSECKey{}, err
	}
	_, err = f.WriteString(k.DNSKEY.PrivateKeyString(priv))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return k, err
}
