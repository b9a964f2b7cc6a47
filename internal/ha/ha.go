// Package ha lets uplinkd steer keepalived in a gateway pair: it keeps a keepalived track file
// whose number lowers the box's VRRP priority when the box has fewer usable uplinks than the
// pair could have, or when the box is put in standby for maintenance. keepalived moves the
// virtual addresses; conntrackd copies connection state; this package only writes a number.
//
// # How keepalived reads the file
//
// keepalived.conf declares the file once and references it from the vrrp_sync_group that holds
// the LAN instance and one instance per ISP segment (see packaging/examples/keepalived.conf):
//
//	track_file uplinkd {                  # vrrp_track_file is the deprecated synonym
//	    file "/run/uplinkd/vrrp-priority"
//	    weight 1
//	    init_file 0                       # create it with 0 if missing (uplinkd overwrites it)
//	}
//	vrrp_sync_group gateway {
//	    group { lan wan1 wan2 }
//	    track_file { uplinkd weight 1 }
//	    ...
//	}
//
// keepalived watches the file with inotify and reads it as a decimal integer. With a non-zero
// weight W, value × W is added to every member instance's configured priority; the effective
// priority is clamped to 1..254. A result below -253 puts the instances in FAULT (they give the
// addresses up and stop competing). With weight 0 any non-zero value means FAULT, so the weight
// must not be 0 here. Tracking belongs on the sync group: keepalived zeroes the weights of track
// files configured on member instances, so that the members never disagree on priority.
//
// # The values
//
// Both boxes are configured with the same base priority (100) and preemption on. Value, with
// weight 1, gives:
//
//   - every uplink usable: 0, the base priority;
//   - each missing uplink: −Step (10), so the box with more usable uplinks has the higher
//     priority and takes (or keeps) the addresses; at most MaxMissing (9) are counted, so a box
//     without any uplink still stays above a box in standby;
//   - standby: StandbyValue (−200): the priority is clamped to 1, below any peer that is not
//     itself in standby, yet far from the FAULT threshold (−254), so the box stays a hot backup
//     that VRRP elects at once if the peer dies.
//
// Equal priorities never preempt (RFC 5798: a backup takes over only from a master of lower
// priority), so a box that comes back after a crash or reboot does not take the addresses back
// from a healthy peer: no second outage. It takes them only if it has more usable uplinks.
//
// # How uplinkd calls it
//
// NewTracker once; then Set after every verdict change, with the number of uplinks that can
// carry traffic (up or degraded) and the number configured. Call it only once every uplink has a
// first verdict: until then the file keeps its last value, so an uplinkd restarting on the master
// does not hand the addresses over. Set writes only when the value changes, atomically (a
// temporary file in the same directory, then rename), mode 0644. `uplinkd --check` calls Check.
package ha

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/uplinkd/uplinkd/uplink"
)

// DefaultTrackFile is the domain's default ([ha] track_file), kept here under its old name.
const DefaultTrackFile = uplink.DefaultTrackFile

// The value scale, for keepalived weight 1 and base priority 100 on both boxes.
const (
	// Step is the priority a box loses per missing uplink.
	Step = 10
	// MaxMissing caps the missing uplinks that count: 100 − 9×10 = 10 stays above standby.
	MaxMissing = 9
	// StandbyValue is the value of a box in standby: priority clamps to 1, not FAULT.
	StandbyValue = -200
	// FaultThreshold: keepalived puts the instances in FAULT when value × weight is below it.
	FaultThreshold = -253
)

// Value is the track-file value for a box with usable of total uplinks, or in standby.
// Out-of-range counts are clamped (usable below 0 counts as 0, above total as total).
func Value(usable, total int, standby bool) int {
	if standby {
		return StandbyValue
	}
	total = max(total, 0)
	usable = min(max(usable, 0), total)
	return -Step * min(total-usable, MaxMissing)
}

// Tracker keeps one track file. Its methods are safe for concurrent use.
type Tracker struct {
	path string

	mu      sync.Mutex
	written bool
	last    int
}

