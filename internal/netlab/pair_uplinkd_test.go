package netlab_test

import (
	"context"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
	up "github.com/uplinkd/uplinkd/uplink"
)

func uplinkStates(st api.Status) map[string]up.State {
	m := map[string]up.State{}
	for _, u := range st.Uplinks {
		m[u.Name] = u.State
	}
	return m
}

// TestPairUplinkdISPSilent: isp1's upstream dies silently (for both boxes). The master's
// uplinkd moves the LAN to isp2; the VIPs stay where they are (both boxes lost the same ISP, so
// neither has more usable uplinks than the other).
func TestPairUplinkdISPSilent(t *testing.T) {
	bin := testkit.Uplinkd(t)
	p := testkit.Pair(t, netlab.PairOptions{Uplinkd: bin})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := p.Daemon(netlab.BoxA)
	var at time.Time
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42010, Quiet: 2 * time.Second,
		Settled: func(ctx context.Context) error {
			_, err := d.WaitEvent(ctx, 10*time.Second, at, "the master's uplinkd to move to isp2", netlab.ActiveIs("isp2"))
			return err
		},
	}, func() error { at = time.Now(); return p.Break(1, netlab.SilentFailure) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "isp1 silent", ob)
	if ob.VIPMoved || ob.SplitBrain {
		t.Errorf("VIPs moved (%v) or split brain (%v)", ob.VIPMoved, ob.SplitBrain)
	}
	if !ob.UDPSurvived || ob.LANOutage > 4*time.Second {
		t.Errorf("the LAN did not recover through isp2: outage %v, %v", ob.LANOutage, ob.Details)
	}
}

// TestPairBackupProbes checks both NAT variants: with SNAT for forwarded LAN traffic only (the
// example) and with the "everything leaving wanN takes the VIP" rule, which used to make the
// backup's probes leave with an address it does not hold (it judged every uplink down, and at
// takeover its NAT cleanup deleted the synced connections), the backup judges its uplinks up
// and the connections it holds in its external cache survive a takeover.
func TestPairBackupProbes(t *testing.T) {
	bin := testkit.Uplinkd(t)
	for _, nat := range []string{netlab.PairNATForwarded, netlab.PairNATAll} {
		t.Run(nat, func(t *testing.T) {
			p := testkit.Pair(t, netlab.PairOptions{Uplinkd: bin, NAT: nat})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r, err := p.ReproduceBackupNAT(ctx, 300)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s\nnew master's uplinkd after the takeover:\n%s", nat, r, r.Log)
			// Whatever the NAT rule says, the backup's probes keep their own source address, so
			// it judges both uplinks up, and the takeover keeps every synced connection.
			if r.BackupNotUp > 0 || r.Cleanups > 0 || r.KeptAfter < r.SyncedBefore*9/10 {
				t.Errorf("the backup's view or the synced connections were lost: %s", r)
			}
		})
	}
}

// TestPairUplinkctlStandby: `uplinkctl standby` on the master (its uplinkd writes keepalived's
// track file): the peer takes over with every kind of connection kept; `active` ends it and
// the box stays backup (no bounce).
func TestPairUplinkctlStandby(t *testing.T) {
	bin := testkit.Uplinkd(t)
	p := testkit.Pair(t, netlab.PairOptions{Uplinkd: bin})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42012,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, netlab.BoxB, 5*time.Second) },
	}, func() error { return p.Standby(netlab.BoxA, true) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "uplinkctl standby", ob)
	if ob.After != netlab.BoxB || !ob.TCPSurvived || !ob.PushSurvived || !ob.UDPSurvived || ob.LANOutage > 100*time.Millisecond {
		t.Errorf("standby handover: outage %v, %v", ob.LANOutage, ob.Details)
	}
	st, err := p.Daemon(netlab.BoxA).Status(ctx)
	if err != nil || st.HA == nil || !st.HA.Standby {
		t.Errorf("gw-a's status does not say standby: %+v %v", st.HA, err)
	}
	if err := p.Standby(netlab.BoxA, false); err != nil {
		t.Fatal(err)
	}
	if m, ok := p.Master(); !ok || m != netlab.BoxB {
		t.Errorf("after active the master is %v (%v), want gw-b kept (no bounce)", m, ok)
	}
}

// TestPairMasterOnlyLosesAnISP: isp1 dies for the master alone: its uplinkd counts one usable
// uplink fewer, keepalived lowers its priority, and the backup (both uplinks usable) takes the
// VIPs; the LAN keeps both ISPs.
func TestPairMasterOnlyLosesAnISP(t *testing.T) {
	bin := testkit.Uplinkd(t)
	p := testkit.Pair(t, netlab.PairOptions{Uplinkd: bin})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ob, err := p.Observe(ctx, netlab.ObserveOptions{SrcPort: 42014,
		Settled: func(ctx context.Context) error { return p.WaitMaster(ctx, netlab.BoxB, 10*time.Second) },
	}, func() error { return p.BreakISPFor(1, netlab.BoxA) })
	if err != nil {
		t.Fatal(err)
	}
	logObservation(t, "isp1 dies for the master only", ob)
	if ob.After != netlab.BoxB || !ob.VIPMoved || ob.SplitBrain {
		t.Errorf("the backup did not take over: %v", ob.Details)
	}
}
