package main

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/internal/testkit"
	"github.com/uplinkd/uplinkd/uplink"
)

// The end-to-end tests run the real uplinkd binary inside the gateway namespace of a netlab
// lab. They need root; without it they skip.

// uplinkdBinary builds cmd/uplinkd once per test run.
func uplinkdBinary(t *testing.T) string { return testkit.Uplinkd(t) }

func TestMain(m *testing.M) { testkit.Main(m) }

// labDaemon is uplinkd running in a lab's gateway namespace (netlab.Daemon), with t-based
// helpers: a failed wait ends the test.
type labDaemon struct {
	t      *testing.T
	d      *netlab.Daemon
	proc   *netlab.Proc
	client *control.Client
	config string // path of its config file
	events *netlab.EventLog
}

// fastConfig probes every 100ms: the tests wait less.
func fastConfig() netlab.DaemonConfig {
	return netlab.DaemonConfig{Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, DownAfter: 3, UpAfter: 5}
}

// startDaemon starts uplinkd with cfg in the gateway namespace and waits until it answers on
// its socket with a first verdict. It stops when t ends, logging its output if t failed.
func startDaemon(t *testing.T, lab *netlab.Lab, cfg netlab.DaemonConfig) *labDaemon {
	t.Helper()
	d, err := lab.StartDaemon(context.Background(), netlab.DaemonOptions{
		Binary: uplinkdBinary(t), Config: cfg, ReadyLimit: 10 * time.Second,
		Ready: func(st api.Status) bool { return len(st.Active) > 0 && st.Uplinks[0].State != uplink.Unknown },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("uplinkd did not stop cleanly: %v", err)
		}
		if t.Failed() {
			t.Logf("uplinkd output:\n%s", d.Proc().Output())
		}
	})
	return &labDaemon{t: t, d: d, proc: d.Proc(), client: d.Client(), config: d.ConfigPath(), events: d.Events()}
}

// waitFor polls the status until ok or the (bounded) wait ends, and returns the last status.
func (d *labDaemon) waitFor(what string, limit time.Duration, ok func(api.Status) bool) api.Status {
	d.t.Helper()
	st, err := d.d.WaitStatus(context.Background(), limit, what, ok)
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

func (d *labDaemon) waitActive(limit time.Duration, names ...string) api.Status {
	d.t.Helper()
	return d.waitFor("active "+strings.Join(names, ","), limit, func(st api.Status) bool { return slices.Equal(st.Active, names) })
}

func (d *labDaemon) status() api.Status {
	d.t.Helper()
	st, err := d.d.Status(context.Background())
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

// viaTCP opens a new TCP connection from the LAN to the server and returns the address the
// server saw it come from.
func viaTCP(t *testing.T, lab *netlab.Lab) string {
	t.Helper()
	var lastErr error
	for range 3 { // a new connection right after a switch may race the route change
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		src, err := lab.CheckTCP(ctx, netlab.RoleLAN, netip.AddrPortFrom(netlab.Server4, netlab.TCPPort))
		cancel()
		if err == nil {
			host, _, _ := strings.Cut(src, ":")
			return host
		}
		lastErr = err
	}
	t.Fatalf("no new TCP connection from the LAN: %v", lastErr)
	return ""
}
