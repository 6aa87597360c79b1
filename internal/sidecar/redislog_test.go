package sidecar

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// go-redis's lines go through lockproxy's log: trouble as warnings, the
// Sentinel client's news of its primary as information, without go-redis's
// own "redis: " prefix.
func TestRedisLogLevels(t *testing.T) {
	var b bytes.Buffer
	l := redisLog{slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx := context.Background()
	l.Printf(ctx, "redis: connection pool: failed to dial after %d attempts: %v", 5, "refused")
	l.Printf(ctx, "sentinel: new master=%q addr=%q", "m", "127.0.0.1:1")
	l.Printf(ctx, "sentinel: selected addr=%s masterAddr=%s", "a", "b")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []struct{ level, detail string }{
		{"WARN", `detail="connection pool: failed to dial after 5 attempts: refused"`},
		{"INFO", `detail="sentinel: new master=\"m\" addr=\"127.0.0.1:1\""`},
		{"INFO", `detail="sentinel: selected addr=a masterAddr=b"`},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], "level="+w.level) || !strings.Contains(lines[i], w.detail) {
			t.Errorf("line %d = %s, want level=%s and %s", i, lines[i], w.level, w.detail)
		}
	}
}
