package routing

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The pure half of the monitor: what a netlink update means for the daemon. No sockets here;
// monitor.go does the plumbing.

// EventKind says what the kernel reported.
type EventKind int

const (
	LinkDown        EventKind = iota // administratively down, or removed
	LinkUp                           // administratively up again
	CarrierLost                      // lower layer down (cable, peer, modem)
	CarrierRegained                  // lower layer up again
	AddrChanged                      // a global address of the interface came or went: re-learn with Link
	GatewayChanged                   // a foreign default route via the interface came or went: re-learn with Link
	OwnedDeleted                     // someone deleted one of our rules or routes: Apply again
	ResyncNeeded                     // events were lost (ENOBUFS): re-learn every uplink and Apply
)

var eventNames = [...]string{"link-down", "link-up", "carrier-lost", "carrier-regained",
	"addr-changed", "gateway-changed", "owned-deleted", "resync-needed"}

func (k EventKind) String() string {
	if k < 0 || int(k) >= len(eventNames) {
		return fmt.Sprintf("event(%d)", int(k))
	}
	return eventNames[k]
}

// Event is one thing the monitor saw.
type Event struct {
	Kind      EventKind
	Interface string // empty for OwnedDeleted and ResyncNeeded
	Index     int
	Detail    string // what exactly, for the log
}

func (e Event) String() string {
	if e.Interface == "" {
		return fmt.Sprintf("%s: %s", e.Kind, e.Detail)
	}
	return fmt.Sprintf("%s %s: %s", e.Kind, e.Interface, e.Detail)
}

// parseRuleMsg reads the fields we need from an RTM_NEWRULE/RTM_DELRULE message.
func parseRuleMsg(typ uint16, data []byte) (ruleUpdate, bool) {
	if typ != unix.RTM_NEWRULE && typ != unix.RTM_DELRULE || len(data) < unix.SizeofRtMsg {
		return ruleUpdate{}, false
	}
	hdr := nl.DeserializeRtMsg(data)
	u := ruleUpdate{deleted: typ == unix.RTM_DELRULE, family: int(hdr.Family), table: int(hdr.Table)}
	attrs, err := nl.ParseRouteAttr(data[unix.SizeofRtMsg:])
	if err != nil {
		return ruleUpdate{}, false
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case nl.FRA_PRIORITY:
			if len(a.Value) >= 4 {
				u.priority = int(binary.NativeEndian.Uint32(a.Value))
			}
		case nl.FRA_TABLE:
			if len(a.Value) >= 4 {
				u.table = int(binary.NativeEndian.Uint32(a.Value))
			}
		case nl.FRA_PROTOCOL:
			if len(a.Value) >= 1 {
				u.protocol = a.Value[0]
			}
		}
	}
	return u, true
}

func (m *Monitor) linkEvents(u netlink.LinkUpdate) []Event {
	a := u.Link.Attrs()
	if u.Header.Type == unix.RTM_DELLINK {
		delete(m.links, a.Index)
		return []Event{{Kind: LinkDown, Interface: a.Name, Index: a.Index, Detail: "interface removed"}}
	}
	now := linkState{name: a.Name, up: a.Flags&net.FlagUp != 0, carrier: a.RawFlags&unix.IFF_LOWER_UP != 0}
	before, known := m.links[a.Index]
	m.links[a.Index] = now
	if !known {
		return nil // first sight (ListExisting or a new interface): the daemon learns it with Link
	}
	var evs []Event
	ev := func(k EventKind, d string) {
		evs = append(evs, Event{Kind: k, Interface: a.Name, Index: a.Index, Detail: d})
	}
	switch {
	case before.up && !now.up:
		ev(LinkDown, "administratively down")
	case !before.up && now.up:
		ev(LinkUp, "administratively up")
	}
	switch {
	case before.carrier && !now.carrier:
		ev(CarrierLost, "no carrier")
	case !before.carrier && now.carrier:
		ev(CarrierRegained, "carrier")
	}
	return evs
}

func (m *Monitor) name(index int) string {
	if l, ok := m.links[index]; ok {
		return l.name
	}
	return fmt.Sprintf("#%d", index)
}

func (m *Monitor) addrEvents(u netlink.AddrUpdate) []Event {
	ip := addrOf(u.LinkAddress.IP)
	if !ip.IsValid() || !ip.IsGlobalUnicast() || u.Scope != int(netlink.SCOPE_UNIVERSE) {
		return nil
	}
	verb := "removed"
	if u.NewAddr {
		verb = "added"
	}
	return []Event{{Kind: AddrChanged, Interface: m.name(u.LinkIndex), Index: u.LinkIndex,
		Detail: fmt.Sprintf("address %s %s", u.LinkAddress.String(), verb)}}
}

func (m *Monitor) routeEvents(u netlink.RouteUpdate) []Event {
	r := u.Route
	deleted := u.Type == unix.RTM_DELROUTE
	if m.s.ownedRoute(r) {
		if deleted {
			return []Event{{Kind: OwnedDeleted, Detail: "route deleted: " + describeRoute(&r, m.names())}}
		}
		return nil
	}
	if !isDefault(r) || r.Protocol == m.s.Protocol || r.Type != unix.RTN_UNICAST {
		return nil
	}
	verb := "added"
	if deleted {
		verb = "deleted"
	}
	var evs []Event
	seen := map[int]bool{}
	add := func(idx int) {
		if idx != 0 && !seen[idx] {
			seen[idx] = true
			evs = append(evs, Event{Kind: GatewayChanged, Interface: m.name(idx), Index: idx,
				Detail: "default route " + verb + ": " + describeRoute(&r, m.names())})
		}
	}
	add(r.LinkIndex)
	for _, h := range r.MultiPath {
		add(h.LinkIndex)
	}
	return evs
}

func (m *Monitor) names() map[int]string {
	n := make(map[int]string, len(m.links))
	for i, l := range m.links {
		n[i] = l.name
	}
	return n
}

func (m *Monitor) ruleEvents(u ruleUpdate) []Event {
	if !u.deleted || !m.s.inBand(u.priority) || u.protocol != uint8(m.s.Protocol) {
		return nil
	}
	return []Event{{Kind: OwnedDeleted, Detail: fmt.Sprintf("rule deleted: %s pref %d table %s",
		familyName(u.family), u.priority, tableName(u.table))}}
}
