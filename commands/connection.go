package commands

import (
	"crypto/sha256"
	"crypto/subtle"
	"strconv"
	"strings"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/resp"
)

// redisVersion is the Redis version whose protocol lockproxy speaks. Some
// client libraries gate features on it (HELLO, INFO), so it looks like one.
const redisVersion = "7.0.0"

const (
	errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	errNoPass    = "ERR AUTH <password> called without any password configured for the default user. " +
		"Are you sure your configuration is correct?"
)

// PING [message]
func (h *Handler) ping(c *resp.Conn, _ *client, args [][]byte) {
	switch len(args) {
	case 1:
		c.WriteSimple("PONG")
	case 2:
		c.WriteBulk(args[1])
	default:
		c.WriteError("ERR wrong number of arguments for 'ping' command")
	}
}

// ECHO message
func (h *Handler) echo(c *resp.Conn, _ *client, args [][]byte) { c.WriteBulk(args[1]) }

// checkAuth reports whether user/pass log in: as the default user, who
// with no password configured takes any password, as in Redis; or as the
// admin user, who exists only with an admin password, and may also run
// admin commands.
func (h *Handler) checkAuth(user, pass string) (ok, admin bool) {
	switch {
	case user == "default":
		return h.cfg.Password == "" || samePassword(pass, h.cfg.Password), false
	case user == "admin" && h.cfg.AdminPassword != "":
		ok := samePassword(pass, h.cfg.AdminPassword)
		return ok, ok
	}
	return false, false
}

