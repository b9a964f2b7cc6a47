package statefile

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestWhatIsRememberedIsReadBackAfterARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json") // the directory is made
	since := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	p := netip.MustParsePrefix("2001:db8:a1::/64")
	s := Open(path, nil)
	if st := s.State(); st.Drained != nil || st.GonePrefixes != nil {
		t.Fatalf("a missing file: %+v, want nothing remembered", st)
	}
	s.Update(func(st *State) {
		st.Drained = map[string]bool{"isp1": true}
		st.GonePrefixes = map[string]map[netip.Prefix]time.Time{"lan0": {p: since}}
	})
	want := State{Drained: map[string]bool{"isp1": true}, GonePrefixes: map[string]map[netip.Prefix]time.Time{"lan0": {p: since}}}
	if got := Open(path, nil).State(); !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file %v %v: want mode 0600", fi, err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".state-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// A copy handed out is not the store's: changing it changes nothing.
	s.State().Drained["isp2"] = true
	if s.State().Drained["isp2"] {
		t.Errorf("State returned the store's own map")
	}
}

func TestAnUnchangedStateIsNotWrittenAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s := Open(path, nil)
	s.Update(func(st *State) { st.Drained = map[string]bool{"isp1": false} })
	os.Remove(path)
	s.Update(func(st *State) { st.Drained = map[string]bool{"isp1": false} })
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("an Update that changed nothing wrote the file: %v", err)
	}
}

func TestABadFileMeansNothingRemembered(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"garbage": "{not json", "wrong types": `{"drained": ["isp1"]}`, "empty": ""} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(text), 0o600)
		s := Open(path, nil)
		if st := s.State(); st.Drained != nil || st.GonePrefixes != nil {
			t.Errorf("%s: %+v, want nothing remembered", name, st)
		}
		s.Update(func(st *State) { st.Drained = map[string]bool{"isp2": true} }) // and it is replaced
		if got := Open(path, nil).State().Drained; !got["isp2"] {
			t.Errorf("%s: not replaced by a good state: %v", name, got)
		}
	}
}

func TestANilStoreRemembersNothing(t *testing.T) {
	var s *Store
	s.Update(func(st *State) { st.Drained = map[string]bool{"isp1": true} })
	if st := s.State(); st.Drained != nil {
		t.Errorf("%+v", st)
	}
}

func TestAFailedWriteIsNotFatal(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	s := Open(filepath.Join(blocker, "state.json"), nil) // its directory is a file
	s.Update(func(st *State) { st.Drained = map[string]bool{"isp1": true} })
	if !s.State().Drained["isp1"] {
		t.Errorf("the running daemon lost the state it could not write")
	}
}
