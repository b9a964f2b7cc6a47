// Package statefile keeps the little that must outlive a restart of uplinkd (an upgrade, a
// crash): an operator's drains, and the LAN prefixes still advertised dead after a
// renumbering. Everything else is learned again from the kernel and the probes. The file is
// written atomically (a new file renamed over the old), and a missing or unreadable one means
// "nothing remembered": a restart must never fail because of it.
package statefile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// State is what is remembered.
type State struct {
	// Drained are the uplinks an operator drained, by name; true: with --now.
	Drained map[string]bool `json:"drained,omitempty"`
	// GonePrefixes are, per LAN interface, the /64s that left it and since when: they are
	// advertised with lifetimes 0 for two hours after (RFC 9096 §3.5).
	GonePrefixes map[string]map[netip.Prefix]time.Time `json:"gone_prefixes,omitempty"`
}

// clone is a deep copy of s.
func (s State) clone() State {
	out := State{Drained: maps.Clone(s.Drained)}
	if s.GonePrefixes != nil {
		out.GonePrefixes = map[string]map[netip.Prefix]time.Time{}
		for n, g := range s.GonePrefixes {
			out.GonePrefixes[n] = maps.Clone(g)
		}
	}
	return out
}

// maxSize bounds what is read: the state is a few hundred bytes.
const maxSize = 1 << 20

// Store is the state file. Its methods are safe from several goroutines; a nil Store (no
// file configured) remembers nothing.
type Store struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	state   State
	written []byte
}

// Open reads the state at path; a missing file is an empty state, a bad one too (logged).
func Open(path string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, log: log}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		log.Warn("state file unreadable: nothing remembered from the last run", "file", path, "err", err)
	case len(b) > maxSize:
		log.Warn("state file too large: nothing remembered from the last run", "file", path, "bytes", len(b))
	default:
		var st State
		if err := json.Unmarshal(b, &st); err != nil {
			log.Warn("state file unparsable: nothing remembered from the last run", "file", path, "err", err)
			break
		}
		s.state, s.written = st, bytes.TrimSpace(b)
	}
	return s
}

// State returns a copy of what is remembered.
func (s *Store) State() State {
	if s == nil {
		return State{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.clone()
}

// Update changes the state with f and writes it when it changed. A failed write is logged,
// never returned: the daemon's work does not depend on it.
func (s *Store) Update(f func(*State)) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state.clone()
	f(&st)
	b, err := json.Marshal(st)
	if err != nil || bytes.Equal(b, s.written) {
		return
	}
	s.state = st
	if err := write(s.path, b); err != nil {
		s.log.Warn("state file not written: a restart will not remember it", "file", s.path, "err", err)
		return
	}
	s.written = b
}

// write replaces path with b atomically: a crash leaves the old file or the new one.
func write(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", tmp.Name(), err)
	}
	return os.Rename(tmp.Name(), path)
}