// NewTracker returns a tracker for path (DefaultTrackFile when empty). It writes nothing until
// the first Set.
func NewTracker(path string) *Tracker {
	if path == "" {
		path = DefaultTrackFile
	}
	return &Tracker{path: path}
}

// Path is the track file.
func (t *Tracker) Path() string { return t.path }

// Standby says whether the file asks for standby now: a value the last run of uplinkd left,
// which a restart keeps.
func (t *Tracker) Standby() bool {
	v, err := ReadValue(t.path)
	return err == nil && v == StandbyValue
}

// Last returns the value this tracker last wrote, and whether it wrote one.
func (t *Tracker) Last() (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last, t.written
}

// Set writes Value(usable, total, standby) unless it is the value this tracker wrote last (the
// first call always writes, replacing whatever an earlier run left). On error nothing counts as
// written, so the next Set tries again.
func (t *Tracker) Set(usable, total int, standby bool) error {
	v := Value(usable, total, standby)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.written && t.last == v {
		return nil
	}
	if err := WriteValue(t.path, v); err != nil {
		t.written = false
		return err
	}
	t.written, t.last = true, v
	return nil
}

// WriteValue writes v and a newline to path atomically: a temporary file in the same directory,
// synced, mode 0644, renamed over path. keepalived sees either the old or the new number.
func WriteValue(path string, v int) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("ha: write %s: %w%s", path, err, dirHint(dir, err))
	}
	tmp := f.Name()
	_, err = f.WriteString(strconv.Itoa(v) + "\n")
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ha: write %s: %w", path, err)
	}
	return nil
}

// ReadValue reads a track file's number.
func ReadValue(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("ha: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("ha: %s: not a number: %q", path, strings.TrimSpace(string(b)))
	}
	return v, nil
}

func dirHint(dir string, err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf(" (directory %s does not exist)", dir)
	}
	return ""
}

// KeepalivedSnippet is the keepalived.conf text that makes keepalived read path.
func KeepalivedSnippet(path string) string {
	return fmt.Sprintf(`track_file uplinkd {
    file %q
    weight 1
    init_file 0
}
vrrp_sync_group gateway {        # the group with the LAN and every ISP instance
    track_file { uplinkd weight 1 }
    ...
}`, path)
}

// Check is for `uplinkd --check`: the track file's directory must exist and be writable (it
// creates and removes a probe file there); the error shows what keepalived.conf must say.
// Warnings are returned for what is not fatal for uplinkd: no keepalived binary on PATH, no
// keepalived process running, a track file that holds something else than a number.
func Check(path string) (warnings []string, err error) {
	if path == "" {
		path = DefaultTrackFile
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("ha: track file %q: want an absolute path", path)
	}
	dir := filepath.Dir(path)
	hint := "\nkeepalived.conf must read the same file, on the sync group:\n" + KeepalivedSnippet(path)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("ha: track file %s: directory %s: %w%s", path, dir, err, hint)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("ha: track file %s: %s is not a directory", path, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-")
	if err != nil {
		return nil, fmt.Errorf("ha: track file %s: directory %s is not writable: %w%s", path, dir, err, hint)
	}
	f.Close()
	os.Remove(f.Name())
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return nil, fmt.Errorf("ha: track file %s is a directory", path)
		}
		if _, err := ReadValue(path); err != nil {
			warnings = append(warnings, fmt.Sprintf("%v (uplinkd will overwrite it)", err))
		}
	}
	if _, err := exec.LookPath("keepalived"); err != nil {
		warnings = append(warnings, "no keepalived on PATH: the track file steers nothing until keepalived runs (Debian: apt install keepalived)")
	} else if !processRunning("keepalived") {
		warnings = append(warnings, "no keepalived process is running")
	}
	return warnings, nil
}

// processRunning says whether a process with this command name runs (in this PID namespace).
func processRunning(name string) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(b)) == name {
			return true
		}
	}
	return false
}
