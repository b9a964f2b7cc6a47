package connmark

import (
	"context"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestWatchReportsTheDeletionOfOurTableButNotOfOthers(t *testing.T) {
	testkit.NeedRoot(t)
	ns := newNS(t, "w")
	tb := NewTable(nsHandle(t, ns), nil)
	if err := tb.Replace(twoUplinks(1, 1)); err != nil {
		t.Fatal(err)
	}
	nft(t, ns, "table inet other {\n\tchain c {\n\t}\n}\n")
	out := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	listening := make(chan struct{})
	go func() { done <- tb.Watch(ctx, out, func() { close(listening) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("Watch did not subscribe: %v", err)
	}

	nft(t, ns, "delete table inet other\n")
	select {
	case <-out:
		t.Fatal("the deletion of another table was reported")
	case <-time.After(300 * time.Millisecond):
	}
	nft(t, ns, "delete table inet uplinkd\n")
	select {
	case <-out:
	case <-time.After(2 * time.Second):
		t.Fatal("the deletion of our table was not reported within 2s")
	}
	if err := tb.Replace(twoUplinks(1, 1)); err != nil {
		t.Fatal(err)
	}
	if ok, err := tb.Exists(); !ok || err != nil {
		t.Errorf("Apply after the report did not restore the table: %v %v", ok, err)
	}
}
