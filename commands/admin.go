package commands

import (
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/lockproxy/lockproxy/resp"
)

// listCountDefault and listCountMax bound LOCK.LIST's COUNT: one call
// inspects that many names at most, each a call to the upstream.
const (
	listCountDefault = 100
	listCountMax     = 1000
)

// admin reports whether cl may run the admin command cmd, writing the
// refusal when not.
func (h *Handler) admin(c *resp.Conn, cl *client, cmd string) bool {
	switch {
	case h.cfg.AdminPassword == "":
		c.WriteError("ERR " + cmd + " is off: set LOCKPROXY_ADMIN_PASSWORD to enable admin commands")
		return false
	case !cl.admin:
		c.WriteError("NOPERM " + cmd + " needs the admin user: AUTH admin <LOCKPROXY_ADMIN_PASSWORD>")
		return false
	}
	return true
}

// LOCK.LIST [MATCH pattern] [COUNT n]
func (h *Handler) lockList(c *resp.Conn, cl *client, args [][]byte) {
	if !h.admin(c, cl, "LOCK.LIST") {
		return
	}
	pattern, count := "*", listCountDefault
	var sawMatch, sawCount bool
	for rest := args[1:]; len(rest) > 0; rest = rest[2:] {
		opt := lowerASCII(string(rest[0]))
		switch {
		case opt == "match" && !sawMatch && len(rest) >= 2:
			pattern, sawMatch = string(rest[1]), true
		case opt == "count" && !sawCount && len(rest) >= 2:
			n, err := parseInt(rest[1])
			if err != nil || n < 1 || n > listCountMax {
				c.WriteError("ERR invalid COUNT in 'lock.list' command: it must be 1.." + strconv.Itoa(listCountMax))
				return
			}
			count, sawCount = int(n), true
		default:
			c.WriteError(string(errSyntax))
			return
		}
	}
	entries, err := h.locks.List(c.Context(), func(name string) bool { return globMatch(pattern, name) }, count)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.WriteArray(len(entries))
	for _, e := range entries {
		kind := "none"
		if len(e.Holders) > 0 {
			kind = e.Kind.Mode()
		}
		c.WriteMap(5)
		c.WriteBulkString("name")
		c.WriteBulkString(e.Name)
		c.WriteBulkString("kind")
		c.WriteBulkString(kind)
		c.WriteBulkString("limit")
		c.WriteInt(int64(max(e.Kind.Limit, 0)))
		c.WriteBulkString("waiters")
		c.WriteInt(int64(e.Waiters))
		c.WriteBulkString("holders")
		c.WriteArray(len(e.Holders))
		for _, hd := range e.Holders {
			c.WriteMap(7)
			c.WriteBulkString("fence")
			c.WriteInt(hd.Fence)
			c.WriteBulkString("sidecar")
			c.WriteBulkString(hd.Sidecar)
			c.WriteBulkString("local")
			c.WriteInt(boolInt(hd.Sidecar == h.locks.ID()))
			c.WriteBulkString("client")
			c.WriteBulkString(hd.Client.Name)
			c.WriteBulkString("addr")
			c.WriteBulkString(hd.Client.Addr)
			c.WriteBulkString("ttl")
			c.WriteInt(int64((hd.TTL + time.Millisecond - 1) / time.Millisecond))
			c.WriteBulkString("revoked")
			c.WriteInt(boolInt(hd.Revoked))
		}
	}
}

// globMatch is Redis's glob (KEYS, SCAN MATCH): * any run, ? any byte,
// [abc], [^a-z] and \ escapes.
func globMatch(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 1 && pattern[1] == '*' {
				pattern = pattern[1:]
			}
			if len(pattern) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(pattern[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			s = s[1:]
			pattern = pattern[1:]
		case '[':
			if s == "" {
				return false
			}
			end := strings.IndexByte(pattern[1:], ']')
			if end < 0 {
				return pattern == s // an unclosed class matches itself
			}
			class := pattern[1 : end+1]
			negate := strings.HasPrefix(class, "^")
			if negate {
				class = class[1:]
			}
			if inClass(class, s[0]) == negate {
				return false
			}
			s, pattern = s[1:], pattern[end+2:]
		case '\\':
			if len(pattern) > 1 {
				pattern = pattern[1:]
			}
			fallthrough
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
			s, pattern = s[1:], pattern[1:]
		}
	}
	return s == ""
}

// inClass reports whether b is in a [...] class's body: bytes and ranges.
func inClass(class string, b byte) bool {
	for i := 0; i < len(class); i++ {
		c := class[i]
		if c == '\\' && i+1 < len(class) {
			i++
			c = class[i]
		} else if i+2 < len(class) && class[i+1] == '-' {
			lo, hi := c, class[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if b >= lo && b <= hi {
				return true
			}
			i += 2
			continue
		}
		if b == c {
			return true
		}
	}
	return false
}

// LOCK.FORCERELEASE name
func (h *Handler) forceRelease(c *resp.Conn, cl *client, args [][]byte) {
	if !h.admin(c, cl, "LOCK.FORCERELEASE") {
		return
	}
	name, err := h.parseName(args[1])
	if err != nil {
		h.writeError(c, err)
		return
	}
	n, err := cl.sess.ForceRelease(c.Context(), name)
	// Logged whatever came of it: who took locks away from whom is what an
	// operator looks for afterwards.
	h.log.Warn("force release", "lock", name, "holders_revoked", n, "by", cl.describe(c), "err", err,
		slog.Bool("audit", true)) // never throttled (see internal/logging.Audit)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.WriteInt(int64(n))
}
