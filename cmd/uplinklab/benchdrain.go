package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// The drain part of the benchmark: planned maintenance must not break the connections that are
// working on the drained uplink, and must send new ones elsewhere at once.

const drainMethod = "drain (per NAT mode, shipped config): a fresh uplinkd with isp1 active, a chat TCP connection from the LAN " +
	"through isp1, then `drain isp1` (graceful); drain_tcp: the chat is asked 3 times (100 ms apart, 2 s each) once new " +
	"connections go through isp2 and counts as kept when every answer came through isp1; new_tcp: drain request → first new TCP " +
	"connection from the LAN that succeeds through isp2 (attempts every 25 ms); moved: drain request → active set is isp2; " +
	"undrain: undrain request → active set is isp1"

// drainResult is what one drain run measured. A negative duration was not measured.
type drainResult struct {
	Kept                   bool // the chat on isp1 kept answering through isp1
	Moved, NewTCP, Undrain time.Duration
}

func (r drainResult) String() string {
	tcp := "broken"
	if r.Kept {
		tcp = "kept"
	}
	return fmt.Sprintf("connection on isp1 %s, new connections on isp2 after %s, moved %s, undrain %s", tcp, r.NewTCP, r.Moved, r.Undrain)
}

// drainReport is the drain figures of one NAT mode.
type drainReport struct {
	NAT      string   `json:"nat"`
	Config   string   `json:"config"`
	Runs     int      `json:"runs"` // successful runs the figures are taken over
	Errors   []string `json:"errors,omitempty"`
	DrainTCP *kept    `json:"drain_tcp,omitempty"` // did the connection on isp1 keep answering through isp1
	NewTCP   *stat    `json:"new_tcp,omitempty"`
	Moved    *stat    `json:"moved,omitempty"`
	Undrain  *stat    `json:"undrain,omitempty"`
	Target   string   `json:"target"`
}

// kept counts the runs in which a connection survived, out of the runs that measured it.
type kept struct {
	Kept int `json:"kept"`
	Runs int `json:"runs"`
}

func (k *kept) String() string {
	if k == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d kept", k.Kept, k.Runs)
}

// keptOf counts the "kept" among the runs' "kept"/"broken" verdicts ("" is not measured); nil
// when none measured it.
func keptOf[R any](runs []R, verdict func(R) string) *kept {
	var k kept
	for _, r := range runs {
		switch verdict(r) {
		case "kept":
			k.Kept++
			k.Runs++
		case "broken":
			k.Runs++
		}
	}
	if k.Runs == 0 {
		return nil
	}
	return &k
}

// drain measures b.runs graceful drains of isp1 in lab.
func (b *bench) drain(ctx context.Context, lab *netlab.Lab, nat string) (drainReport, error) {
	var results []drainResult
	var errs []string
	for i := range b.runs {
		if ctx.Err() != nil {
			return summarizeDrain(nat, results, errs), ctx.Err()
		}
		r, err := b.drainRun(ctx, lab)
		if err != nil {
			b.logf("drain/%s run %d/%d FAILED: %v", nat, i+1, b.runs, err)
			errs = append(errs, err.Error())
			continue
		}
		b.logf("drain/%s run %d/%d: %s", nat, i+1, b.runs, r)
		results = append(results, r)
	}
	return summarizeDrain(nat, results, errs), nil
}

