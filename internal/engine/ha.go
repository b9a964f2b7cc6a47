package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

// setTracker follows [ha] track_file: a new path makes a new tracker, "" none.
func (e *Engine) setTracker(path string) error {
	switch {
	case path == "":
		e.tracker, e.standby = nil, false
	case e.opt.NewTracker == nil:
		return errors.New("engine: [ha] is configured but this uplinkd has no track-file writer")
	case e.tracker == nil || path != e.cfg.HA.TrackFile:
		e.tracker = e.opt.NewTracker(path)
		e.standby = e.tracker.Standby() // a standby survives a restart of uplinkd
	}
	return nil
}

// steerVRRP tells keepalived, through the track file, how many uplinks this box can use, or
// that it is in standby. Not before every uplink has a first verdict: an uplinkd restarting on
// the master must not hand the addresses over because nothing is judged yet.
func (e *Engine) steerVRRP() {
	if e.tracker == nil || !e.ready {
		return
	}
	usable := 0
	for _, m := range e.members {
		s := m.machine.State()
		if s == uplink.Unknown {
			return
		}
		if s.Usable() {
			usable++
		}
	}
	err := e.tracker.Set(usable, len(e.members), e.standby)
	problem := ""
	if err != nil {
		problem = err.Error()
	}
	e.repairs.note(e.log, "ha", problem, "ha: writing keepalived's track file failed; keepalived keeps the last value")
}

// Standby puts this box in standby (on) for maintenance, or makes it an active member of the
// pair again: keepalived moves the virtual addresses to the peer, and back only if this box
// then has more usable uplinks.
func (e *Engine) Standby(on bool) error {
	return e.do(func() error {
		if e.tracker == nil {
			return fmt.Errorf("%w: add an [ha] section (track_file) and reload", api.ErrNotInPair)
		}
		if e.standby == on {
			return nil
		}
		e.standby = on
		reason := "operator: this box is active again"
		if on {
			reason = "operator: standby, the peer takes the virtual addresses"
		}
		e.log.Info("ha", "standby", on)
		e.hub.publish(api.Event{Time: time.Now(), Kind: api.KindHA, Reason: reason})
		e.steerVRRP()
		e.publishStatus()
		return nil
	})
}
