package netlab

import (
	"context"
	"fmt"
	"net"
	"os/user"
	"runtime"
	"strconv"
	"syscall"
)

// AsUser runs f on a fresh OS thread whose credentials are uid and gid (real, effective,
// saved and filesystem; no supplementary groups) and waits for it. A unix socket f connects
// is the daemon's peer as that user (SO_PEERCRED records the connecting thread's
// credentials), and may then be used from any goroutine.
//
// Linux keeps credentials per thread; the raw system calls change only this one (Go's
// syscall.Setuid would change every thread of the process). Like InNamespace, the thread is
// never given back: its goroutine exits still locked, and Go then ends the thread, so no
// other goroutine ever runs with these credentials.
func AsUser(uid, gid int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, on purpose (see above)
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			done <- fmt.Errorf("netlab: setgroups: %w", e)
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
			done <- fmt.Errorf("netlab: setresgid %d: %w", gid, e)
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			done <- fmt.Errorf("netlab: setresuid %d: %w", uid, e)
			return
		}
		done <- f()
	}()
	return <-done
}

// Nobody returns the uid of "nobody" and the gid of "nogroup", the unprivileged user and
// group every Debian system has.
func Nobody() (uid, gid int, err error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("netlab: %w", err)
	}
	g, err := user.LookupGroup("nogroup")
	if err != nil {
		return 0, 0, fmt.Errorf("netlab: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(g.Gid)
	if err1 != nil || err2 != nil || uid == 0 {
		return 0, 0, fmt.Errorf("netlab: nobody is uid %q, nogroup gid %q", u.Uid, g.Gid)
	}
	return uid, gid, nil
}

// UnixDialAs returns a dial function for control.NewClientDial that connects to socket as
// uid/gid (see AsUser).
func UnixDialAs(socket string, uid, gid int) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var c net.Conn
		err := AsUser(uid, gid, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, "unix", socket)
			return err
		})
		return c, err
	}
}
