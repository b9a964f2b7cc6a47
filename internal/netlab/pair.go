package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/internal/ha"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// A pair is the gateway pair of issue #11 in namespaces:
//
//	          isp1 (br0: switch) ──┐         isp2 (br0: switch) ──┐
//	          ├─ga── gw-a wan1     │         ├─ga── gw-a wan2      │── inet (targets, servers)
//	          └─gb── gw-b wan1     │         └─gb── gw-b wan2      │
//	gw-a ═══════ sync ═══════ gw-b
//	lan (br0: switch + client 192.0.2.10) ─ga── gw-a lan0, ─gb── gw-b lan0
//
// Each box runs keepalived (VRRPv3, 100 ms adverts; the VIPs: LAN gateway and one per ISP
// segment), conntrackd (FTFW on the sync link) and optionally uplinkd, all in its own namespace
// with its own pid, lock and socket files in the pair's directory under /run.

// PairOptions shape a pair.
type PairOptions struct {
	// Prefix as in Options (empty: unique).
	Prefix string
	// NoConntrackd runs no conntrackd (and no notify scripts): connections die at a takeover.
	NoConntrackd bool
	// NoKeepalived builds the pair without starting keepalived (for tests of the build itself).
	NoKeepalived bool
	// Uplinkd is the uplinkd binary to run on both boxes (empty: none).
	Uplinkd string
	// Daemon is the uplinkd config (the same uplink ids, marks and tables on both boxes).
	Daemon DaemonConfig
	// NAT is PairNATForwarded (default, the example ruleset) or PairNATAll (the danger).
	NAT string
}

// Pair is a built gateway pair. Its methods are safe for concurrent use.
type Pair struct {
	*Lab
	opts  PairOptions
	dir   string
	paths [2]boxPaths

	mu    sync.Mutex
	procs [2]boxProcs
}

// boxProcs is what runs on a box.
type boxProcs struct {
	keepalived, conntrackd *Proc
	daemon                 *Daemon
}

