package netlab

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestScaleLabWiresEveryUplinkAndRemovesItself(t *testing.T) {
	if testing.Short() {
		t.Skip("builds namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces") // testkit imports netlab: not usable here
	}
	s, err := NewScale(fmt.Sprintf("ulst%x", os.Getpid()), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for k := range 3 { // each uplink in turn carries the targets
		for _, tgt := range s.Targets {
			if out, err := run(nil, "ip", "-n", s.GWNS(), "route", "replace", tgt.String(), "via", s.Gateway(k).String(), "dev", s.Interface(k)); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if out, err := run(nil, "ip", "netns", "exec", s.GWNS(), "ping", "-n", "-q", "-c", "1", "-W", "1", tgt.String()); err != nil {
				t.Fatalf("uplink %d to %s: %v: %s", k, tgt, err, out)
			}
		}
	}
	if !strings.Contains(s.DaemonConfig("/tmp/x.sock", "500ms", "1s"), `interface = "up2"`) {
		t.Error("config lacks uplink 2")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if nsExists(s.GWNS()) {
		t.Fatal("namespaces left behind")
	}
}