// drainRun is one measurement: a fresh daemon, a chat on isp1, drain isp1, undrain it.
func (b *bench) drainRun(ctx context.Context, lab *netlab.Lab) (res drainResult, err error) {
	res = drainResult{Moved: -1, NewTCP: -1, Undrain: -1}
	d, err := startDaemon(ctx, lab, b.bin, defaultConfig, 20*time.Second, nil)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, d.Stop()) }()
	chat, err := openChat(ctx, lab, "isp1")
	if err != nil {
		return res, err
	}
	defer chat.Close()

	newConn, stopNew := watchNewTCP(ctx, lab, "isp2", 10*time.Second)
	defer stopNew()

	start := time.Now()
	if err := d.Client().Drain(ctx, "isp1", false); err != nil {
		return res, fmt.Errorf("drain isp1: %w", err)
	}
	moved, err := d.WaitEvent(ctx, 5*time.Second, start, "the drain to move traffic to isp2", netlab.ActiveIs("isp2"))
	if err != nil {
		return res, err
	}
	res.Moved = moved.Time.Sub(start)
	at := newConn()
	if at.IsZero() {
		return res, errors.New("no new TCP connection through isp2 within 10 s of the drain")
	}
	res.NewTCP = at.Sub(start)
	res.Kept = true
	if err := chatStays(ctx, chat, "isp1"); err != nil {
		res.Kept = false
		b.logf("drain: the connection on isp1 did not survive the graceful drain: %v", err)
	}

	undrained := time.Now()
	if err := d.Client().Undrain(ctx, "isp1"); err != nil {
		return res, fmt.Errorf("undrain isp1: %w", err)
	}
	back, err := d.WaitEvent(ctx, 5*time.Second, undrained, "the undrain to bring traffic back to isp1", netlab.ActiveIs("isp1"))
	if err != nil {
		return res, err
	}
	res.Undrain = back.Time.Sub(undrained)
	return res, nil
}

// openChat opens a chat connection from the LAN and checks that it leaves through want.
func openChat(ctx context.Context, lab *netlab.Lab, want string) (*netlab.Chat, error) {
	chat, err := lab.DialChat(ctx, netlab.RoleLAN)
	if err != nil {
		return nil, err
	}
	via, err := chat.Ask(2 * time.Second)
	if err != nil {
		chat.Close()
		return nil, fmt.Errorf("a new chat connection does not answer: %w", err)
	}
	if got := ispOf(via); got != want {
		chat.Close()
		return nil, fmt.Errorf("a new chat connection left via %s (%s), want %s", via, got, want)
	}
	return chat, nil
}

// chatStays asks on chat 3 times, 100 ms apart, and says why if an answer did not come back
// through want.
func chatStays(ctx context.Context, chat *netlab.Chat, want string) error {
	for i := range 3 {
		if i > 0 {
			sleepCtx(ctx, 100*time.Millisecond)
		}
		via, err := chat.Ask(2 * time.Second)
		if err != nil {
			return fmt.Errorf("question %d: %w", i+1, err)
		}
		if got := ispOf(via); got != want {
			return fmt.Errorf("question %d answered via %s (%s), want %s", i+1, via, got, want)
		}
	}
	return nil
}

// summarizeDrain turns a NAT mode's drain runs into counts, medians and maxima.
func summarizeDrain(nat string, runs []drainResult, errs []string) drainReport {
	r := drainReport{NAT: nat, Config: "default", Runs: len(runs), Errors: errs,
		Target: "connection kept; new connections on isp2 at once"}
	r.DrainTCP = keptOf(runs, func(x drainResult) string {
		if x.Kept {
			return "kept"
		}
		return "broken"
	})
	ms := func(get func(drainResult) time.Duration) *stat { return msStat(runs, get) }
	r.NewTCP = ms(func(x drainResult) time.Duration { return x.NewTCP })
	r.Moved = ms(func(x drainResult) time.Duration { return x.Moved })
	r.Undrain = ms(func(x drainResult) time.Duration { return x.Undrain })
	return r
}

// printDrainTable prints the drain figures, if any, after the failover table.
func printDrainTable(w io.Writer, drains []drainReport) {
	if len(drains) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "drain\tnat\tconfig\truns\tdrain_tcp\tnew_tcp\tmoved\tundrain\ttarget\n")
	for _, r := range drains {
		fmt.Fprintf(tw, "isp1\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n",
			r.NAT, r.Config, r.Runs, r.DrainTCP, fmtMS(r.NewTCP), fmtMS(r.Moved), fmtMS(r.Undrain), r.Target)
	}
	tw.Flush()
	fmt.Fprintln(w, "drain: graceful `drain isp1` with a TCP connection on isp1; drain_tcp: runs in which it kept answering through isp1; new_tcp: until new connections go through isp2; durations median/max milliseconds")
	for _, r := range drains {
		for _, e := range r.Errors {
			fmt.Fprintf(w, "FAILED drain/%s: %s\n", r.NAT, firstLine(e))
		}
	}
}
