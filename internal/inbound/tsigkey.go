package inbound

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// tsigKey is a TSIG key: its name (fully qualified) and base64 secret.
type tsigKey struct {
	Name, Secret string
}

var (
	keyName   = regexp.MustCompile(`key\s+"?([A-Za-z0-9._-]+)"?\s*\{`)
	keyAlg    = regexp.MustCompile(`algorithm\s+"?([A-Za-z0-9.-]+)"?\s*;`)
	keySecret = regexp.MustCompile(`secret\s+"([A-Za-z0-9+/=]+)"\s*;`)
)

// loadKey reads a TSIG key in BIND's format (what `tsig-keygen -a hmac-sha256 NAME` prints),
// refusing a file that anyone but its owner may read or that another user owns: the secret
// lets its holder rewrite the business's public names.
func loadKey(path string) (tsigKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return tsigKey{}, fmt.Errorf("tsig key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return tsigKey{}, fmt.Errorf("tsig key %s: mode %#o lets others read the secret: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return tsigKey{}, fmt.Errorf("tsig key %s: owned by uid %d, not by uplinkd's (%d)", path, st.Uid, os.Geteuid())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return tsigKey{}, fmt.Errorf("tsig key: %w", err)
	}
	return parseKey(path, string(b))
}

func parseKey(path, text string) (tsigKey, error) {
	n, a, s := keyName.FindStringSubmatch(text), keyAlg.FindStringSubmatch(text), keySecret.FindStringSubmatch(text)
	if n == nil || a == nil || s == nil {
		return tsigKey{}, fmt.Errorf("tsig key %s: want BIND's format: key \"NAME\" { algorithm hmac-sha256; secret \"BASE64\"; };", path)
	}
	if alg := strings.ToLower(a[1]); alg != "hmac-sha256" {
		return tsigKey{}, fmt.Errorf("tsig key %s: algorithm %s: only hmac-sha256 is accepted", path, a[1])
	}
	return tsigKey{Name: dns.Fqdn(strings.ToLower(n[1])), Secret: s[1]}, nil
}
