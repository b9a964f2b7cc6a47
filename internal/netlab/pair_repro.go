package netlab

import (
	"context"
	"fmt"
	"strings"
	"time"

	up "github.com/uplinkd/uplinkd/uplink"
)

// BackupNATReport is what ReproduceBackupNAT saw.
type BackupNATReport struct {
	BackupStates string // the backup uplinkd's verdicts before the takeover
	BackupDown   int    // of its uplinks, how many it judged down
	BackupNotUp  int    // of its uplinks, how many it did not judge up (down or degraded)
	SyncedBefore int    // the LAN's connections marked for isp1 in the backup's external cache
	KeptAfter    int    // of the connections NATed to isp1's VIP, how many the new master's kernel has 7 s after the takeover
	Cleanups     int    // "conntrack cleanup" lines the new master's uplinkd logged after the takeover
	Takeover     time.Duration
	Log          string // the new master's uplinkd output after the takeover
}

func (r BackupNATReport) String() string {
	return fmt.Sprintf("backup judged %s (%d down); %d connections synced before, %d in the new master's table 7 s after the takeover (%v); %d uplinkd conntrack cleanups",
		r.BackupStates, r.BackupDown, r.SyncedBefore, r.KeptAfter, r.Takeover.Round(time.Millisecond), r.Cleanups)
}

// ReproduceBackupNAT is the colleague's scenario: with uplinkd on both boxes (gw-a master), n
// UDP connections from the LAN (one datagram each, answered) are NATed to isp1's VIP and synced
// to gw-b; then gw-a loses power and gw-b takes over. It reports gw-b's verdicts before, the
// synced connections, and how many of them gw-b's kernel still holds after the takeover.
func (p *Pair) ReproduceBackupNAT(ctx context.Context, n int) (BackupNATReport, error) {
	var r BackupNATReport
	a, b := p.Daemon(BoxA), p.Daemon(BoxB)
	if a == nil || b == nil {
		return r, fmt.Errorf("netlab: ReproduceBackupNAT needs uplinkd on both boxes")
	}
	// Give the backup's uplinkd time for its verdicts to settle (down_after rounds).
	time.Sleep(3 * time.Second)
	st, err := b.Status(ctx)
	if err != nil {
		return r, err
	}
	var parts []string
	for _, u := range st.Uplinks {
		parts = append(parts, fmt.Sprintf("%s %s", u.Name, u.State))
		if u.State == up.Down {
			r.BackupDown++
		}
		if u.State != up.Up {
			r.BackupNotUp++
		}
	}
	r.BackupStates = strings.Join(parts, ", ")
	if _, _, err := p.SpreadUDP(RoleLAN, n); err != nil {
		return r, fmt.Errorf("netlab: spread UDP: %w", err)
	}
	// Wait (bounded) until gw-b's external cache has them.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, err := p.Conntrack(ctx, BoxB, "-e", "ct")
		if err != nil {
			return r, err
		}
		r.SyncedBefore = 0
		for _, line := range strings.Split(string(out), "\n") {
			// conntrackd -e shows the original tuple and the mark: isp1's connections carry its.
			if strings.Contains(line, "src="+Client4.String()) && strings.Contains(line, fmt.Sprintf("mark=%d ", Uplinks[0].Mark)) {
				r.SyncedBefore++
			}
		}

		if r.SyncedBefore >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := len(strings.Split(string(b.Proc().Output()), "\n"))
	at := time.Now()
	if err := p.PowerCut(BoxA); err != nil {
		return r, err
	}
	if err := p.WaitMaster(ctx, BoxB, 5*time.Second); err != nil {
		return r, err
	}
	r.Takeover = time.Since(at)
	// Long enough for the new master's uplinkd to judge its uplinks again (up_after rounds).
	time.Sleep(7 * time.Second)
	r.KeptAfter, err = p.ConntrackCount(BoxB, PairVIPWAN[0])
	if err != nil {
		return r, err
	}
	lines := strings.Split(string(b.Proc().Output()), "\n")
	for _, l := range lines[min(before, len(lines)):] {
		if strings.Contains(l, "conntrack cleanup") {
			r.Cleanups++
		}
	}
	r.Log = strings.Join(lines[min(before, len(lines)):], "\n")
	return r, nil
}
