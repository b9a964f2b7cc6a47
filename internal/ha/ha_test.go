package ha

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHAValue(t *testing.T) {
	for _, c := range []struct {
		usable, total int
		standby       bool
		want          int
	}{
		{2, 2, false, 0},
		{1, 2, false, -10},
		{0, 2, false, -20},
		{3, 2, false, 0},    // clamped
		{-1, 2, false, -20}, // clamped
		{0, 0, false, 0},
		{0, 30, false, -90}, // capped: stays above standby
		{2, 2, true, StandbyValue},
		{0, 2, true, StandbyValue},
	} {
		if got := Value(c.usable, c.total, c.standby); got != c.want {
			t.Errorf("Value(%d, %d, %v) = %d, want %d", c.usable, c.total, c.standby, got, c.want)
		}
	}
}

// The properties the package promises, checked over a range of pairs with base priority 100
// and weight 1, against keepalived's clamping to 1..254.
func TestHAValueProperties(t *testing.T) {
	const base = 100
	prio := func(v int) int { return min(max(base+v, 1), 254) }
	for total := 1; total <= 12; total++ {
		if Value(total, total, false) != 0 {
			t.Errorf("all %d usable: not the base priority", total)
		}
		for a := 0; a <= total; a++ {
			va := Value(a, total, false)
			if va <= FaultThreshold || StandbyValue <= FaultThreshold {
				t.Fatalf("a value reaches FAULT")
			}
			if prio(va) <= prio(StandbyValue) {
				t.Errorf("%d/%d usable: priority %d not above standby's %d", a, total, prio(va), prio(StandbyValue))
			}
			for b := a + 1; b <= total && b-a <= MaxMissing; b++ {
				if total-a > MaxMissing {
					continue
				}
				if prio(Value(b, total, false)) <= prio(va) {
					t.Errorf("%d/%d usable does not beat %d/%d", b, total, a, total)
				}
			}
		}
	}
}

func TestHATrackerWritesOnChangeOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prio")
	if err := os.WriteFile(path, []byte("-200\n"), 0o600); err != nil { // a stale standby
		t.Fatal(err)
	}
	tr := NewTracker(path)
	if _, ok := tr.Last(); ok {
		t.Fatal("Last before Set")
	}
	if err := tr.Set(2, 2, false); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadValue(path); err != nil || v != 0 {
		t.Fatalf("after Set(2,2): %d, %v", v, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	// Same value: no write (the file is replaced behind its back and must stay so).
	if err := os.WriteFile(path, []byte("7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tr.Set(2, 2, false); err != nil {
		t.Fatal(err)
	}
	if v, _ := ReadValue(path); v != 7 {
		t.Errorf("Set with an unchanged value rewrote the file: %d", v)
	}
	if err := tr.Set(1, 2, false); err != nil {
		t.Fatal(err)
	}
	if v, _ := ReadValue(path); v != -10 {
		t.Errorf("after Set(1,2): %d", v)
	}
	if err := tr.Set(1, 2, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := ReadValue(path); v != StandbyValue {
		t.Errorf("standby: %d", v)
	}
	if v, ok := tr.Last(); !ok || v != StandbyValue {
		t.Errorf("Last = %d, %v", v, ok)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestHATrackerMissingDir(t *testing.T) {
	tr := NewTracker(filepath.Join(t.TempDir(), "nope", "prio"))
	err := tr.Set(1, 2, false)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := tr.Last(); ok {
		t.Error("a failed write counts as written")
	}
}

func TestHACheck(t *testing.T) {
	dir := t.TempDir()
	if _, err := Check(filepath.Join(dir, "missing", "prio")); err == nil || !strings.Contains(err.Error(), "track_file uplinkd") {
		t.Errorf("missing dir: %v", err)
	}
	if _, err := Check("relative"); err == nil {
		t.Error("relative path accepted")
	}
	path := filepath.Join(dir, "prio")
	if err := os.WriteFile(path, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	warns, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) == 0 || !strings.Contains(warns[0], "not a number") {
		t.Errorf("warnings %q", warns)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o755)
		if _, err := Check(path); err == nil || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("read-only dir: %v", err)
		}
	}
}
