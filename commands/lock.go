package commands

import (
	"context"
	"errors"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/resp"
)

// LOCK.ACQUIRE name [ttl] [WAIT ms] [MAXHOLD ms] [DETACHED] [LIMIT n | SHARED]
func (h *Handler) acquire(c *resp.Conn, cl *client, args [][]byte) {
	a, err := h.parseAcquire(args)
	if err != nil {
		h.writeError(c, err)
		return
	}
	start := time.Now()
	var token string
	if a.opt.Wait > 0 {
		// Blocking: the wait must end the moment the client hangs up.
		c.Block(func(ctx context.Context) {
			token, err = cl.sess.Acquire(ctx, a.name, a.opt)
		})
	} else {
		token, err = cl.sess.Acquire(c.Context(), a.name, a.opt)
	}
	waited := time.Since(start)
	if err == nil && token != "" && !cl.sess.Holds(a.name, token) {
		err = lockcore.ErrTooSlow
	}
	switch {
	case errors.Is(err, context.Canceled):
		// The client gave up waiting and left: not a failure of lockproxy.
		h.counted("acquire", "timeout")
		h.obs.Acquire("timeout", waited)
		h.writeError(c, err)
	case err != nil:
		h.counted("acquire", "error")
		h.obs.Acquire("error", waited)
		h.writeError(c, err)
	case token == "":
		h.counted("acquire", "timeout")
		h.obs.Acquire("timeout", waited)
		c.WriteNull()
	default:
		h.counted("acquire", "acquired")
		h.obs.Acquire("acquired", waited)
		c.WriteBulkString(token)
	}
}

// LOCK.RENEW name ttl [token]
func (h *Handler) renew(c *resp.Conn, cl *client, args [][]byte) {
	a, err := h.parseRenew(args)
	if err != nil {
		h.writeError(c, err)
		return
	}
	ok, err := cl.sess.Renew(c.Context(), a.name, a.ttl, a.token)
	if err != nil {
		h.counted("renew", "error")
		h.obs.Renew("error")
		h.writeError(c, err)
		return
	}
	h.counted("renew", result(ok, "renewed"))
	h.obs.Renew(result(ok, "renewed"))
	c.WriteInt(boolInt(ok))
}

// LOCK.RELEASE name [token]
func (h *Handler) release(c *resp.Conn, cl *client, args [][]byte) {
	a, err := h.parseRelease(args)
	if err != nil {
		h.writeError(c, err)
		return
	}
	ok, err := cl.sess.Release(c.Context(), a.name, a.token)
	if err != nil {
		h.counted("release", "error")
		h.obs.Release("error")
		h.writeError(c, err)
		return
	}
	h.counted("release", result(ok, "released"))
	h.obs.Release(result(ok, "released"))
	c.WriteInt(boolInt(ok))
}

// LOCK.INFO name
func (h *Handler) info(c *resp.Conn, cl *client, args [][]byte) {
	name, err := h.parseName(args[1])
	if err != nil {
		h.writeError(c, err)
		return
	}
	in, err := cl.sess.Info(c.Context(), name)
	if err != nil {
		h.writeError(c, err)
		return
	}
	ttl := int64(-2)
	if in.Held {
		// Round up, so a lock with time left never shows 0.
		ttl = int64((in.TTL + time.Millisecond - 1) / time.Millisecond)
	}
	fields := 8
	if in.Owner == lockcore.OwnerSelf {
		fields++
	}
	c.WriteMap(fields)
	c.WriteBulkString("held")
	c.WriteInt(boolInt(in.Held))
	c.WriteBulkString("fence")
	c.WriteInt(in.Fence)
	c.WriteBulkString("ttl")
	c.WriteInt(ttl)
	c.WriteBulkString("owner")
	c.WriteBulkString(string(in.Owner))
	if in.Owner == lockcore.OwnerSelf {
		c.WriteBulkString("mode")
		if in.Detached {
			c.WriteBulkString("detached")
		} else {
			c.WriteBulkString("owned")
		}
	}
	c.WriteBulkString("waiters")
	c.WriteInt(int64(in.Waiters))
	kind := "none"
	if in.Held {
		kind = in.Kind.Mode()
	}
	c.WriteBulkString("kind")
	c.WriteBulkString(kind)
	c.WriteBulkString("holders")
	c.WriteInt(int64(in.Holders))
	c.WriteBulkString("limit")
	c.WriteInt(int64(max(in.Kind.Limit, 0)))
}

// LOCK.HELD
func (h *Handler) held(c *resp.Conn, cl *client, _ [][]byte) {
	names := cl.sess.Held()
	c.WriteArray(len(names))
	for _, n := range names {
		c.WriteBulkString(n)
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func result(ok bool, success string) string {
	if ok {
		return success
	}
	return "not_held"
}
