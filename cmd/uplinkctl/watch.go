package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// clearScreen moves the cursor home and clears the screen, as watch(1) does between frames.
const clearScreen = "\x1b[H\x1b[2J"

// watch shows the status every interval until ctx ends (Ctrl-C). On a terminal each frame
// replaces the last; otherwise (a pipe, a file, --json) frames follow each other, separated by a
// blank line, so that a log of them reads in order.
func (c *cli) watch(ctx context.Context, asJSON bool, interval time.Duration) int {
	inPlace := !asJSON && isTerminal(c.stdout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for frame := 0; ; frame++ {
		var b bytes.Buffer
		st, err := c.client.Status(ctx)
		switch {
		case ctx.Err() != nil:
			return exitOK
		case err != nil:
			fmt.Fprintf(&b, "uplinkctl: %v (trying again every %s)\n", err, interval)
		case asJSON:
			enc, _ := json.Marshal(st)
			b.Write(enc)
			b.WriteByte('\n')
		default:
			if err := formatStatus(&b, st, c.now()); err != nil {
				return c.fail(err)
			}
		}
		switch {
		case inPlace:
			fmt.Fprintf(c.stdout, "%sEvery %s: uplinkctl status    %s\n\n%s", clearScreen, interval, c.now().Format("2006-01-02 15:04:05"), b.Bytes())
		case asJSON || frame == 0:
			_, _ = c.stdout.Write(b.Bytes())
		default:
			_, _ = io.WriteString(c.stdout, "\n"+b.String())
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-tick.C:
		}
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
