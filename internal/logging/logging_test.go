package logging_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/logging"
)

func TestThrottle(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	log := slog.New(logging.Throttle(slog.NewTextHandler(&buf, nil), 10*time.Second, func() time.Time { return now }))
	for range 5 {
		log.Warn("upstream error", "err", "refused")
	}
	log.Info("chatty but not throttled")
	log.Info("chatty but not throttled")
	log.Error("another message")
	now = now.Add(11 * time.Second)
	log.Warn("upstream error", "err", "refused")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5 (1 warn, 2 info, 1 error, 1 warn after the interval):\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[4], "suppressed=4") {
		t.Errorf("suppressed counts wrong:\n%s", buf.String())
	}
}

// Audit records pass however often they come: each is someone's action.
func TestAuditNotThrottled(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	log := slog.New(logging.Throttle(slog.NewTextHandler(&buf, nil), 10*time.Second, func() time.Time { return now }))
	log.Warn("force release", "lock", "unmarked")
	for i := range 3 {
		log.Warn("force release", "lock", i, logging.Audit)
	}
	log.Warn("force release", "lock", "unmarked, again")
	if n, audits := strings.Count(buf.String(), "force release"), strings.Count(buf.String(), "audit=true"); n != 4 || audits != 3 {
		t.Errorf("%d lines, %d audits; want the first unmarked record, the 3 audit ones, and not the second unmarked one:\n%s",
			n, audits, buf.String())
	}
}

func TestFormats(t *testing.T) {
	var buf bytes.Buffer
	logging.New(&buf, "json", "debug", 0).Debug("hello", "k", 1)
	if !strings.HasPrefix(buf.String(), `{"time":`) || !strings.Contains(buf.String(), `"k":1`) {
		t.Errorf("json: %s", buf.String())
	}
	buf.Reset()
	logging.New(&buf, "text", "warn", 0).Info("hidden")
	if buf.Len() != 0 {
		t.Errorf("info logged at level warn: %s", buf.String())
	}
}

// Durations read the same in both formats, as Go writes them ("10s"), not
// as a count of nanoseconds in JSON.
func TestDurations(t *testing.T) {
	for _, tc := range []struct{ format, want string }{
		{"json", `"timeout":"10s","g":{"took":"1.5ms"}`},
		{"text", `timeout=10s g.took=1.5ms`},
	} {
		var buf bytes.Buffer
		logging.New(&buf, tc.format, "info", 0).Info("m", "timeout", 10*time.Second,
			slog.Group("g", slog.Duration("took", 1500*time.Microsecond)))
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("%s: %s\nwant it to contain %s", tc.format, buf.String(), tc.want)
		}
	}
}
