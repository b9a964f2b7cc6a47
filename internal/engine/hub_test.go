package engine

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
)

// A subscriber too slow to keep up is dropped. Dropped 10,000 times over, the hub must hold
// nothing of them: no subscription, no context callback, no 128-event buffer.
func TestDroppedSubscribersLeaveNothingBehind(t *testing.T) {
	h := newHub()
	ctx, cancel := context.WithCancel(context.Background()) // lives as long as the daemon
	defer cancel()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	ev := api.Event{Time: time.Now(), Kind: api.KindState, Uplink: "isp1", Reason: "a reason long enough to weigh something"}
	dropOne := func() {
		ch := h.subscribe(ctx)
		for range cap(ch) + 1 { // never read: the last one overflows and drops it
			h.publish(ev)
		}
		if _, open := <-ch; !open {
			t.Fatal("the buffer was gone before it was read")
		}
	}
	for range 100 { // warm up
		dropOne()
	}
	before := heap()
	for range 10000 {
		dropOne()
	}
	after := heap()
	h.mu.Lock()
	left := len(h.subs)
	h.mu.Unlock()
	if left != 0 {
		t.Errorf("%d dropped subscribers still subscribed", left)
	}
	// One left-over subscription costs its 128-event buffer (over 10 KiB): 10,000 would be
	// over 100 MiB. Allow 1 MiB of noise.
	if grew := int64(after) - int64(before); grew > 1<<20 {
		t.Errorf("10,000 dropped subscribers grew the heap by %d KiB", grew>>10)
	}
	t.Logf("heap before %d KiB, after 10,000 drops %d KiB", before>>10, after>>10)
}
