package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Listen opens the control socket at path.
//
// The parent directory is created with mode 0755 if missing. A file already at path is removed
// only when it is a socket nobody answers on (a stale one from a crashed daemon); a live socket or
// any other kind of file is an error, so two daemons never steal each other's socket.
//
// Access: when group names an existing group, the socket is root:group 0660, so members of that
// group may read the status. When group is empty or no such group exists, the socket is 0600 and
// only root can use it: failing closed is safer than opening it to everyone, and a missing group
// must not keep the gateway's failover from running. Callers say so: the daemon logs
// CheckGroup's error as a warning at startup, and --check prints it as a warning. The same goes
// for a group that exists but cannot be given (the daemon is not in it and lacks CAP_CHOWN):
// the socket is 0600 and warn (if not nil) is told why.
//
// The socket is bound under a temporary name, given its mode and group, and then renamed into
// place, so there is no moment at which it is reachable with looser permissions.
// Closing the listener removes the socket.
func Listen(path string, group string, warn func(error)) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("control: listen: empty socket path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("control: create socket directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}

	gid := -1
	mode := os.FileMode(0o600)
	if group != "" {
		if g, err := user.LookupGroup(group); err == nil {
			if id, err := strconv.Atoi(g.Gid); err == nil {
				gid, mode = id, 0o660
			}
		}
	}

	tmp := filepath.Join(dir, fmt.Sprintf(".uplinkd.%d", os.Getpid()))
	// sun_path holds 108 bytes with the terminating NUL.
	if n := max(len(path), len(tmp)); n > maxSocketPath {
		return nil, fmt.Errorf("control: listen on %s: socket path too long (%d bytes, at most %d)", path, n, maxSocketPath)
	}
	_ = os.Remove(tmp) // a leftover from an earlier run with the same pid
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	// The name changes below; removal on Close is done by our wrapper for the final name.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	if gid >= 0 {
		// Without CAP_CHOWN a process may only give a file to a group it is in, or keep the
		// group it has: the unit makes the socket directory set-group-ID uplinkd, so the socket
		// is born in the group and this chgrp changes nothing.
		if err := os.Chown(tmp, -1, gid); err != nil {
			mode = 0o600 // fail closed, and keep the failover running
			if warn != nil {
				warn(fmt.Errorf("control: chgrp socket %s to %s: %w; the socket is root-only (0600): make its directory set-group-ID %s (the shipped unit does) or run uplinkd in that group", path, group, err, group))
			}
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("control: chmod socket %s to %#o: %w", path, mode, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("control: move socket into place at %s: %w", path, err))
	}
	return &unlinkListener{UnixListener: ln, path: path}, nil
}

const maxSocketPath = 107

// ErrNoSuchGroup is wrapped by CheckGroup's error when the socket group does not exist.
var ErrNoSuchGroup = errors.New("no such group")

// CheckGroup says whether group can own the control socket. It returns nil for an existing group
// (or for "", which asks for a root-only socket), and otherwise an error, wrapping
// ErrNoSuchGroup when the group does not exist, that says what Listen will do instead: make the
// socket root-only (0600). Not fatal: log it, or print it, as a warning.
func CheckGroup(group string) error {
	if group == "" {
		return nil
	}
	_, err := user.LookupGroup(group)
	var unknown user.UnknownGroupError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &unknown):
		return fmt.Errorf("control: socket_group %q: %w: the control socket will be root-only (0600), "+
			"so its members cannot read the status; create the group (groupadd --system %s) or change daemon.socket_group",
			group, ErrNoSuchGroup, group)
	default:
		return fmt.Errorf("control: socket_group %q: look up group: %w; the control socket will be root-only (0600)", group, err)
	}
}

// removeStale removes path if it is a socket that nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control: check old socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control: %s exists and is not a socket (%s); refusing to remove it", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control: %s is in use: another uplinkd is answering on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control: check old socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control: remove stale socket: %w", err)
	}
	return nil
}

// unlinkListener removes the socket file on Close, once.
type unlinkListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unlinkListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}
