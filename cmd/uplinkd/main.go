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
	"strings"
	"syscall"

	"github.com/uplinkd/uplinkd/internal/version"
	"github.com/uplinkd/uplinkd/routing"
	"github.com/uplinkd/uplinkd/uplink"
	"github.com/vishvananda/netlink"
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
	cleanup := fs.Bool("cleanup", false, "remove every rule, route and firewall table uplinkd owns, and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: uplinkd [--config FILE] [--check | --cleanup | --version | --help]\n\n")
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
	if *showVersion {
		fmt.Fprintln(stdout, version.String("uplinkd"))
		return 0
	}
	cfg, err := uplink.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "uplinkd: %v\n", err)
		return 1
	}
	if *check {
		printSummary(stdout, cfg)
		return 0
	}
	log := newLogger(stderr, cfg.Daemon.LogLevel)
	if *cleanup {
		if err := cleanupAll(cfg, log); err != nil {
			fmt.Fprintf(stderr, "uplinkd: cleanup: %v\n", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runDaemon(ctx, cfg, log); err != nil {
		log.Error("uplinkd stopped", "err", err)
		return 1
	}
	return 0
}

// printSummary is what --check prints about a valid configuration.
func printSummary(w io.Writer, cfg *uplink.Config) {
	fmt.Fprintf(w, "%s: ok, %d uplinks\n", cfg.Path, len(cfg.Uplinks))
	for _, u := range cfg.Uplinks {
		gw := "gateway from the kernel"
		if u.Gateway.IsValid() || u.Gateway6.IsValid() {
			var gws []string
			for _, g := range []interface{ IsValid() bool }{u.Gateway, u.Gateway6} {
				if g.IsValid() {
					gws = append(gws, fmt.Sprint(g))
				}
			}
			gw = "gateway " + strings.Join(gws, ", ")
		}
		p := u.Probe
		targets := make([]string, len(p.Targets))
		for i, t := range p.Targets {
			targets[i] = t.String()
		}
		fmt.Fprintf(w, "  %-10s %-10s tier %d weight %-3d table %d mark %#x  %s\n", u.Name, u.Interface, u.Priority, u.Weight, u.Table(cfg.Daemon), u.Mark(), gw)
		fmt.Fprintf(w, "  %-10s %s every %s, timeout %s, quorum %d of %s; down after %d, up after %d\n", "", p.Method, p.Interval, p.Timeout, p.Quorum, strings.Join(targets, " "), p.DownAfter, p.UpAfter)
	}
	for _, s := range cfg.Services {
		fallback := "then balanced like the rest"
		if !s.Fallback {
			fallback = "else refused"
		}
		fmt.Fprintf(w, "  service %-10s → %s, %s\n", s.Name, strings.Join(s.Uplinks, " then "), fallback)
	}
	if cfg.Daemon.Pinning {
		fmt.Fprintf(w, "  connections pinned to their uplink (nftables table inet uplinkd)\n")
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by the config
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv}))
}

// cleanupAll removes what uplinkd owns: its rules and routes, its firewall table.
func cleanupAll(cfg *uplink.Config, log *slog.Logger) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	r := routing.NewRouter(h, routingSettings(cfg.Daemon), log)
	ch, err := r.Cleanup()
	for _, d := range ch.Done {
		log.Info("removed", "entry", d)
	}
	return errors.Join(err, cleanupPinning(log))
}

func routingSettings(d uplink.Daemon) routing.Settings {
	return routing.Settings{RulePriority: d.RulePriority, ActiveTable: d.TableBase}
}
