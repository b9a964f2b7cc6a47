package netlab

import (
	"fmt"
	"runtime"
	"syscall"

	"github.com/vishvananda/netns"
)

// InNS runs f in role's namespace; see InNamespace.
func (l *Lab) InNS(role string, f func() error) error {
	if err := l.validRole(role); err != nil {
		return err
	}
	return InNamespace(l.NS(role), f)
}

// InNamespace runs f on a fresh OS thread switched into the named namespace (/run/netns/name)
// and waits for it. Sockets f creates belong to that namespace for good and may then be used
// from any goroutine; goroutines f starts do NOT run in the namespace, so f must create its
// sockets itself.
//
// The thread is never switched back: its goroutine exits still locked, and Go then throws the
// thread away, so no other goroutine can ever run in a lab namespace by accident (or in the
// root namespace believing it is in the lab).
func InNamespace(name string, f func() error) error {
	path := nsPath(name)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, on purpose (see above)
		target, err := netns.GetFromPath(path)
		if err != nil {
			done <- fmt.Errorf("netlab: open namespace %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- fmt.Errorf("netlab: enter namespace %s: %w", path, err)
			return
		}
		done <- f()
	}()
	return <-done
}

// inNSControl is a net.Dialer/ListenConfig Control hook that refuses to create a socket
// anywhere but in namespace ns: a guard against a refactoring that moves socket creation onto
// another goroutine (which would then send from the caller's namespace).
func inNSControl(ns string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		want, err := netns.GetFromPath(nsPath(ns))
		if err != nil {
			return fmt.Errorf("netlab: open namespace %s: %w", ns, err)
		}
		defer want.Close()
		cur, err := netns.Get()
		if err != nil {
			return fmt.Errorf("netlab: current namespace: %w", err)
		}
		defer cur.Close()
		if !cur.Equal(want) {
			return fmt.Errorf("netlab: refusing to open a %s socket for %s outside namespace %s", network, address, ns)
		}
		return nil
	}
}
