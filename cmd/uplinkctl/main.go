// Command uplinkctl shows and steers a running uplinkd over its control socket.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/control"
	"github.com/uplinkd/uplinkd/internal/version"
	"github.com/uplinkd/uplinkd/uplink/config"
)

// Exit statuses. For status, exitFail means "no uplink carries traffic".
const (
	exitOK          = 0
	exitFail        = 1
	exitUnreachable = 2 // the daemon is not running, access was denied, or the command line is wrong
)

const defaultConfig = "/etc/uplinkd/uplinkd.toml"

const usage = `usage: uplinkctl [--socket PATH] COMMAND [ARGS]
       uplinkctl COMMAND --help | --help | --version

commands:
  status [--json] [--watch [-n 2s]]
                         show every uplink; exit 0 if one carries traffic, 1 if none, 2 if
                         uplinkd cannot be reached; --watch redraws it until Ctrl-C
  events [--json]        follow decisions as they happen (Ctrl-C stops)
  drain [--now] NAME     take an uplink out of service; --now also moves its connections
  undrain NAME           put a drained uplink back into service
  reload                 make uplinkd read its config file again; exits 1 with the reason
                         when the file is refused (the running configuration stays)
  standby                gateway pair: hand this box's virtual addresses to the peer for
                         maintenance (the peer takes over; connections are kept)
  active                 gateway pair: make this box an active member again
  check-config [FILE]    validate a config file (default ` + defaultConfig + `)
  version                print uplinkctl's version (also: --version)
  help [COMMAND]         print this help, or a command's (also: COMMAND --help)

global flags:
  --socket PATH          uplinkd's control socket (default ` + control.DefaultSocket + `)

Exit status 2 means uplinkd could not be reached, access was denied, or the usage was wrong.
See uplinkctl(1).
`

