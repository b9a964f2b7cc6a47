package netlab

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestShapeAddsATBFQueueAndBulkSendsThroughIt(t *testing.T) {
	l := ForTest(t, Options{})
	if err := l.Shape(1, 4_000_000, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	out, err := l.Exec(context.Background(), RoleISP1, "tc", "qdisc", "show", "dev", ifISPToInet)
	if err != nil || !strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "4Mbit") {
		t.Fatalf("qdisc: %s %v", out, err)
	}
	b, err := l.StartBulk(1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := l.Counters(1)
	for deadline := time.Now().Add(5 * time.Second); b.SentBytes() < 50_000 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // waiting for the stream, bounded
	}
	b.Stop()
	after, _ := l.Counters(1)
	if b.SentBytes() < 50_000 || after.Sub(before).Up < 20 {
		t.Fatalf("bulk sent %d bytes, isp1 forwarded %d packets", b.SentBytes(), after.Sub(before).Up)
	}
	if err := l.Unshape(1); err != nil {
		t.Fatal(err)
	}
	if out, _ := l.Exec(context.Background(), RoleISP1, "tc", "qdisc", "show", "dev", ifISPToInet); strings.Contains(string(out), "tbf") {
		t.Fatalf("still shaped: %s", out)
	}
}

func TestScaleLabWiresEveryUplinkAndRemovesItself(t *testing.T) {
	if testing.Short() {
		t.Skip("builds namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip(SkipReason)
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
