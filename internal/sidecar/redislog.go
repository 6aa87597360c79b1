package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// redisLog is go-redis's logger (redis.SetLogger) writing through
// lockproxy's: its own lines, such as failed dials while the upstream is
// down, would otherwise go to stderr as plain text, in no format a log
// shipper expects. They are warnings, go-redis's trouble, but for the
// Sentinel client's news of which primary it uses, which is information.
type redisLog struct{ log *slog.Logger }

// Printf implements go-redis's logging interface. The message is one
// constant, with go-redis's text as an attribute, so that the throttle
// holds back an outage's flood of failed dials as one message.
func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	// go-redis starts most of its lines with its own "redis: ".
	text := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	if strings.HasPrefix(text, "sentinel: selected addr") || strings.HasPrefix(text, "sentinel: new master") {
		l.log.InfoContext(ctx, "redis client", "detail", text)
		return
	}
	l.log.WarnContext(ctx, "redis client", "detail", text)
}