// commandUsage is each command's --help.
var commandUsage = map[string]string{
	"status": `usage: uplinkctl [--socket PATH] status [--json] [--watch [-n INTERVAL]]

Show every uplink: its state and since when, why, RTT, loss, weight, tier, connections and
whether it is drained; every probe target's RTT and loss; the active route of each family.

flags:
  --json         print the daemon's status as JSON
  --watch        show it again every INTERVAL until Ctrl-C: redrawn in place on a terminal,
                 one snapshot after the other (separated by a blank line) otherwise
  -n INTERVAL    the interval of --watch (default 2s, at least 100ms)

Exit status: 0 if some uplink carries traffic, 1 if none does, 2 if uplinkd cannot be reached.
`,
	"events": `usage: uplinkctl [--socket PATH] events [--json]

Follow state changes, switches, drains and reloads as they happen, until Ctrl-C.

flags:
  --json   print each event as one JSON object a line
`,
	"drain": `usage: uplinkctl [--socket PATH] drain [--now] NAME

Take uplink NAME out of service for planned maintenance: new connections go elsewhere at once,
existing ones may finish; probing goes on. Needs root.

flags:
  --now    also move the uplink's existing connections now
`,
	"undrain": `usage: uplinkctl [--socket PATH] undrain NAME

Put drained uplink NAME back into service (at once if it is up). Needs root.
`,
	"reload": `usage: uplinkctl [--socket PATH] reload

Make uplinkd read its configuration file again and wait for its verdict. A file with a mistake
is refused: uplinkctl prints the reason and exits 1, and the running configuration stays.
This is the unit's ExecReload (systemctl reload uplinkd). Needs root.
`,
	"standby": `usage: uplinkctl [--socket PATH] standby

In a gateway pair ([ha] in uplinkd.toml), put this box in standby for planned maintenance:
uplinkd sets keepalived's track file so that this box's VRRP priority drops below its peer's,
keepalived moves the virtual addresses, and conntrackd has the connections on the peer
already. The box stays a hot backup: it takes over at once if the peer dies. The standby
lasts until "uplinkctl active", also across a restart of uplinkd. Needs root.
`,
	"active": `usage: uplinkctl [--socket PATH] active

In a gateway pair, end a standby: this box competes for the virtual addresses again (it takes
them back only if it has more usable uplinks than its peer). Needs root.
`,
	"check-config": `usage: uplinkctl check-config [FILE]

Validate a configuration file (default ` + defaultConfig + `) without asking the daemon.
Exit status 0 if it is valid, 1 with the file, line and key of the first mistake if not.
`,
	"version": `usage: uplinkctl version

Print uplinkctl's version, the commit it was built from and the Go release (also: --version).
`,
	"help": `usage: uplinkctl help [COMMAND]

Print the usage of uplinkctl, or of COMMAND.
`,
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli is one invocation: where it writes and whom it talks to.
type cli struct {
	stdout, stderr io.Writer
	client         *control.Client
	now            func() time.Time
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("uplinkctl", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	socket := global.String("socket", control.DefaultSocket, "control socket of uplinkd")
	showVersion := global.Bool("version", false, "print the version and exit")
	if err := global.Parse(args); err != nil {
		return usageError(stdout, stderr, "", err)
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("uplinkctl"))
		return exitOK
	}
	rest := global.Args()
	if len(rest) == 0 {
		return usageError(stdout, stderr, "", errors.New("no command"))
	}
	c := &cli{stdout: stdout, stderr: stderr, client: control.NewClient(*socket), now: time.Now}
	cmd, args := rest[0], rest[1:]
	switch cmd {
	case "status":
		return c.status(ctx, args)
	case "events":
		return c.events(ctx, args)
	case "drain":
		return c.drain(ctx, args, true)
	case "undrain":
		return c.drain(ctx, args, false)
	case "reload":
		return c.reload(ctx, args)
	case "standby", "active":
		return c.standby(ctx, cmd, args)
	case "check-config":
		return c.checkConfig(args)
	case "version":
		if _, err := parse(flag.NewFlagSet("version", flag.ContinueOnError), args, 0, 0); err != nil {
			return usageError(stdout, stderr, "version", err)
		}
		fmt.Fprintln(stdout, version.String("uplinkctl"))
		return exitOK
	case "help":
		return c.help(args)
	case completeUplinks:
		return c.completeUplinks(ctx)
	}
	return usageError(stdout, stderr, "", fmt.Errorf("unknown command %q", cmd))
}

// help prints the usage of uplinkctl or of one command, to stdout: it was asked for.
func (c *cli) help(args []string) int {
	pos, err := parse(flag.NewFlagSet("help", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return usageError(c.stdout, c.stderr, "help", err)
	}
	if len(pos) == 0 {
		fmt.Fprint(c.stdout, usage)
		return exitOK
	}
	u, ok := commandUsage[pos[0]]
	if !ok {
		return usageError(c.stdout, c.stderr, "", fmt.Errorf("help: unknown command %q", pos[0]))
	}
	fmt.Fprint(c.stdout, u)
	return exitOK
}

// completeUplinks is the hidden command the shell completions run for uplink names.
const completeUplinks = "__complete-uplinks"

// completeUplinks prints the daemon's uplink names, one a line, for the shell completions. It
// prints nothing at all when the daemon cannot be asked (not running, no permission): a
// completion must never spill errors into the command line being typed.
func (c *cli) completeUplinks(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := c.client.Status(ctx)
	if err != nil {
		return exitFail
	}
	for _, u := range st.Uplinks {
		fmt.Fprintln(c.stdout, u.Name)
	}
	return exitOK
}

// usageError handles a command line that could not be parsed. -h and --help are not errors:
// the usage (of cmd, or the global one) goes to stdout with exit 0. Anything else is reported
// on stderr with the usage and exit 2.
func usageError(stdout, stderr io.Writer, cmd string, err error) int {
	u, ok := commandUsage[cmd]
	if !ok {
		u = usage
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, u)
		return exitOK
	}
	fmt.Fprintf(stderr, "uplinkctl: %v\n\n%s", err, u)
	return exitUnreachable
}

// parse parses flags anywhere among the arguments ("drain isp1 --now" as well as "drain --now
// isp1") and checks the number of positional arguments.
func parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for range len(args) + 1 { // each round consumes at least one argument
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%s: %w", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		want := fmt.Sprintf("%d to %d arguments", minArgs, maxArgs)
		if minArgs == maxArgs {
			want = fmt.Sprintf("%d arguments", minArgs)
		}
		return nil, fmt.Errorf("%s: want %s, got %d", fs.Name(), want, len(pos))
	}
	return pos, nil
}

// fail prints err and picks the exit status: 2 when uplinkd is unreachable or refused access.
func (c *cli) fail(err error) int {
	fmt.Fprintf(c.stderr, "uplinkctl: %v\n", err)
	if errors.Is(err, control.ErrNotRunning) || errors.Is(err, control.ErrPermission) {
		return exitUnreachable
	}
	return exitFail
}

