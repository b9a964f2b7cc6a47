package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodKey = "key \"UplinkD.\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n"

func TestTSIGKeysAreReadInBINDsFormat(t *testing.T) {
	k, err := ParseTSIGKey("k", goodKey)
	if err != nil || k.Name != "uplinkd." || k.Secret != "c2VjcmV0c2VjcmV0c2VjcmV0" {
		t.Fatalf("%+v %v", k, err)
	}
	for _, bad := range []string{strings.Replace(goodKey, "hmac-sha256", "hmac-md5", 1), "secret \"x\";", ""} {
		if _, err := ParseTSIGKey("k", bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// withKey writes a config whose [dns.update] names keyPath, and returns the config's path.
func withKey(t *testing.T, keyPath string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "uplinkd.toml")
	src := "[defaults]\ntargets = [\"192.0.2.1\"]\n\n[[uplink]]\nname = \"isp1\"\ninterface = \"wan1\"\n\n" +
		"[dns]\nzone = \"lb.example.com\"\n\n[dns.update]\nserver = \"192.0.2.53\"\nkey_file = \"" + keyPath + "\"\n\n[[dns.name]]\nname = \"www\"\n"
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Load (start, --check, check-config and reload) refuses a key that an update could not
// use, naming the config file, the line of key_file and the key; Parse judges the text only.
func TestAKeyFileThatCannotBeUsedIsRefusedWhenTheConfigIsLoaded(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode) // past the umask
		return p
	}
	cases := []struct {
		name, path, want string
	}{
		{"a missing file", filepath.Join(dir, "missing.key"), "no such file or directory"},
		{"a file others can read", write("open.key", goodKey, 0o644), "chmod 600"},
		{"a file its group can read", write("group.key", goodKey, 0o640), "chmod 600"},
		{"an unparsable file", write("garbage.key", "not a key\n", 0o600), "want BIND's format"},
		{"a directory", dir, "not a regular file"},
	}
	if os.Geteuid() == 0 {
		other := write("other.key", goodKey, 0o600)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ name, path, want string }{"a file not owned by root", other, "owned by uid 65534"})
	} else {
		t.Log("not root: the ownership case runs as root only")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := withKey(t, c.path)
			_, err := Load(cfg)
			if err == nil {
				t.Fatal("loaded")
			}
			prefix := cfg + ":13: dns.update.key_file: tsig key: "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v\nwant %q … %q", err, prefix, c.want)
			}
			src, _ := os.ReadFile(cfg)
			if _, err := Parse(cfg, src); err != nil {
				t.Errorf("Parse judged the file too: %v", err)
			}
		})
	}
	if _, err := Load(withKey(t, write("good.key", goodKey, 0o600))); err != nil {
		t.Errorf("a private key of ours: %v", err)
	}
}
