// Command uplinkd keeps a multi-ISP Linux gateway online: it probes every uplink through that
// uplink, and rewrites policy rules and routes through netlink so that traffic leaves through
// the best working provider.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/dataplane"
	"github.com/uplinkd/uplinkd/internal/diagnose"
	"github.com/uplinkd/uplinkd/internal/engine"
	"github.com/uplinkd/uplinkd/internal/ha"
	"github.com/uplinkd/uplinkd/internal/inbound"
	"github.com/uplinkd/uplinkd/internal/ra"
	"github.com/uplinkd/uplinkd/internal/servercheck"
	"github.com/uplinkd/uplinkd/internal/statefile"
	"github.com/uplinkd/uplinkd/internal/version"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/routing/connmark"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/uplinkd/uplinkd/uplink/config"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const defaultConfig = "/etc/uplinkd/uplinkd.toml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uplinkd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // help and errors are printed below
	configPath := fs.String("config", defaultConfig, "configuration `file`")
	check := fs.Bool("check", false, "validate the configuration, print a summary and exit")
	probeOnce := fs.Bool("probe", false, "with --check: probe every target once through each uplink and print what answered")
	cleanup := fs.Bool("cleanup", false, "remove every rule, route and firewall table uplinkd owns, and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	keygen := fs.String("dnssec-keygen", "", "write a new DNSSEC signing key (ECDSA P-256) to `file` (mode 600, never over an existing one), print its DS for the config's zone and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: uplinkd [--config FILE] [--check [--probe] | --cleanup | --version | --help]\n\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "  -h, --help\n    \tprint this help and exit\n\nSee uplinkd(8) and uplinkd.toml(5).\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) { // -h, --help: asked for, so stdout and success
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		fmt.Fprintf(stderr, "uplinkd: %v\n", err)
		fs.SetOutput(stderr)
		fs.Usage()
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "uplinkd: unexpected argument %q\n", fs.Arg(0))
		fs.SetOutput(stderr)
		fs.Usage()
		return 2
	}
	if *probeOnce && !*check {
		fmt.Fprintf(stderr, "uplinkd: --probe goes with --check\n")
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("uplinkd"))
		return 0
	}
	if *keygen != "" {
		return dnssecKeygen(*keygen, *configPath, stdout, stderr)
	}
	cfg, err := config.Load(*configPath)
	if err != nil && *cleanup && !*check {
		// Cleanup needs only the table base and the rule band; the package's removal runs it
		// whatever state the file is in. Other numbers would have been in the file.
		fmt.Fprintf(stderr, "uplinkd: %v\nuplinkd: cleaning up what uplinkd owns at the default table base and rule band\n", err)
		def := uplink.DefaultConfig()
		cfg, err = &def, nil
	}
	if err != nil {
		fmt.Fprintf(stderr, "uplinkd: %v\n", err)
		return 1
	}
	if *check {
		if !diagnose.Check(context.Background(), stdout, cfg, *probeOnce) {
			return 1
		}
		return 0
	}
	level := new(slog.LevelVar)
	log := slog.New(newLogHandler(stderr, level))
	_ = level.UnmarshalText([]byte(cfg.Daemon.LogLevel)) // validated by the config
	if *cleanup {
		if err := cleanupAll(cfg, log); err != nil {
			fmt.Fprintf(stderr, "uplinkd: cleanup: %v\n", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runDaemon(ctx, cfg, log, level); err != nil {
		log.Error("uplinkd stopped", "err", err)
		return 1
	}
	return 0
}

// The engine is the control API's backend.
var _ control.Backend = (*engine.Engine)(nil)

// runDaemon wires the engine to the kernel, the control socket, signals and systemd, and runs
// it until ctx ends.
func runDaemon(ctx context.Context, cfg *uplink.Config, log *slog.Logger, level *slog.LevelVar) error {
	// One processor: the daemon's work is a few hundred short wakeups a second, and a second P
	// only adds thread handoffs (idle CPU at 2 uplinks × 3 targets every 100 ms: 0.9 → 0.6 % of
	// a core). GOMAXPROCS in the environment still wins.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	settings := routing.SettingsOf(cfg.Daemon)
	dnsServer := inbound.NewServer(log) // listens only while [dns] is configured
	defer dnsServer.Close()
	dnsUpdater := inbound.NewUpdater(log) // sends only while [dns.update] is configured
	defer dnsUpdater.Close()
	var state *statefile.Store // nil: nothing remembered across a restart
	if cfg.Daemon.StateFile != "" {
		state = statefile.Open(cfg.Daemon.StateFile, log)
	}
	raSender := ra.NewSender(log, state) // sends only while [ipv6] advertise = "ra" has prefixes
	defer raSender.Close()
	dp, err := dataplane.New(h, netns.None(), settings, log, dnsServer, dnsUpdater, raSender, ra.NewLifetimes(routing.NewRouter(h, settings, log), log))
	if err != nil {
		return err
	}
	kernelEvents := make(chan routing.Event, 256)
	kernelDone := make(chan error, 1)
	pinDamage := make(chan struct{}, 1)
	n := newNotifier(log)
	obs := newObserver(ctx, cfg, log)
	obs.countDNS(dnsServer.Stats().Counts)
	obs.countRA(raSender.Stats().Counts)
	e, err := engine.New(engine.Options{
		Config:       cfg,
		Load:         config.Load,
		Dataplane:    dp,
		Kernel:       dp,
		StartProber:  engine.StartProbe,
		NewTracker:   func(path string) engine.Tracker { return ha.NewTracker(path) },
		Notifier:     n,
		Log:          log,
		LogLevel:     level,
		Version:      version.Version,
		KernelEvents: kernelEvents,
		LastRA:       raSender.Sent,
		KernelDone:   kernelDone,
		PinDamage:    pinDamage,
		Watchdog:     n.interval,
		OnRound:      obs.onRound(),
		OnReload:     obs.onReload,
		State:        state,
		CheckServers: servercheck.Start,
	})
	if err != nil {
		return err
	}
	if err := control.CheckGroup(cfg.Daemon.SocketGroup); err != nil {
		log.Warn("control socket", "problem", err)
	}
	ln, err := control.Listen(cfg.Daemon.Socket, cfg.Daemon.SocketGroup, func(err error) { log.Warn("control socket", "problem", err) })
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	var workers sync.WaitGroup
	defer workers.Wait() // after cancel (deferred later, so run first)
	defer cancel()
	workers.Go(func() {
		if err := control.Serve(ctx, ln, e, log); err != nil {
			log.Error("control server", "err", err)
		}
	})
	workers.Go(func() { kernelDone <- routing.NewMonitor(netns.None(), settings, log).Run(ctx, kernelEvents) })
	workers.Go(func() {
		if err := connmark.NewTable(netns.None(), log).Watch(ctx, pinDamage, nil); err != nil {
			log.Warn("nftables monitor unavailable; the connection-mark table is checked every 30s instead", "err", err)
		}
	})
	workers.Go(func() { reloadOnHangup(ctx, e, log) })
	obs.start(ctx, e, &workers)
	return e.Run(ctx)
}

// reloadOnHangup reloads the configuration on SIGHUP; the engine logs a refusal.
func reloadOnHangup(ctx context.Context, e *engine.Engine, log *slog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if err := e.Reload(); err != nil {
				log.Debug("SIGHUP reload refused", "err", err)
			}
		}
	}
}