// NewPair builds a pair and starts its daemons (gw-a first, so gw-a is the master). On error it
// removes whatever it had built.
func NewPair(ctx context.Context, opts PairOptions) (*Pair, error) {
	if opts.NAT == "" {
		opts.NAT = PairNATForwarded
	}
	if opts.NAT != PairNATForwarded && opts.NAT != PairNATAll {
		return nil, fmt.Errorf("netlab: pair NAT %q: want %q or %q", opts.NAT, PairNATForwarded, PairNATAll)
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "hp" + strconv.FormatInt(int64(os.Getpid()), 36) + strconv.FormatInt(labSeq.Add(1), 36)
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	l := &Lab{prefix: prefix, nat: NATSNAT, roles: pairRoles}
	for _, r := range pairRoles {
		if nsExists(l.NS(r)) {
			return nil, fmt.Errorf("netlab: namespace %s already exists (a lab with prefix %q is up)", l.NS(r), prefix)
		}
	}
	// Under /run (root's, not world-writable): keepalived runs notify scripts only from paths
	// no one else may write.
	dir, err := os.MkdirTemp("/run", "uplinkd-pair-")
	if err != nil {
		return nil, fmt.Errorf("netlab: pair directory: %w", err)
	}
	p := &Pair{Lab: l, opts: opts, dir: dir}
	fail := func(err error) (*Pair, error) { return nil, errors.Join(err, p.Close()) }
	for _, b := range Boxes {
		p.paths[b] = newBoxPaths(filepath.Join(dir, b.String()))
		if err := p.writeBoxFiles(b); err != nil {
			return fail(err)
		}
	}
	if err := p.build(); err != nil {
		return fail(err)
	}
	if err := l.StartServers(); err != nil {
		return fail(err)
	}
	if err := l.StartChat(); err != nil {
		return fail(err)
	}
	if err := l.StartPush(); err != nil {
		return fail(err)
	}
	for _, b := range Boxes {
		if err := p.StartBox(ctx, b); err != nil {
			return fail(err)
		}
		if b == BoxA && !opts.NoKeepalived {
			if err := p.WaitMaster(ctx, BoxA, 10*time.Second); err != nil {
				return fail(err)
			}
		}
	}
	return p, nil
}

func (p *Pair) writeBoxFiles(b Box) error {
	ps := p.paths[b]
	if err := os.MkdirAll(ps.dir, 0o700); err != nil {
		return err
	}
	files := []struct {
		path, text string
		mode       os.FileMode
	}{
		{ps.keepalivedConf, pairKeepalivedConf(ps, !p.opts.NoConntrackd), 0o644},
		{ps.notify, pairNotify(ps), 0o755},
		{ps.conntrackdConf, pairConntrackdConf(ps, b), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte(f.text), f.mode); err != nil {
			return fmt.Errorf("netlab: pair: %w", err)
		}
	}
	return ha.WriteValue(ps.track, 0)
}

// build creates namespaces, switches, links, addresses, routes and nftables.
func (p *Pair) build() error {
	l := p.Lab
	var add strings.Builder
	for _, r := range pairRoles {
		fmt.Fprintf(&add, "netns add %s\n", l.NS(r))
	}
	if err := runIP(nil, add.String()); err != nil {
		return err
	}
	for _, r := range pairRoles {
		sr := r
		if r == RoleGWA || r == RoleGWB {
			sr = RoleGW
		}
		args := append([]string{"netns", "exec", l.NS(r), "sysctl", "-q", "-w"}, sysctls(sr, false)...)
		if out, err := run(nil, "ip", args...); err != nil {
			return fmt.Errorf("netlab: sysctl in %s: %w: %s", l.NS(r), err, out)
		}
	}
	steps := []struct {
		role, script string
	}{
		{RoleLAN, pairSwitchScript()}, {RoleISP1, pairSwitchScript()}, {RoleISP2, pairSwitchScript()},
		{RoleGWA, pairLinkScript(BoxA, l.NS)}, {RoleGWB, pairLinkScript(BoxB, l.NS)},
		{RoleInet, linkScript(RoleInet, l.NS)},
		{RoleLAN, pairPortsScript()}, {RoleISP1, pairPortsScript()}, {RoleISP2, pairPortsScript()},
		{RoleGWA, pairAddrScript(RoleGWA)}, {RoleGWB, pairAddrScript(RoleGWB)},
		{RoleISP1, pairAddrScript(RoleISP1)}, {RoleISP2, pairAddrScript(RoleISP2)},
		{RoleInet, pairAddrScript(RoleInet)}, {RoleLAN, pairAddrScript(RoleLAN)},
	}
	for _, s := range steps {
		ns := l.NS(s.role)
		if err := runIP(&ns, s.script); err != nil {
			return err
		}
	}
	nfts := []struct{ role, script string }{
		{RoleGWA, pairNft(p.opts.NAT)}, {RoleGWB, pairNft(p.opts.NAT)},
		{RoleISP1, pairISPNft(Uplinks[0])}, {RoleISP2, pairISPNft(Uplinks[1])},
		{RoleInet, nftScript(RoleInet, NATMasquerade, false)},
	}
	for _, n := range nfts {
		if err := l.nft(n.role, n.script); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every process, removes the namespaces and the pair's directory.
func (p *Pair) Close() error {
	err := p.Lab.Close()
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
	return err
}

// Dir is the pair's directory (configs, pid files, logs of both boxes).
func (p *Pair) Dir() string { return p.dir }

// TrackFile is box b's keepalived track file (what uplinkd's internal/ha would write).
func (p *Pair) TrackFile(b Box) string { return p.paths[b].track }

// Options returns the options the pair was built with.
func (p *Pair) Options() PairOptions { return p.opts }

// StartBox starts box b's daemons: conntrackd (and waits for its socket), keepalived, uplinkd.
// It brings the box's links up first (after PowerCut).
func (p *Pair) StartBox(ctx context.Context, b Box) error {
	ps := p.paths[b]
	ns := p.NS(b.Role())
	var up strings.Builder
	for _, dev := range []string{IfLAN, IfWAN1, IfWAN2, IfSync} {
		fmt.Fprintf(&up, "link set %s up\n", dev)
	}
	// Links that went down took their IPv6 addresses and routes along: restore what the box's
	// network configuration would set again at boot.
	for i, u := range Uplinks {
		fmt.Fprintf(&up, "addr replace %s/%d dev %s\n", PairWAN6[i][b], u.Prefix6.Bits(), u.GWIf)
	}
	fmt.Fprintf(&up, "route replace default via %s dev %s\n", Uplinks[0].ISP4, Uplinks[0].GWIf)
	fmt.Fprintf(&up, "route replace default via %s dev %s\n", Uplinks[0].ISP6, Uplinks[0].GWIf)
	if err := runIP(&ns, up.String()); err != nil {
		return err
	}
	var bp boxProcs
	if !p.opts.NoConntrackd {
		os.Remove(ps.ctdLock)
		os.Remove(ps.ctdSocket)
		proc, err := p.Start(context.Background(), b.Role(), "conntrackd", "-C", ps.conntrackdConf)
		if err != nil {
			return err
		}
		bp.conntrackd = proc
		if err := waitFile(ctx, ps.ctdSocket, 5*time.Second, proc); err != nil {
			return fmt.Errorf("netlab: conntrackd on %s: %w\n%s", b, err, lastLines(proc.Output(), 10))
		}
	}
	if !p.opts.NoKeepalived {
		for _, f := range []string{ps.kaPid, ps.vrrpPid, ps.checkersPid} {
			os.Remove(f)
		}
		proc, err := p.Start(context.Background(), b.Role(), "keepalived", "--dont-fork", "--log-console", "--log-detail",
			"--no-syslog", "--vrrp", "--use-file", ps.keepalivedConf, "--pid", ps.kaPid, "--vrrp_pid", ps.vrrpPid,
			"--checkers_pid", ps.checkersPid)
		if err != nil {
			return err
		}
		bp.keepalived = proc
		if err := waitFile(ctx, ps.vrrpPid, 5*time.Second, proc); err != nil {
			return fmt.Errorf("netlab: keepalived on %s: %w\n%s", b, err, lastLines(proc.Output(), 20))
		}
	}
	if p.opts.Uplinkd != "" {
		cfg := p.opts.Daemon
		cfg.Extra += fmt.Sprintf("\n[ha]\ntrack_file = %q\n", ps.track) // uplinkd steers this box's keepalived
		d, err := p.StartDaemon(ctx, DaemonOptions{Binary: p.opts.Uplinkd, Config: cfg, Role: b.Role(), InfoLogs: true})
		if err != nil {
			return fmt.Errorf("netlab: uplinkd on %s: %w", b, err)
		}
		bp.daemon = d
	}
	p.mu.Lock()
	p.procs[b] = bp
	p.mu.Unlock()
	return nil
}

// waitFile waits until path exists, proc exits, ctx ends or limit passes.
func waitFile(ctx context.Context, path string, limit time.Duration, proc *Proc) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-proc.Done():
			return fmt.Errorf("exited before %s appeared: %v", path, proc.Err())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not appear within %v", path, limit)
}

// Daemon returns box b's uplinkd (nil when the pair runs none or the box is cut).
func (p *Pair) Daemon(b Box) *Daemon {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[b].daemon
}

// Keepalived and Conntrackd return box b's processes (nil when not running).
func (p *Pair) Keepalived(b Box) *Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[b].keepalived
}

// Conntrackd returns box b's conntrackd (nil when not running).
func (p *Pair) Conntrackd(b Box) *Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[b].conntrackd
}

