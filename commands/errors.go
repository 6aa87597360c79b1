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
	reply, upstream := h.errorReply(err)
	if upstream {
		h.log.Warn("upstream error", "err", err)
	}
	c.WriteError(reply)
}

// errorReply is err's reply, code included, and whether err is one the
// upstream caused (to be logged).
func (h *Handler) errorReply(err error) (reply string, upstream bool) {
	var ae argError
	var qe *lockcore.QuietError
	var ke *lockcore.KindError
	switch {
	case errors.As(err, &ae):
		return string(ae), false
	case errors.As(err, &ke):
		// Redis's code for a key of another type: clients tell it apart.
		return "WRONGTYPE " + ke.Error(), false
	case errors.Is(err, lockcore.ErrTooManyLocks):
		return "ERR max locks per connection reached (LOCKPROXY_MAX_LOCKS_PER_CONN=" +
			strconv.Itoa(h.locks.Config().MaxLocksPerSession) + ")", false
	case errors.Is(err, lockcore.ErrTooManyWaiters):
		return "ERR max waiters for this lock reached (LOCKPROXY_MAX_WAITERS_PER_NAME=" +
			strconv.Itoa(h.locks.Config().MaxWaitersPerName) + ")", false
	case errors.Is(err, lockcore.ErrTooManyDetached):
		return "ERR max detached locks reached on this sidecar (LOCKPROXY_MAX_DETACHED=" +
			strconv.Itoa(h.locks.Config().MaxDetached) + "): release some by token, or wait for their ttl", false
	case errors.Is(err, lockcore.ErrShuttingDown):
		return "ERR lockproxy is shutting down", false
	case errors.As(err, &qe):
		// Not logged per call: CheckUpstream logged the reset once, and a
		// busy sidecar refuses thousands of these.
		return "UPSTREAM quiet period: the upstream restarted or failed over and may have lost its locks; " +
			"no lock is granted for another " + roundLeft(qe.Left) + " (LOCKPROXY_QUIET_PERIOD)", false
	case errors.Is(err, lockcore.ErrStoreReset), errors.Is(err, lockcore.ErrServerChanged):
		return "UPSTREAM the upstream restarted or failed over and may have lost its locks; " +
			"lockproxy is checking it, retry shortly", false
	case errors.Is(err, context.Canceled), errors.Is(err, lockcore.ErrClosed):
		// The connection went away: its going cancels a command (the client
		// hung up mid-WAIT) and closes its session. The reply goes nowhere,
		// but it must not claim a shutdown that is not happening.
		return "ERR connection closed", false
	default:
		return "UPSTREAM " + err.Error(), true
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
