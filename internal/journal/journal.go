// Package journal is a log/slog handler that writes to systemd's journal with native fields:
// every attribute of a record becomes an upper-case field (uplink → UPLINK, reason → REASON),
// so that `journalctl -u uplinkd UPLINK=isp1` finds one uplink's lines. MESSAGE is the line a
// person reads (the message and its attributes as key=value, like the text handler without
// time and level, which the journal records itself); PRIORITY is the level.
package journal

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// Sender sends one entry to the journal: journal.Send, or a fake in tests.
type Sender func(message string, priority journal.Priority, fields map[string]string) error

// Identifier is the SYSLOG_IDENTIFIER of every entry (journalctl -t uplinkd).
const Identifier = "uplinkd"

// Handler is a slog.Handler that sends records to the journal.
type Handler struct {
	send     Sender
	fallback io.Writer // where a record goes when the journal refuses it
	level    slog.Leveler
	prefix   string      // the open groups, as a field name prefix ("GROUP_")
	fields   []slog.Attr // from WithAttrs, keys already field names
	text     *formatter
}

// formatter renders MESSAGE with slog's text handler, without time and level.
type formatter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
	h   slog.Handler
}

// New returns a handler that sends with send; records the journal refuses are written to
// fallback as text lines. opts may be nil.
func New(send Sender, fallback io.Writer, opts *slog.HandlerOptions) *Handler {
	var level slog.Leveler = slog.LevelInfo
	if opts != nil && opts.Level != nil {
		level = opts.Level
	}
	buf := &bytes.Buffer{}
	text := slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: slog.LevelDebug - 100, // the level is checked by Handler
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &Handler{send: send, fallback: fallback, level: level, text: &formatter{mu: &sync.Mutex{}, buf: buf, h: text}}
}

// Send is the journal's sender (journal.Send); use it when Available.
var Send Sender = journal.Send

// Available reports whether uplinkd's stderr goes to the journal (systemd sets JOURNAL_STREAM
// for a service whose output it collects) and the journal's socket is there.
func Available(getenv func(string) string) bool {
	return getenv("JOURNAL_STREAM") != "" && journal.Enabled()
}

func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.fields = append(append([]slog.Attr(nil), h.fields...), prefixed(h.prefix, attrs)...)
	c.text = &formatter{mu: h.text.mu, buf: h.text.buf, h: h.text.h.WithAttrs(attrs)}
	return &c
}

func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + FieldName(name) + "_"
	c.text = &formatter{mu: h.text.mu, buf: h.text.buf, h: h.text.h.WithGroup(name)}
	return &c
}

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	fields := map[string]string{"SYSLOG_IDENTIFIER": Identifier}
	for _, a := range h.fields {
		addField(fields, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addField(fields, h.prefix, a)
		return true
	})
	msg := h.text.format(ctx, r)
	if err := h.send(msg, priority(r.Level), fields); err != nil {
		line := r.Time.Format(time.RFC3339Nano) + " " + r.Level.String() + " " + msg + "\n"
		_, werr := io.WriteString(h.fallback, line)
		return werr
	}
	return nil
}

func (f *formatter) format(ctx context.Context, r slog.Record) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf.Reset()
	r.Time = time.Time{} // not written: the journal keeps its own
	_ = f.h.Handle(ctx, r)
	return strings.TrimSuffix(f.buf.String(), "\n")
}

func prefixed(prefix string, attrs []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = slog.Attr{Key: prefix + FieldName(a.Key), Value: a.Value}
	}
	return out
}

// addField adds a (groups flattened with "_") to fields. A field the journal reserves keeps
// its value; the attribute is stored with a trailing underscore.
func addField(fields map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if a.Key == "" && v.Kind() != slog.KindGroup {
		return
	}
	name := prefix + FieldName(a.Key)
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = name + "_"
		}
		for _, g := range v.Group() {
			addField(fields, p, g)
		}
		return
	}
	if _, taken := fields[name]; taken || reserved[name] {
		name += "_"
	}
	switch v.Kind() {
	case slog.KindTime:
		fields[name] = v.Time().Format(time.RFC3339Nano)
	default:
		fields[name] = v.String()
	}
}

// reserved are fields with a meaning to the journal that attributes must not set.
var reserved = map[string]bool{"MESSAGE": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true, "MESSAGE_ID": true, "CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true, "ERRNO": true}

// FieldName turns an attribute key into a journal field name: upper case, every character
// other than A-Z, 0-9 and _ replaced by _, no leading underscore ("took" → "TOOK",
// "pin-connections" → "PIN_CONNECTIONS").
func FieldName(key string) string {
	b := []byte(strings.ToUpper(key))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			b[i] = '_'
		}
	}
	s := strings.TrimLeft(string(b), "_")
	if s == "" {
		return "ATTR"
	}
	return s
}

// priority maps slog levels to syslog priorities.
func priority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