// PowerCut is a box losing power: every process the lab started on it (keepalived and its VRRP
// child, conntrackd, uplinkd, anything they spawned) is stopped with SIGSTOP and then SIGKILLed
// — so keepalived neither respawns its child nor sends a priority-0 goodbye — and then all the
// box's links go down.
func (p *Pair) PowerCut(b Box) error {
	p.mu.Lock()
	bp := p.procs[b]
	p.procs[b] = boxProcs{}
	p.mu.Unlock()
	var roots []int
	for _, proc := range []*Proc{bp.keepalived, bp.conntrackd} {
		if proc != nil {
			roots = append(roots, proc.Pid())
		}
	}
	if bp.daemon != nil {
		roots = append(roots, bp.daemon.Proc().Pid())
	}
	pids := descendants(roots)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	ns := p.NS(b.Role())
	var down strings.Builder
	for _, dev := range []string{IfLAN, IfWAN1, IfWAN2, IfSync} {
		fmt.Fprintf(&down, "link set %s down\n", dev)
	}
	err := runIP(&ns, down.String())
	// What lived in the box's memory is gone too: the VIPs keepalived had set, the connection
	// table. (A box that comes back starts without them, as after a reboot.)
	err = errors.Join(err, p.forget(b))
	// Reap: the processes are the lab's; wait for their exits so nothing is left behind.
	for _, proc := range []*Proc{bp.keepalived, bp.conntrackd} {
		if proc != nil {
			<-proc.Done()
		}
	}
	if bp.daemon != nil {
		bp.daemon.Stop() // already dead: this ends its event follower and removes its directory
	}
	return err
}

