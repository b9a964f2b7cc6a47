package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Command returns `ip netns exec <ns of role> args...`, not started; the caller owns it.
func (l *Lab) Command(ctx context.Context, role string, args ...string) (*exec.Cmd, error) {
	if err := l.validRole(role); err != nil {
		return nil, err
	}
	if len(args) == 0 {
		return nil, errors.New("netlab: no command given")
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(role)}, args...)...), nil
}

// Exec runs a short command in role's namespace and returns its combined output; the error
// carries the output too, so a failing `ping` explains itself.
func (l *Lab) Exec(ctx context.Context, role string, args ...string) ([]byte, error) {
	cmd, err := l.Command(ctx, role, args...)
	if err != nil {
		return nil, err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netlab: %v in %s: %w: %s", args, l.NS(role), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Proc is a long-running process in a lab namespace, started by Start and stopped by Stop or
// by the lab's Close.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed

	mu  sync.Mutex
	out bytes.Buffer
}

// Start starts a long-running process in role's namespace (`ip netns exec` execs the program,
// so the PID is the program's). Its combined output is kept (Output). ctx ending kills it.
func (l *Lab) Start(ctx context.Context, role string, args ...string) (*Proc, error) {
	cmd, err := l.Command(ctx, role, args...)
	if err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	cmd.Stdout = (*procWriter)(p)
	cmd.Stderr = (*procWriter)(p)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second // then SIGKILL
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("netlab: Start on a closed lab")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netlab: start %v in %s: %w", args, l.NS(role), err)
	}
	go func() { // owned by p: ends when the process does
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	return p, nil
}

type procWriter Proc

func (w *procWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(b)
}

// Output returns the process's combined stdout and stderr so far.
func (p *Proc) Output() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.out.Bytes())
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process (SIGHUP for a reload, say).
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error (nil for a clean exit); valid once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM, waits up to grace for the exit, then SIGKILLs. It returns the exit error
// (nil for a clean exit after SIGTERM).
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("netlab: stop pid %d: %w", p.Pid(), err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("netlab: pid %d did not stop within %v of SIGTERM; killed", p.Pid(), grace)
}

// stopForClose stops a process that is still running when the lab closes; a process that has
// already exited (whatever its status) is the caller's business, not a Close error.
func (p *Proc) stopForClose() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	err := p.Stop(5 * time.Second)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return nil // ended by our SIGTERM
	}
	return err
}
