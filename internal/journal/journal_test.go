package journal

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

type entry struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
}

type fakeJournal struct {
	entries []entry
	err     error
}

func (f *fakeJournal) send(msg string, pri journal.Priority, fields map[string]string) error {
	if f.err != nil {
		return f.err
	}
	f.entries = append(f.entries, entry{msg, pri, fields})
	return nil
}

func TestEveryAttributeBecomesAnUpperCaseField(t *testing.T) {
	j := &fakeJournal{}
	log := slog.New(New(j.send, nil, nil))
	log.Info("uplink state", "uplink", "isp1", "from", "up", "to", "down", "reason", "3 rounds without quorum", "took", 14*time.Millisecond)
	if len(j.entries) != 1 {
		t.Fatalf("%d entries, want 1", len(j.entries))
	}
	e := j.entries[0]
	want := map[string]string{"SYSLOG_IDENTIFIER": "uplinkd", "UPLINK": "isp1", "FROM": "up", "TO": "down", "REASON": "3 rounds without quorum", "TOOK": "14ms"}
	if !reflect.DeepEqual(e.fields, want) {
		t.Errorf("fields %v\nwant   %v", e.fields, want)
	}
	if e.pri != journal.PriInfo {
		t.Errorf("priority %d, want info", e.pri)
	}
	if e.msg != `msg="uplink state" uplink=isp1 from=up to=down reason="3 rounds without quorum" took=14ms` {
		t.Errorf("MESSAGE %q: want the text line without time and level", e.msg)
	}
}

func TestGroupsWithAttrsLevelsAndReservedNames(t *testing.T) {
	j := &fakeJournal{}
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	log := slog.New(New(j.send, nil, &slog.HandlerOptions{Level: level})).With("component", "hooks")
	log.Info("not sent: below the level")
	log.WithGroup("run").Warn("hook failed", "exit", 3, "message", "x", slog.Group("proc", "pid", 7))
	log.Error("boom", "err", errors.New("netlink: file exists"))
	if len(j.entries) != 2 {
		t.Fatalf("%d entries, want 2 (info is below warn)", len(j.entries))
	}
	w := j.entries[0]
	want := map[string]string{"SYSLOG_IDENTIFIER": "uplinkd", "COMPONENT": "hooks", "RUN_EXIT": "3", "RUN_MESSAGE": "x", "RUN_PROC_PID": "7"}
	if !reflect.DeepEqual(w.fields, want) || w.pri != journal.PriWarning {
		t.Errorf("warn entry %v (priority %d)\nwant %v", w.fields, w.pri, want)
	}
	if e := j.entries[1]; e.pri != journal.PriErr || e.fields["ERR"] != "netlink: file exists" {
		t.Errorf("error entry %+v", e)
	}
	j2 := &fakeJournal{}
	slog.New(New(j2.send, nil, nil)).Info("m", "message", "shadow", "priority", "high")
	if f := j2.entries[0].fields; f["MESSAGE_"] != "shadow" || f["PRIORITY_"] != "high" || f["MESSAGE"] != "" {
		t.Errorf("reserved names must not be set by attributes: %v", f)
	}
}

func TestFieldNamesAreWhatTheJournalAccepts(t *testing.T) {
	for in, want := range map[string]string{"uplink": "UPLINK", "pin_connections": "PIN_CONNECTIONS", "pin-connections": "PIN_CONNECTIONS", "_x": "X", "ünï": "N__", "": "ATTR", "__": "ATTR"} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestARefusedEntryGoesToTheFallback(t *testing.T) {
	var out bytes.Buffer
	j := &fakeJournal{err: errors.New("journal socket gone")}
	slog.New(New(j.send, &out, nil)).Warn("uplink state", "uplink", "isp1")
	if !strings.Contains(out.String(), `WARN msg="uplink state" uplink=isp1`) {
		t.Errorf("fallback got %q", out.String())
	}
}

func TestAvailableNeedsJournalStream(t *testing.T) {
	if Available(func(string) string { return "" }) {
		t.Error("available without JOURNAL_STREAM")
	}
}