// forget removes the VIPs from box b's interfaces and flushes its conntrack table.
func (p *Pair) forget(b Box) error {
	h, err := netns.GetFromPath(nsPath(p.NS(b.Role())))
	if err != nil {
		return err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return err
	}
	defer nh.Close()
	vips := map[netip.Addr]string{PairVIPLAN: IfLAN, PairVIPWAN[0]: IfWAN1, PairVIPWAN[1]: IfWAN2}
	prefixes := map[string]int{IfLAN: LANPrefix4.Bits(), IfWAN1: WAN1Prefix4.Bits(), IfWAN2: WAN2Prefix4.Bits()}
	for vip, dev := range vips {
		link, err := nh.LinkByName(dev)
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr(fmt.Sprintf("%s/%d", vip, prefixes[dev]))
		if err != nil {
			return err
		}
		_ = nh.AddrDel(link, a) // absent when the box was not master
	}
	return nh.ConntrackTableFlush(netlink.ConntrackTable)
}

// descendants returns roots and all their descendants (from /proc), parents before children.
func descendants(roots []int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	seen := map[int]bool{}
	queue := append([]int(nil), roots...)
	for len(queue) > 0 && len(out) < 10000 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		out = append(out, pid)
		queue = append(queue, children[pid]...)
	}
	return out
}

// BreakISPFor makes uplink isp die silently for box b only: the ISP drops everything the box
// sends (by its MAC), while it keeps answering on the wire. Break(isp, SilentFailure) kills the
// ISP for both boxes. HealISP undoes both.
func (p *Pair) BreakISPFor(isp int, b Box) error {
	u, err := uplink(isp)
	if err != nil {
		return err
	}
	return p.nft(u.Role, fmt.Sprintf("add rule inet %s fault ether saddr %s drop\n", nftTable, pairMAC(b, u.GWIf)))
}

// HealISP undoes BreakISPFor and Break(isp, SilentFailure).
func (p *Pair) HealISP(isp int) error {
	u, err := uplink(isp)
	if err != nil {
		return err
	}
	return p.nft(u.Role, fmt.Sprintf("flush chain inet %s fault\n", nftTable))
}

// SetSync sets the sync link down (on both ends: a cut cable) or up.
func (p *Pair) SetSync(up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	var err error
	for _, b := range Boxes {
		ns := p.NS(b.Role())
		err = errors.Join(err, runIP(&ns, fmt.Sprintf("link set %s %s\n", IfSync, state)))
	}
	return err
}

// SetLink sets one of box b's interfaces down or up (e.g. its LAN port dies).
func (p *Pair) SetLink(b Box, dev string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	ns := p.NS(b.Role())
	return runIP(&ns, fmt.Sprintf("link set %s %s\n", dev, state))
}

