package config

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/miekg/dns"
	"github.com/uplinkd/uplinkd/uplink"
)

// TSIGKey is a TSIG key: its name (fully qualified) and base64 secret.
type TSIGKey struct {
	Name, Secret string
}

var (
	keyName   = regexp.MustCompile(`key\s+"?([A-Za-z0-9._-]+)"?\s*\{`)
	keyAlg    = regexp.MustCompile(`algorithm\s+"?([A-Za-z0-9.-]+)"?\s*;`)
	keySecret = regexp.MustCompile(`secret\s+"([A-Za-z0-9+/=]+)"\s*;`)
)

// LoadTSIGKey reads a TSIG key in BIND's format (what `tsig-keygen -a hmac-sha256 NAME`
// prints) from a private file (readSecret). The config is judged with it (Load), and the
// updater reads it again for each update, so a rewritten key needs no reload.
func LoadTSIGKey(path string) (TSIGKey, error) {
	b, err := readSecret(path)
	if err != nil {
		return TSIGKey{}, err
	}
	return ParseTSIGKey(path, string(b))
}

// ParseTSIGKey parses a key in BIND's format; path only names it in errors.
func ParseTSIGKey(path, text string) (TSIGKey, error) {
	n, a, s := keyName.FindStringSubmatch(text), keyAlg.FindStringSubmatch(text), keySecret.FindStringSubmatch(text)
	if n == nil || a == nil || s == nil {
		return TSIGKey{}, fmt.Errorf("%s: want BIND's format: key \"NAME\" { algorithm hmac-sha256; secret \"BASE64\"; };", path)
	}
	if alg := strings.ToLower(a[1]); alg != "hmac-sha256" {
		return TSIGKey{}, fmt.Errorf("%s: algorithm %s: only hmac-sha256 is accepted", path, a[1])
	}
	return TSIGKey{Name: dns.Fqdn(strings.ToLower(n[1])), Secret: s[1]}, nil
}

// readSecret reads a file that holds a secret, refusing one that anyone but its owner may
// read or that a user other than uplinkd's owns (root, as the service runs): the secret lets
// its holder rewrite the business's public names.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // names the path: "open /etc/uplinkd/tsig.key: no such file or directory"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %#o lets others read the secret: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s: owned by uid %d, not by uplinkd's (%d): chown %d %s", path, st.Uid, os.Geteuid(), os.Geteuid(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxSecretSize {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a key file", path, maxSecretSize)
	}
	return b, nil
}

// maxSecretSize bounds what is read of a key file: a key is a few hundred bytes.
const maxSecretSize = 64 << 10

// checkSecrets judges the files the configuration names (Load, so start, --check,
// check-config and reload alike); Parse judges only the text.
func checkSecrets(cfg *uplink.Config, path string, src []byte) error {
	if u := cfg.DNS.Update; u.Enabled() && u.KeyFile != "" {
		if _, err := LoadTSIGKey(u.KeyFile); err != nil {
			const key = "dns.update.key_file"
			return &Error{File: path, Line: locate(src).line(key), Key: displayKey(key), Msg: "tsig key: " + err.Error()}
		}
	}
	for key, f := range map[string]string{"dns.dnssec": cfg.DNS.DNSSEC, "dns.dnssec_next": cfg.DNS.DNSSECNext} {
		if f == "" {
			continue
		}
		if _, err := LoadDNSSECKey(f, cfg.DNS.Zone); err != nil {
			return &Error{File: path, Line: locate(src).line(key), Key: displayKey(key), Msg: "signing key: " + err.Error()}
		}
	}
	return nil
}
