package routing

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func linkUpdate(typ uint16, name string, up, carrier bool) netlink.LinkUpdate {
	a := netlink.LinkAttrs{Name: name, Index: 7}
	if up {
		a.Flags |= net.FlagUp
		a.RawFlags |= unix.IFF_UP
	}
	if carrier {
		a.RawFlags |= unix.IFF_LOWER_UP
	}
	u := netlink.LinkUpdate{Link: &netlink.Veth{LinkAttrs: a}}
	u.Header.Type = typ
	return u
}

func kinds(evs []Event) []EventKind {
	var out []EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestLinkEventsAreTransitions(t *testing.T) {
	tests := []struct {
		name        string
		first, then netlink.LinkUpdate
		want        []EventKind
	}{
		{"losing the carrier is reported", linkUpdate(unix.RTM_NEWLINK, "wan1", true, true), linkUpdate(unix.RTM_NEWLINK, "wan1", true, false), []EventKind{CarrierLost}},
		{"regaining the carrier is reported", linkUpdate(unix.RTM_NEWLINK, "wan1", true, false), linkUpdate(unix.RTM_NEWLINK, "wan1", true, true), []EventKind{CarrierRegained}},
		{"setting the link down reports down and carrier loss", linkUpdate(unix.RTM_NEWLINK, "wan1", true, true), linkUpdate(unix.RTM_NEWLINK, "wan1", false, false), []EventKind{LinkDown, CarrierLost}},
		{"setting the link up is reported", linkUpdate(unix.RTM_NEWLINK, "wan1", false, false), linkUpdate(unix.RTM_NEWLINK, "wan1", true, false), []EventKind{LinkUp}},
		{"an unchanged link reports nothing", linkUpdate(unix.RTM_NEWLINK, "wan1", true, true), linkUpdate(unix.RTM_NEWLINK, "wan1", true, true), nil},
		{"a removed link is down", linkUpdate(unix.RTM_NEWLINK, "wan1", true, true), linkUpdate(unix.RTM_DELLINK, "wan1", true, true), []EventKind{LinkDown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMonitor(netns.None(), Settings{}, nil)
			m.links = map[int]linkState{}
			if evs := m.linkEvents(tt.first); len(evs) != 0 {
				t.Errorf("first sight reported %v", evs)
			}
			got := kinds(m.linkEvents(tt.then))
			if len(got) != len(tt.want) {
				t.Fatalf("events %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("events %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestRouteAndRuleEvents(t *testing.T) {
	gw := net.ParseIP("192.0.2.1").To4()
	tests := []struct {
		name string
		u    netlink.RouteUpdate
		want []EventKind
	}{
		{"deleting our route is reported as owned", netlink.RouteUpdate{Type: unix.RTM_DELROUTE,
			Route: netlink.Route{Table: 201, Protocol: 0x55, Gw: gw, LinkIndex: 7}}, []EventKind{OwnedDeleted}},
		{"adding our route is not news", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE,
			Route: netlink.Route{Table: 201, Protocol: 0x55, Gw: gw, LinkIndex: 7}}, nil},
		{"a new DHCP default in main is a gateway change", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE,
			Route: netlink.Route{Table: tableMain, Protocol: 16, Type: unix.RTN_UNICAST, Gw: gw, LinkIndex: 7}}, []EventKind{GatewayChanged}},
		{"a deleted default in main is a gateway change", netlink.RouteUpdate{Type: unix.RTM_DELROUTE,
			Route: netlink.Route{Table: tableMain, Protocol: 16, Type: unix.RTN_UNICAST, Gw: gw, LinkIndex: 7}}, []EventKind{GatewayChanged}},
		{"a specific route in main is not a gateway change", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE,
			Route: netlink.Route{Table: tableMain, Protocol: 2, Type: unix.RTN_UNICAST, LinkIndex: 7,
				Dst: &net.IPNet{IP: net.ParseIP("192.0.2.0").To4(), Mask: net.CIDRMask(24, 32)}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMonitor(netns.None(), Settings{}, nil)
			m.links = map[int]linkState{7: {name: "wan1"}}
			got := kinds(m.routeEvents(tt.u))
			if len(got) != len(tt.want) || len(got) > 0 && got[0] != tt.want[0] {
				t.Errorf("events %v, want %v", got, tt.want)
			}
		})
	}

	ruleMsg := func(typ uint16, prio uint32, proto uint8) []EventKind {
		hdr := nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET, Table: 200}}
		b := hdr.Serialize()
		p := make([]byte, 4)
		binary.NativeEndian.PutUint32(p, prio)
		b = append(b, nl.NewRtAttr(nl.FRA_PRIORITY, p).Serialize()...)
		b = append(b, nl.NewRtAttr(nl.FRA_PROTOCOL, []byte{proto}).Serialize()...)
		u, ok := parseRuleMsg(typ, b)
		if !ok {
			t.Fatalf("rule message not parsed")
		}
		m := NewMonitor(netns.None(), Settings{}, nil)
		return kinds(m.ruleEvents(u))
	}
	if got := ruleMsg(unix.RTM_DELRULE, 1040, 0x55); len(got) != 1 || got[0] != OwnedDeleted {
		t.Errorf("deleting our rule: events %v, want owned-deleted", got)
	}
	if got := ruleMsg(unix.RTM_DELRULE, 1040, 3); len(got) != 0 {
		t.Errorf("deleting a foreign rule in our band: events %v, want none", got)
	}
	if got := ruleMsg(unix.RTM_NEWRULE, 1040, 0x55); len(got) != 0 {
		t.Errorf("adding our rule: events %v, want none", got)
	}
	if _, ok := parseRuleMsg(unix.RTM_NEWROUTE, nil); ok {
		t.Error("a route message parsed as a rule")
	}
}

func TestALostSubscriptionAsksForAResync(t *testing.T) {
	m := NewMonitor(netns.None(), Settings{}, nil)
	subs := make(chan *subscription, 4)
	n := 0
	m.subscribe = func() (*subscription, error) {
		s := newSubscription()
		lost := n == 0 // the test closes the first one's routes itself
		n++
		go func() { // as the netlink readers do when their socket is closed
			<-s.done
			close(s.links)
			close(s.addrs)
			close(s.rules)
			if !lost {
				close(s.routes)
			}
		}()
		subs <- s
		return s, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Event, 4)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, out) }()

	first := <-subs
	close(first.routes) // what the netlink package does on ENOBUFS
	if e := <-out; e.Kind != ResyncNeeded {
		t.Errorf("event %s, want resync-needed", e)
	}
	second := <-subs
	second.rules <- ruleUpdate{deleted: true, family: unix.AF_INET, priority: 1040, table: 200, protocol: 0x55}
	if e := <-out; e.Kind != OwnedDeleted {
		t.Errorf("after resubscribing: event %s, want owned-deleted", e)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v, want context.Canceled", err)
	}
}

func TestRunGivesUpWhenItCannotSubscribe(t *testing.T) {
	m := NewMonitor(netns.None(), Settings{}, nil)
	m.subscribe = func() (*subscription, error) { return nil, unix.EPERM }
	err := m.Run(context.Background(), make(chan Event))
	if err == nil || !errors.Is(err, unix.EPERM) {
		t.Errorf("Run returned %v, want it to give up with EPERM", err)
	}
}