// Standby puts box b in standby (on) or makes it active again: through its uplinkd (what
// `uplinkctl standby` does) when the pair runs one, else by writing the track file as
// uplinkd's internal/ha would (the standby value, or 0: every uplink usable).
func (p *Pair) Standby(b Box, on bool) error {
	if d := p.Daemon(b); d != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return d.Client().Standby(ctx, on)
	}
	v := 0
	if on {
		v = ha.StandbyValue
	}
	return ha.WriteValue(p.paths[b].track, v)
}

// Holds reports which of the VIPs box b holds, as addresses present on its interfaces.
func (p *Pair) Holds(b Box) (lan bool, wan [2]bool, err error) {
	addrs, err := p.addrs(b)
	if err != nil {
		return false, wan, err
	}
	lan = addrs[PairVIPLAN]
	for i := range wan {
		wan[i] = addrs[PairVIPWAN[i]]
	}
	return lan, wan, nil
}

func (p *Pair) addrs(b Box) (map[netip.Addr]bool, error) {
	h, err := netns.GetFromPath(nsPath(p.NS(b.Role())))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	list, err := nh.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]bool{}
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out[ip.Unmap()] = true
		}
	}
	return out, nil
}

// Master returns the box holding every VIP; ok is false when no box holds them all or both
// hold the LAN VIP (split brain).
func (p *Pair) Master() (Box, bool) {
	var all [2]bool
	var lanHolders int
	for _, b := range Boxes {
		lan, wan, err := p.Holds(b)
		if err != nil {
			continue
		}
		if lan {
			lanHolders++
		}
		all[b] = lan && wan[0] && wan[1]
	}
	if lanHolders != 1 {
		return 0, false
	}
	for _, b := range Boxes {
		if all[b] {
			return b, true
		}
	}
	return 0, false
}

// LANVIPHolders counts the boxes that hold the LAN VIP (2: split brain on the LAN).
func (p *Pair) LANVIPHolders() int {
	n := 0
	for _, b := range Boxes {
		if lan, _, err := p.Holds(b); err == nil && lan {
			n++
		}
	}
	return n
}

// WaitMaster polls (every 10 ms) until box b holds every VIP and the peer none of the LAN's,
// ctx ends or limit passes.
func (p *Pair) WaitMaster(ctx context.Context, b Box, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if m, ok := p.Master(); ok && m == b {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("netlab: %s did not become master within %v (%s)", b, limit, p.DescribeVIPs())
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DescribeVIPs says which box holds which virtual address, for failure reports.
func (p *Pair) DescribeVIPs() string {
	var parts []string
	for _, b := range Boxes {
		lan, wan, err := p.Holds(b)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", b, err))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s holds lan=%v wan1=%v wan2=%v", b, lan, wan[0], wan[1]))
	}
	return strings.Join(parts, "; ")
}

// Logs returns what box b's keepalived, conntrackd and notify script said (for failures).
func (p *Pair) Logs(b Box) string {
	var s strings.Builder
	p.mu.Lock()
	bp := p.procs[b]
	p.mu.Unlock()
	if bp.keepalived != nil {
		fmt.Fprintf(&s, "--- %s keepalived:\n%s\n", b, lastLines(bp.keepalived.Output(), 40))
	}
	for _, f := range []string{p.paths[b].notifyLog, p.paths[b].ctdLog} {
		if out, err := os.ReadFile(f); err == nil {
			fmt.Fprintf(&s, "--- %s %s:\n%s\n", b, filepath.Base(f), lastLines(out, 30))
		}
	}
	if bp.daemon != nil {
		fmt.Fprintf(&s, "--- %s uplinkd:\n%s\n", b, lastLines(bp.daemon.Proc().Output(), 30))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := p.Exec(ctx, b.Role(), "conntrack", "-L", "-p", "tcp")
	fmt.Fprintf(&s, "--- %s conntrack -L -p tcp:\n%s\n", b, out)
	return s.String()
}

// Conntrack runs `conntrackd -C … args` on box b (e.g. "-s", "-e" for the external cache).
func (p *Pair) Conntrack(ctx context.Context, b Box, args ...string) ([]byte, error) {
	return p.Exec(ctx, b.Role(), append([]string{"conntrackd", "-C", p.paths[b].conntrackdConf}, args...)...)
}
