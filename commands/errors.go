package commands

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/resp"
)

// writeError is the one place where an error becomes a reply. Anything it
// does not know came from the upstream: "-UPSTREAM ...", logged. It is never
// a null, which would mean "held by someone else".
func (h *Handler) writeError(c *resp.Conn, err error) {
	var ae argError
	var qe *lockcore.QuietError
	switch {
	case errors.As(err, &ae):
		c.WriteError(string(ae))
	case errors.Is(err, lockcore.ErrTooManyLocks):
		c.WriteError("ERR max locks per connection reached (LOCKPROXY_MAX_LOCKS_PER_CONN=" +
			strconv.Itoa(h.locks.Config().MaxLocksPerSession) + ")")
	case errors.Is(err, lockcore.ErrTooManyWaiters):
		c.WriteError("ERR max waiters for this lock reached (LOCKPROXY_MAX_WAITERS_PER_NAME=" +
			strconv.Itoa(h.locks.Config().MaxWaitersPerName) + ")")
	case errors.Is(err, lockcore.ErrShuttingDown), errors.Is(err, lockcore.ErrClosed):
		c.WriteError("ERR lockproxy is shutting down")
	case errors.As(err, &qe):
		// Not logged per call: CheckUpstream logged the reset once, and a
		// busy sidecar refuses thousands of these.
		c.WriteError("UPSTREAM quiet period: the upstream restarted or failed over and may have lost its locks; " +
			"no lock is granted for another " + roundLeft(qe.Left) + " (LOCKPROXY_QUIET_PERIOD)")
	case errors.Is(err, lockcore.ErrStoreReset):
		c.WriteError("UPSTREAM the upstream restarted or failed over and may have lost its locks; " +
			"lockproxy is checking it, retry shortly")
	case errors.Is(err, context.Canceled):
		// Only the connection's going away cancels a command: the client hung
		// up mid-WAIT, and the reply goes nowhere.
		c.WriteError("ERR connection closed")
	default:
		h.log.Warn("upstream error", "err", err)
		c.WriteError("UPSTREAM " + err.Error())
	}
}

// roundLeft shows a time left to the second, or to the millisecond (up,
// so that time left never shows as 0s) under one.
func roundLeft(d time.Duration) string {
	if d < time.Second {
		return ((d + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