func (c *cli) status(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	watch := fs.Bool("watch", false, "show the status again every interval until Ctrl-C")
	interval := fs.Duration("n", 2*time.Second, "the interval of --watch")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return usageError(c.stdout, c.stderr, "status", err)
	}
	if *watch {
		if *interval < 100*time.Millisecond {
			return usageError(c.stdout, c.stderr, "status", fmt.Errorf("status: -n %s is below 100ms", *interval))
		}
		return c.watch(ctx, *asJSON, *interval)
	}
	st, err := c.client.Status(ctx)
	if err != nil {
		c.fail(err)
		return exitUnreachable // scripts read 2 as "cannot tell"
	}
	if *asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return c.fail(fmt.Errorf("encode status: %w", err))
		}
		fmt.Fprintf(c.stdout, "%s\n", b)
	} else if err := formatStatus(c.stdout, st, c.now()); err != nil {
		return c.fail(err)
	}
	if !st.Carrying() {
		return exitFail
	}
	return exitOK
}

func (c *cli) events(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print each event as one JSON object a line")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return usageError(c.stdout, c.stderr, "events", err)
	}
	enc := json.NewEncoder(c.stdout)
	err := c.client.Events(ctx, func(e api.Event) {
		if *asJSON {
			_ = enc.Encode(e) // a closed stdout ends us through SIGPIPE
			return
		}
		fmt.Fprintln(c.stdout, formatEvent(e, time.Local))
	})
	if ctx.Err() != nil {
		return exitOK // stopped by Ctrl-C or SIGTERM
	}
	return c.fail(err)
}

func (c *cli) drain(ctx context.Context, args []string, drain bool) int {
	name := "undrain"
	if drain {
		name = "drain"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	now := fs.Bool("now", false, "move the uplink's existing connections at once")
	pos, err := parse(fs, args, 1, 1)
	if err != nil {
		return usageError(c.stdout, c.stderr, name, fmt.Errorf("%w (want: %s NAME)", err, name))
	}
	if !drain && *now {
		return usageError(c.stdout, c.stderr, name, errors.New("undrain has no --now"))
	}
	if drain {
		err = c.client.Drain(ctx, pos[0], *now)
	} else {
		err = c.client.Undrain(ctx, pos[0])
	}
	if err != nil {
		return c.fail(err)
	}
	switch {
	case drain && *now:
		fmt.Fprintf(c.stdout, "%s drained; its connections are being moved\n", pos[0])
	case drain:
		fmt.Fprintf(c.stdout, "%s drained; existing connections may finish\n", pos[0])
	default:
		fmt.Fprintf(c.stdout, "%s back in service\n", pos[0])
	}
	return exitOK
}

func (c *cli) reload(ctx context.Context, args []string) int {
	if _, err := parse(flag.NewFlagSet("reload", flag.ContinueOnError), args, 0, 0); err != nil {
		return usageError(c.stdout, c.stderr, "reload", err)
	}
	if err := c.client.Reload(ctx); err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(c.stdout, "configuration reloaded")
	return exitOK
}

// standby puts the box in standby in its pair ("standby") or makes it active ("active").
func (c *cli) standby(ctx context.Context, cmd string, args []string) int {
	if _, err := parse(flag.NewFlagSet(cmd, flag.ContinueOnError), args, 0, 0); err != nil {
		return usageError(c.stdout, c.stderr, cmd, err)
	}
	on := cmd == "standby"
	if err := c.client.Standby(ctx, on); err != nil {
		return c.fail(err)
	}
	if on {
		fmt.Fprintln(c.stdout, "standby: the peer takes the virtual addresses (uplinkctl active ends it)")
	} else {
		fmt.Fprintln(c.stdout, "active: this box competes for the virtual addresses again")
	}
	return exitOK
}

func (c *cli) checkConfig(args []string) int {
	pos, err := parse(flag.NewFlagSet("check-config", flag.ContinueOnError), args, 0, 1)
	if err != nil {
		return usageError(c.stdout, c.stderr, "check-config", err)
	}
	path := defaultConfig
	if len(pos) == 1 {
		path = pos[0]
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(c.stderr, "uplinkctl: %v\n", err)
		return exitFail
	}
	names := make([]string, len(cfg.Uplinks))
	for i, u := range cfg.Uplinks {
		names[i] = u.Name
	}
	fmt.Fprintf(c.stdout, "%s: ok, %d uplinks: %v\n", path, len(names), names)
	return exitOK
}
