// Package logging builds lockproxy's logger: text or JSON at a level, with
// repeated warnings and errors throttled, so that an outage, in which every
// request fails the same way, does not flood the log.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// New returns a logger writing to w in format "text" or "json" at level
// ("debug", "info", "warn", "error"), letting through at most one warning
// or error with the same message every interval (0: 10s). Durations are
// written as Go writes them, "10s", in both formats.
func New(w io.Writer, format, level string, interval time.Duration) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: durationString}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(Throttle(h, interval, time.Now))
}

// durationString renders a duration as its String: the JSON handler
// would write nanoseconds, a number no reader takes for "10s", and one
// that differs from the text format and from the settings as written.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// Throttle wraps h so that records at Warn or above with the same message
// pass at most once per interval; the next one to pass says how many were
// held back, in a "suppressed" attribute. A record with the attribute
// Audit always passes: it says who did what, which an outage's flood is
// not.
func Throttle(h slog.Handler, interval time.Duration, now func() time.Time) slog.Handler {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	return &throttle{next: h, state: &throttleState{interval: interval, now: now, seen: map[string]*seen{}}}
}

type throttle struct {
	next  slog.Handler
	state *throttleState // shared by the handlers WithAttrs and WithGroup derive
}

type throttleState struct {
	interval time.Duration
	now      func() time.Time
	mu       sync.Mutex
	seen     map[string]*seen // guarded by mu; by message
}

type seen struct {
	last       time.Time
	suppressed int
}

func (t *throttle) Enabled(ctx context.Context, l slog.Level) bool { return t.next.Enabled(ctx, l) }

// Audit marks a record Throttle never holds back.
var Audit = slog.Bool("audit", true)

func (t *throttle) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn || audited(r) {
		return t.next.Handle(ctx, r)
	}
	s := t.state
	s.mu.Lock()
	now := s.now()
	e := s.seen[r.Message]
	if e == nil {
		e = &seen{}
		s.seen[r.Message] = e
		if len(s.seen) > 1000 {
			clear(s.seen) // bounded: messages are constant strings, but be safe
			s.seen[r.Message] = e
		}
	}
	if !e.last.IsZero() && now.Sub(e.last) < s.interval {
		e.suppressed++
		s.mu.Unlock()
		return nil
	}
	held := e.suppressed
	e.last, e.suppressed = now, 0
	s.mu.Unlock()
	if held > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", held))
	}
	return t.next.Handle(ctx, r)
}

func (t *throttle) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &throttle{next: t.next.WithAttrs(attrs), state: t.state}
}

func (t *throttle) WithGroup(name string) slog.Handler {
	return &throttle{next: t.next.WithGroup(name), state: t.state}
}

// audited reports whether r carries Audit.
func audited(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Equal(Audit)
		return !found
	})
	return found
}