// cleanupAll removes what uplinkd owns: its rules and routes, its firewall table.
func cleanupAll(cfg *uplink.Config, log *slog.Logger) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	dp, err := dataplane.New(h, netns.None(), routing.SettingsOf(cfg.Daemon), log)
	if err != nil {
		return err
	}
	_, err = dp.Cleanup() // the router logs each removal
	return err
}

// dnssecKeygen is --dnssec-keygen: a new key in path, and its DS for the zone of the config
// (when it can be read) for the registrar.
func dnssecKeygen(path, configPath string, stdout, stderr io.Writer) int {
	zone := "zone.invalid."
	if src, err := os.ReadFile(configPath); err == nil {
		if cfg, err := config.Parse(configPath, src); err == nil && cfg.DNS.Enabled() {
			zone = cfg.DNS.Zone
		}
	}
	k, err := config.GenerateDNSSECKey(path, zone)
	if err != nil {
		fmt.Fprintf(stderr, "uplinkd: dnssec-keygen: %v\n", err)
		return 1
	}
	if zone == "zone.invalid." {
		fmt.Fprintf(stdout, "%s: a new signing key, tag %d; set [dns] dnssec = %q: uplinkd --check then prints the DS for the registrar\n", path, k.KeyTag(), path)
		return 0
	}
	fmt.Fprintf(stdout, "%s: a new signing key, tag %d; set [dns] dnssec = %q, then give the registrar the DS:\n%s\n", path, k.KeyTag(), path, k.DS())
	return 0
}
