package connmark

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/nftables"
)

// Watch reports on out whenever a table, chain, set or rule of ours is deleted, so that the
// daemon repairs a damaged table at once rather than at its next periodic check. Our own
// replacements are reported too; the Apply they trigger finds the table intact and changes
// nothing. Reports are coalesced: out needs a buffer of one. Watch returns nil when ctx ends,
// or an error when it cannot subscribe or the kernel ends the subscription (then only the
// periodic check is left). subscribed, if not nil, is called once the monitor listens: a
// deletion after it is reported.
func (t *Table) Watch(ctx context.Context, out chan<- struct{}, subscribed func()) error {
	c, err := t.conn()
	if err != nil {
		return err
	}
	// Everything, filtered here: the library's own filter drops events for narrower choices
	// (v0.3.0 tests its flags as (flags&1)<<type).
	mon := nftables.NewMonitor()
	events, err := c.AddMonitor(mon)
	if err != nil {
		return fmt.Errorf("connmark: watch nftables: %w", err)
	}
	defer mon.Close()
	if subscribed != nil {
		subscribed()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("connmark: the nftables monitor ended")
			}
			if ev.Error != nil || !concernsUs(ev) {
				continue
			}
			select {
			case out <- struct{}{}:
			default: // a report is pending already
			}
		}
	}
}

// concernsUs says whether a monitor event is the deletion of our table or something in it.
func concernsUs(ev *nftables.MonitorEvent) bool {
	switch ev.Type {
	case nftables.MonitorEventTypeDelTable, nftables.MonitorEventTypeDelChain, nftables.MonitorEventTypeDelSet, nftables.MonitorEventTypeDelRule:
	default:
		return false
	}
	var tb *nftables.Table
	switch d := ev.Data.(type) {
	case *nftables.Table:
		tb = d
	case *nftables.Chain:
		tb = d.Table
	case *nftables.Set:
		tb = d.Table
	case *nftables.Rule:
		tb = d.Table
	}
	return tb != nil && tb.Name == TableName && tb.Family == nftables.TableFamilyINet
}