// samePassword compares in constant time, digests first: ConstantTimeCompare
// returns at once on a length mismatch, which would tell a prober the
// password's length.
func samePassword(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// AUTH [username] password
func (h *Handler) auth(c *resp.Conn, cl *client, args [][]byte) {
	if len(args) > 3 {
		c.WriteError(string(errSyntax))
		return
	}
	user, pass := "default", string(args[1])
	if len(args) == 3 {
		user, pass = string(args[1]), string(args[2])
	} else if h.cfg.Password == "" {
		c.WriteError(errNoPass)
		return
	}
	ok, admin := h.checkAuth(user, pass)
	if !ok {
		c.WriteError(errWrongPass)
		return
	}
	cl.authed, cl.admin = true, admin
	if admin {
		h.log.Info("admin authenticated", "client", cl.describe(c))
	}
	c.WriteSimple("OK")
}

// HELLO [protover [AUTH username password] [SETNAME clientname]]
func (h *Handler) hello(c *resp.Conn, cl *client, args [][]byte) {
	proto := c.Proto()
	if len(args) >= 2 {
		n, err := parseInt(args[1])
		if err != nil {
			c.WriteError("ERR Protocol version is not an integer or out of range")
			return
		}
		if n != 2 && n != 3 {
			c.WriteError("NOPROTO unsupported protocol version")
			return
		}
		proto = int(n)
	}
	var user, pass, name string
	var auth, setName bool
	for i := 2; i < len(args); i++ {
		opt := lowerASCII(string(args[i]))
		switch {
		case opt == "auth" && i+2 < len(args):
			user, pass, auth = string(args[i+1]), string(args[i+2]), true
			i += 2
		case opt == "setname" && i+1 < len(args):
			name, setName = string(args[i+1]), true
			i++
		default:
			c.WriteError("ERR Syntax error in HELLO option '" + clip(string(args[i])) + "'")
			return
		}
	}
	if auth {
		ok, admin := h.checkAuth(user, pass)
		if !ok {
			c.WriteError(errWrongPass)
			return
		}
		cl.authed, cl.admin = true, admin
	}
	if !cl.authed {
		c.WriteError("NOAUTH HELLO must be called with the client already authenticated, otherwise the " +
			"HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select " +
			"the RESP protocol version at the same time")
		return
	}
	if setName {
		if !validClientName(name) {
			c.WriteError(errBadClientName)
			return
		}
		cl.name = name
		cl.sess.SetClient(lockcore.Client{Name: name, Addr: c.RemoteAddr().String()})
	}
	c.SetProto(proto)
	c.WriteMap(7)
	c.WriteBulkString("server")
	c.WriteBulkString("lockproxy")
	c.WriteBulkString("version")
	c.WriteBulkString(redisVersion)
	c.WriteBulkString("proto")
	c.WriteInt(int64(proto))
	c.WriteBulkString("id")
	c.WriteInt(int64(c.ID()))
	c.WriteBulkString("mode")
	c.WriteBulkString("standalone")
	c.WriteBulkString("role")
	c.WriteBulkString("master")
	c.WriteBulkString("modules")
	c.WriteArray(0)
}

// SELECT index: lockproxy has one database; clients configured with db 0
// send SELECT 0 on connect.
func (h *Handler) selectDB(c *resp.Conn, _ *client, args [][]byte) {
	n, err := parseInt(args[1])
	switch {
	case err != nil:
		c.WriteError(string(errNotInt))
	case n != 0:
		c.WriteError("ERR DB index is out of range")
	default:
		c.WriteSimple("OK")
	}
}

// QUIT
func (h *Handler) quit(c *resp.Conn, _ *client, _ [][]byte) {
	c.WriteSimple("OK")
	c.CloseAfterReply()
}

// RESET: back to a fresh connection. Connection pools send it when a
// connection is returned, so the locks it owned are released too.
func (h *Handler) reset(c *resp.Conn, cl *client, _ [][]byte) {
	if err := cl.sess.Reset(c.Context()); err != nil {
		h.log.Warn("RESET could not release locks; they expire by their ttl", "err", err)
	}
	c.SetProto(2)
	cl.name = ""
	cl.sess.SetClient(lockcore.Client{Addr: c.RemoteAddr().String()})
	cl.authed, cl.admin = h.cfg.Password == "", false
	c.WriteSimple("RESET")
}

const errBadClientName = "ERR Client names cannot contain spaces, newlines or special characters."

// validClientName is Redis's rule: printable ASCII without spaces.
func validClientName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

// CLIENT SETNAME name
func (h *Handler) clientSetName(c *resp.Conn, cl *client, args [][]byte) {
	name := string(args[2])
	if !validClientName(name) {
		c.WriteError(errBadClientName)
		return
	}
	cl.name = name
	cl.sess.SetClient(lockcore.Client{Name: name, Addr: c.RemoteAddr().String()})
	c.WriteSimple("OK")
}

// CLIENT GETNAME
func (h *Handler) clientGetName(c *resp.Conn, cl *client, _ [][]byte) {
	if cl.name == "" {
		c.WriteNull()
		return
	}
	c.WriteBulkString(cl.name)
}

// CLIENT ID
func (h *Handler) clientID(c *resp.Conn, _ *client, _ [][]byte) { c.WriteInt(int64(c.ID())) }

// CLIENT SETINFO LIB-NAME|LIB-VER value
func (h *Handler) clientSetInfo(c *resp.Conn, cl *client, args [][]byte) {
	attr, val := lowerASCII(string(args[2])), string(args[3])
	if attr != "lib-name" && attr != "lib-ver" {
		c.WriteError("ERR Unrecognized option '" + clip(string(args[2])) + "'")
		return
	}
	if !validClientName(val) {
		c.WriteError("ERR " + attr + " cannot contain spaces, newlines or special characters.")
		return
	}
	if attr == "lib-name" {
		cl.libName = val
	} else {
		cl.libVer = val
	}
	c.WriteSimple("OK")
}

// CLIENT INFO: one line in Redis's CLIENT LIST format.
func (h *Handler) clientInfo(c *resp.Conn, cl *client, _ [][]byte) {
	now := time.Now()
	var b strings.Builder
	field := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	// Every field of Redis 7.2's line, in its order: client libraries
	// parse it into structs and fail on a missing one (redis-py raises
	// KeyError, node-redis gives NaN). Those with no meaning here take the
	// value an idle Redis client shows.
	field("id", strconv.FormatUint(c.ID(), 10))
	field("addr", c.RemoteAddr().String())
	field("laddr", c.LocalAddr().String())
	field("fd", "-1")
	field("name", cl.name)
	field("age", strconv.Itoa(int(now.Sub(c.Created()).Seconds())))
	field("idle", strconv.Itoa(int(now.Sub(c.LastCommand()).Seconds())))
	field("flags", "N")
	field("db", "0")
	field("sub", "0")
	field("psub", "0")
	field("ssub", "0")
	field("multi", "-1")
	field("qbuf", strconv.Itoa(c.Buffered()))
	field("qbuf-free", "0")
	field("argv-mem", "0")
	field("multi-mem", "0")
	field("rbs", "0")
	field("rbp", "0")
	field("obl", "0")
	field("oll", "0")
	field("omem", "0")
	field("tot-mem", "0")
	field("events", "r")
	field("cmd", "client|info")
	field("user", "default")
	field("redir", "-1")
	field("resp", strconv.Itoa(c.Proto()))
	field("lib-name", cl.libName)
	field("lib-ver", cl.libVer)
	field("locks", strconv.Itoa(len(cl.sess.Held())))
	b.WriteByte('\n')
	c.WriteVerbatim(b.String())
}

// CLIENT TRACKING ON|OFF [options]: client-side caching, which clients
// such as rueidis turn on by default. lockproxy has no keys to cache, so
// there is never anything to invalidate: accepting it costs nothing.
func (h *Handler) clientTracking(c *resp.Conn, _ *client, args [][]byte) {
	switch lowerASCII(string(args[2])) {
	case "on", "off":
		c.WriteSimple("OK")
	default:
		c.WriteError("ERR syntax error")
	}
}

// CLIENT CACHING YES|NO, which goes with TRACKING's OPTIN and OPTOUT.
func (h *Handler) clientCaching(c *resp.Conn, _ *client, args [][]byte) {
	switch lowerASCII(string(args[2])) {
	case "yes", "no":
		c.WriteSimple("OK")
	default:
		c.WriteError("ERR syntax error")
	}
}

// CLIENT HELP
func (h *Handler) clientHelp(c *resp.Conn, _ *client, _ [][]byte) {
	writeHelp(c, "CLIENT", []string{
		"GETNAME", "    Return the name of the current connection.",
		"ID", "    Return the ID of the current connection.",
		"INFO", "    Return information about the current client connection.",
		"SETINFO <option> <value>", "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
		"SETNAME <name>", "    Assign the name <name> to the current connection.",
		"TRACKING (ON|OFF) [options]", "    Accepted for clients that enable client-side caching; lockproxy has no keys to invalidate.",
		"CACHING (YES|NO)", "    Accepted with TRACKING.",
	})
}

func writeHelp(c *resp.Conn, cmd string, lines []string) {
	c.WriteArray(len(lines) + 3)
	c.WriteSimple(cmd + " <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")
	for _, l := range lines {
		c.WriteSimple(l)
	}
	c.WriteSimple("HELP")
	c.WriteSimple("    Print this help.")
}
