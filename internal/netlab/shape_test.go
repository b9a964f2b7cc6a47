package netlab_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestShapeAddsATBFQueueAndBulkSendsThroughIt(t *testing.T) {
	l := testkit.Lab(t, netlab.Options{})
	if err := l.Shape(1, 4_000_000, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	out, err := l.Exec(context.Background(), netlab.RoleISP1, "tc", "qdisc", "show", "dev", "inet") // ispN's core wire to the internet
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
	if out, _ := l.Exec(context.Background(), netlab.RoleISP1, "tc", "qdisc", "show", "dev", "inet"); strings.Contains(string(out), "tbf") {
		t.Fatalf("still shaped: %s", out)
	}
}
