package connmark

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Table is the daemon's nftables table in one network namespace. It is safe
// for concurrent use: the run loop applies it, and the engine's connection counter
// calls Counts from its own goroutine.
type Table struct {
	ns  netns.NsHandle
	log *slog.Logger

	mu sync.Mutex // one transaction at a time
}

// NewTable returns the table in namespace ns (netns.None() for the caller's
// own). It touches nothing in the kernel until Apply.
func NewTable(ns netns.NsHandle, log *slog.Logger) *Table {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{ns: ns, log: log}
}

func (t *Table) conn(opts ...nftables.ConnOption) (*nftables.Conn, error) {
	if t.ns.IsOpen() {
		opts = append(opts, nftables.WithNetNSFd(int(t.ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("connmark: open nftables netlink socket: %w", err)
	}
	return c, nil
}

func ourTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// Replace makes the table match p: the whole table is replaced in one transaction, so
// packets see the old ruleset or the new one, never a mix; connection marks live in conntrack
// and survive the replacement. Deciding when is the caller's (the dataplane's cache).
func (t *Table) Replace(p Plan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	rs := build(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	size, err := measure(rs)
	if err != nil {
		return err
	}
	c, err := t.conn(nftables.WithSockOptions(size.sockOption))
	if err != nil {
		return err
	}
	if err := replace(c, rs); err != nil {
		return err
	}
	t.log.Info("connmark: table replaced", "table", "inet "+TableName,
		"uplinks", len(p.Uplinks), "services", len(p.Services), "affinity", p.Affinity,
		"messages", size.messages, "bytes", size.bytes)
	return nil
}

// Check says what is wrong with the table in the kernel compared with p ("table missing",
// "chain X has N rules, want M"), or "" when it looks intact. It compares chains and rule
// counts, not rule contents.
func (t *Table) Check(p Plan) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.conn()
	if err != nil {
		return "", err
	}
	return intact(c, build(p))
}

// replace sends the whole table as one transaction: create the table if it
// is missing, delete it with all it holds, and build it anew.
func replace(c *nftables.Conn, rs ruleset) error {
	tbl := ourTable()
	c.AddTable(tbl)
	c.DelTable(tbl)
	c.AddTable(tbl)

	chains := map[string]*nftables.Chain{}
	for _, ch := range rs.chains {
		nc := &nftables.Chain{Name: ch.name, Table: tbl}
		if ch.hook != "" {
			accept := nftables.ChainPolicyAccept
			nc.Type = nftables.ChainType(ch.ctype)
			nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(ch.prio.num))
			nc.Policy = &accept
			switch ch.hook {
			case "prerouting":
				nc.Hooknum = nftables.ChainHookPrerouting
			case "output":
				nc.Hooknum = nftables.ChainHookOutput
			case "postrouting":
				nc.Hooknum = nftables.ChainHookPostrouting
			}
		}
		chains[ch.name] = c.AddChain(nc)
	}
	for _, name := range rs.counters {
		c.AddObj(&nftables.CounterObj{Table: tbl, Name: name})
	}
	b := &batch{table: tbl, named: map[string]*nftables.Set{}}
	for _, ns := range rs.sets {
		set := &nftables.Set{Table: tbl, Name: ns.name, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
		if ns.keyType == "mark" {
			set.KeyType = nftables.TypeMark
		}
		if ns.isMap {
			set.IsMap, set.DataType = true, nftables.TypeVerdict
		}
		b.nextID++
		set.ID = b.nextID
		elems := make([]nftables.SetElement, len(ns.entries))
		for i, e := range ns.entries {
			elems[i] = nftables.SetElement{Key: e.keyBytes(ns.keyType)}
			if ns.isMap {
				elems[i].VerdictData = gotoVerdict(e.chain)
			}
		}
		if err := c.AddSet(set, elems); err != nil {
			return fmt.Errorf("connmark: add set %s: %w", ns.name, err)
		}
		b.named[ns.name] = set
	}
	for _, ch := range rs.chains {
		for _, r := range ch.rules {
			var ex []expr.Any
			b.sets = b.sets[:0]
			for _, s := range r.stmts {
				ex = append(ex, s.exprs(b)...)
			}
			for _, s := range b.sets {
				if err := c.AddSet(s.set, s.elems); err != nil {
					return fmt.Errorf("connmark: chain %s rule %q: add set: %w", ch.name, r.text(), err)
				}
			}
			nr := &nftables.Rule{Table: tbl, Chain: chains[ch.name], Exprs: ex}
			if r.comment != "" {
				nr.UserData = userdata.AppendString(nil, userdata.TypeComment, r.comment)
			}
			c.AddRule(nr)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("connmark: replace table inet %s: %w", TableName, err)
	}
	return nil
}

// intact says what is wrong with the table in the kernel compared with rs,
// or "" when every chain is there with the expected number of rules. It
// does not compare rule contents: a rule replaced in place goes unnoticed.
func intact(c *nftables.Conn, rs ruleset) (string, error) {
	tbl, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) || tbl == nil {
		return "table missing", nil
	}
	if err != nil {
		return "", fmt.Errorf("connmark: get table inet %s: %w", TableName, err)
	}
	for _, ch := range rs.chains {
		rules, err := c.GetRules(tbl, &nftables.Chain{Name: ch.name, Table: tbl})
		if errors.Is(err, unix.ENOENT) {
			return "chain " + ch.name + " missing", nil
		}
		if err != nil {
			return "", fmt.Errorf("connmark: list rules of chain %s: %w", ch.name, err)
		}
		if len(rules) != len(ch.rules) {
			return fmt.Sprintf("chain %s has %d rules, want %d", ch.name, len(rules), len(ch.rules)), nil
		}
	}
	return "", nil
}

// Exists reports whether our table is in the kernel.
func (t *Table) Exists() (bool, error) {
	c, err := t.conn()
	if err != nil {
		return false, err
	}
	tbl, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) || (err == nil && tbl == nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("connmark: get table inet %s: %w", TableName, err)
	}
	return true, nil
}

// Cleanup deletes our table, and nothing else; no table is not an error.
// Connection marks stay in conntrack until their connections end.
func (t *Table) Cleanup() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.conn()
	if err != nil {
		return err
	}
	tbl := ourTable()
	c.AddTable(tbl) // so the delete cannot fail with "no such table"
	c.DelTable(tbl)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("connmark: delete table inet %s: %w", TableName, err)
	}
	t.log.Info("connmark: table deleted", "table", "inet "+TableName)
	return nil
}

