package probe

import (
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// alarm wakes a run loop at a set time through the network poller (a timerfd), not through the
// runtime's timer heap. Why: Go's sysmon thread sleeps until the next runtime timer and polls
// again after it, so every round driven by a runtime timer woke two more threads than the one
// that sends; at 2 uplinks × 100 ms that was a quarter of uplinkd's idle CPU. Its system calls
// are raw ones (they never block), because an ordinary one wakes sysmon as well. Where no timerfd
// can be had (file descriptors exhausted), a runtime timer does the same job.
type alarm struct {
	C chan struct{} // receives after an expiry; a stale one only costs a look at the schedule

	f    *os.File
	rc   syscall.RawConn
	spec unix.ItimerSpec
	arm  func(fd uintptr) // sets the timerfd to spec; made once, so set allocates nothing
	t    *time.Timer      // the fallback
	done sync.WaitGroup
}

func newAlarm() *alarm {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return newTimerAlarm()
	}
	a := &alarm{C: make(chan struct{}, 1), f: os.NewFile(uintptr(fd), "probe-alarm")}
	if a.rc, err = a.f.SyscallConn(); err != nil {
		a.f.Close()
		return newTimerAlarm()
	}
	a.arm = func(fd uintptr) {
		// timerfd_settime fails only on a bad descriptor or value: neither can happen here.
		unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&a.spec)), 0, 0, 0)
	}
	a.done.Go(a.wait)
	return a
}

// newTimerAlarm is an alarm on a runtime timer: the fallback, and what tests on a fake clock use.
func newTimerAlarm() *alarm {
	a := &alarm{C: make(chan struct{}, 1)}
	a.t = time.AfterFunc(time.Hour, a.ring)
	return a
}

func (a *alarm) ring() {
	select {
	case a.C <- struct{}{}:
	default: // one is waiting already
	}
}

// wait reads the timerfd's expiries until the alarm is closed.
func (a *alarm) wait() {
	var ticks uint64
	var errno syscall.Errno
	read := func(fd uintptr) bool {
		_, _, errno = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&ticks)), 8)
		return errno != unix.EAGAIN
	}
	for {
		if err := a.rc.Read(read); err != nil {
			return // closed
		}
		if errno == 0 {
			a.ring()
		}
	}
}

// set makes the alarm go off after d (at once when d ≤ 0), replacing what was set.
func (a *alarm) set(d time.Duration) {
	d = max(d, time.Nanosecond) // 0 would disarm a timerfd
	if a.f == nil {
		a.t.Reset(d)
		return
	}
	a.spec.Value = unix.NsecToTimespec(int64(d))
	_ = a.rc.Control(a.arm)
}

func (a *alarm) close() {
	if a.f == nil {
		a.t.Stop()
		return
	}
	a.f.Close()
	a.done.Wait()
}