// Counts returns the number of live connections (IPv4 and IPv6) per uplink
// mark (conntrack mark & MarkMask); key 0 counts connections that no uplink
// carries (local, LAN to LAN, not yet picked). See live for what counts.
// One conntrack dump per call, both families at once.
func (t *Table) Counts() (map[uint32]int, error) {
	var h *netlink.Handle
	var err error
	if t.ns.IsOpen() {
		h, err = netlink.NewHandleAt(t.ns, unix.NETLINK_NETFILTER)
	} else {
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
	}
	if err != nil {
		return nil, fmt.Errorf("connmark: open conntrack netlink socket: %w", err)
	}
	defer h.Close()
	flows, err := dumpConntrack(h)
	if err != nil {
		return nil, err
	}
	counts := map[uint32]int{}
	for _, f := range flows {
		if live(f) {
			counts[f.Mark&MarkMask]++
		}
	}
	return counts, nil
}

// live says whether a conntrack entry is a connection that is still open.
// A TCP entry counts from its first SYN until either side sends a FIN or a
// reset: an entry in FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT or CLOSE is
// a connection ending or ended, which the kernel keeps for up to two
// minutes to absorb late packets (500 short connections used to show as
// 397 "connections"). A half-closed connection (CLOSE_WAIT) is counted as
// ending: one side is done, and it is what a shutdown looks like. Other
// protocols (UDP, ICMP, ...) have no end on the wire: their entry counts
// while it exists, until its timeout.
func live(f *netlink.ConntrackFlow) bool {
	if f.Forward.Protocol != unix.IPPROTO_TCP {
		return true
	}
	tcp, ok := f.ProtoInfo.(*netlink.ProtoInfoTCP)
	if !ok {
		return true // no state reported: count it rather than hide it
	}
	switch tcp.State {
	case nl.TCP_CONNTRACK_SYN_SENT, nl.TCP_CONNTRACK_SYN_RECV, nl.TCP_CONNTRACK_ESTABLISHED,
		nl.TCP_CONNTRACK_SYN_SENT2:
		return true
	}
	return false
}

// dumpConntrack lists the conntrack table, both address families in one
// dump (AF_UNSPEC).
func dumpConntrack(h *netlink.Handle) ([]*netlink.ConntrackFlow, error) {
	flows, err := routing.RetryDump(func() ([]*netlink.ConntrackFlow, error) {
		return h.ConntrackTableList(netlink.ConntrackTable, unix.AF_UNSPEC)
	})
	if err != nil {
		return nil, fmt.Errorf("connmark: dump conntrack table: %w", err)
	}
	return flows, nil
}

// batch collects the anonymous sets one rule needs; they must be added to
// the transaction before the rule that looks them up.
type batch struct {
	table  *nftables.Table
	nextID uint32
	named  map[string]*nftables.Set // the table's named sets, by name
	sets   []pendingSet             // anonymous sets of the rule being built
}

type pendingSet struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

func (b *batch) anonSet(s *nftables.Set, elems []nftables.SetElement) *nftables.Set {
	b.nextID++
	s.ID = b.nextID
	s.Table = b.table
	s.Anonymous = true
	s.Constant = true
	s.Name = "__set%d" // the kernel fills in a free number
	if s.IsMap {
		s.Name = "__map%d"
	}
	b.sets = append(b.sets, pendingSet{set: s, elems: elems})
	return s
}

// Received returns, per uplink mark, how many packets have arrived on the uplink for
// connections through it (their replies) since the table was last built: proof that the
// uplink works, which the engine weighs when probes go unanswered. One netlink dump.
func (t *Table) Received() (map[uint32]uint64, error) {
	c, err := t.conn()
	if err != nil {
		return nil, err
	}
	objs, err := c.GetObjects(ourTable())
	if err != nil {
		return nil, fmt.Errorf("connmark: read the counters of table inet %s: %w", TableName, err)
	}
	out := map[uint32]uint64{}
	for _, o := range objs {
		co, ok := o.(*nftables.CounterObj)
		if !ok {
			continue
		}
		var id int
		if _, err := fmt.Sscanf(co.Name, "rx_%d", &id); err == nil && id > 0 {
			out[uplink.MarkOf(id)] = co.Packets
		}
	}
	return out, nil
}
