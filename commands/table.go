// Package commands is lockproxy's command table: it parses each request's
// arguments, calls lockcore, turns results and errors into RESP replies (in
// one place, errors.go), and reports what happened to metrics.
package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/resp"
)

// Config is what the command layer needs to know beyond lockcore's. It
// has no defaults: the bounds are chosen with the sidecar's configuration,
// and New refuses a zero one rather than guess.
type Config struct {
	// MinTTL is the smallest ttl or MAXHOLD a client may ask for: a lease
	// is valid for its ttl less the drift margin (lockcore.Drift) and the
	// round trip, so a shorter one would be lost as it is granted.
	MinTTL       time.Duration
	MaxTTL       time.Duration // largest ttl a client may ask for; ≥ MinTTL
	MaxWait      time.Duration // longest WAIT; 0 allows only try-once acquires
	MaxNameBytes int           // longest lock name; ≥ 1
	MaxLimit     int           // largest LIMIT of a semaphore; ≥ 1
	Password     string        // "" disables AUTH
	// AdminPassword is the admin user's (AUTH admin <password>), who may run
	// admin commands; "" turns them off.
	AdminPassword string
	Version       string      // lockproxy's version, for INFO
	Store         string      // "embedded" or "redis", for INFO
	UpstreamUp    func() bool // whether the upstream answered its last health check, for INFO
	// UpstreamRisks lists the kinds of the upstream's settings that can
	// lose locks (see lockcore.Store.Risks), for INFO.
	UpstreamRisks func() []string
	// UpstreamPersistence is what of its data the upstream keeps across a
	// restart (see lockcore.Upstream.Persistence), for INFO; "" before
	// it was read.
	UpstreamPersistence func() string
	ReplicaAcks         int          // LOCKPROXY_REPLICA_ACKS, for INFO
	Observer            Observer     // (none)
	Logger              *slog.Logger // (discard)
}

// Observer is told the outcome of each lock command, for metrics. Results
// come from fixed sets, never a lock name or token.
type Observer interface {
	Acquire(result string, waited time.Duration) // "acquired", "timeout" or "error"
	Release(result string)                       // "released", "not_held" or "error"
	Renew(result string)                         // "renewed", "not_held" or "error"
	ConnectionsChanged(delta int)
}

type nopObserver struct{}

func (nopObserver) Acquire(string, time.Duration) {}
func (nopObserver) Release(string)                {}
func (nopObserver) Renew(string)                  {}
func (nopObserver) ConnectionsChanged(int)        {}

// Handler serves lockproxy's commands; it is a resp.Handler.
type Handler struct {
	locks   *lockcore.Locks
	cfg     Config
	obs     Observer
	log     *slog.Logger
	table   map[string]*command // by lower-case name
	list    []*command          // in COMMAND's order
	started time.Time
	clients atomic.Int64
	counts  map[string]*atomic.Int64 // "acquire_timeout" and the like, for INFO; fixed at New
}

// countedResults are the outcomes INFO counts, as lockproxy_*_total{result} do.
var countedResults = []string{
	"acquire_acquired", "acquire_timeout", "acquire_error",
	"release_released", "release_not_held", "release_error",
	"renew_renewed", "renew_not_held", "renew_error",
}

// counted counts one outcome of a lock command for INFO.
func (h *Handler) counted(op, result string) {
	if c := h.counts[op+"_"+result]; c != nil {
		c.Add(1)
	}
}

// New returns the command handler for locks, or an error naming each
// field of cfg that is out of range.
func New(locks *lockcore.Locks, cfg Config) (*Handler, error) {
	if err := verifyConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{locks: locks, cfg: cfg, obs: cfg.Observer, log: cfg.Logger, started: time.Now(),
		counts: make(map[string]*atomic.Int64, len(countedResults))}
	for _, r := range countedResults {
		h.counts[r] = new(atomic.Int64)
	}
	h.table = make(map[string]*command)
	h.list = h.commands()
	for _, cmd := range h.list {
		h.table[cmd.name] = cmd
		for _, sub := range cmd.subs {
			sub.parent = cmd
		}
	}
	return h, nil
}

// verifyConfig reports every bound of c that would refuse every request or
// lose every lock as it is granted.
func verifyConfig(c Config) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("commands: Config.%s: "+format, append([]any{field}, args...)...))
	}
	if drift := lockcore.Drift(c.MinTTL); c.MinTTL <= drift {
		bad("MinTTL", "%v does not exceed its drift margin (%v)", c.MinTTL, drift)
	}
	if c.MaxTTL < c.MinTTL {
		bad("MaxTTL", "%v is below MinTTL (%v)", c.MaxTTL, c.MinTTL)
	}
	if c.MaxWait < 0 {
		bad("MaxWait", "%v is negative", c.MaxWait)
	}
	if c.MaxNameBytes < 1 {
		bad("MaxNameBytes", "%d is below 1", c.MaxNameBytes)
	}
	if c.MaxLimit < 1 {
		bad("MaxLimit", "%d is below 1", c.MaxLimit)
	}
	return errors.Join(errs...)
}

// command is one entry of the table. arity follows Redis: n > 0 means
// exactly n arguments counting the name, n < 0 at least -n.
type command struct {
	name   string // lower case, as COMMAND shows it
	arity  int
	flags  []string
	noAuth bool // allowed before AUTH
	run    func(c *resp.Conn, cl *client, args [][]byte)
	subs   []*command // subcommands (CLIENT, COMMAND); run is nil then
	parent *command
	doc    doc

	// upstream marks a command that may wait on the upstream, up to
	// LOCKPROXY_UPSTREAM_TIMEOUT: the replies pipelined ahead of it, and
	// pushes, go out before it runs (see resp.Conn.Flush).
	upstream bool
}

// fullName is "client|setname" for a subcommand, as Redis names it in errors.
func (cmd *command) fullName() string {
	if cmd.parent != nil {
		return cmd.parent.name + "|" + cmd.name
	}
	return cmd.name
}

func (cmd *command) sub(name string) *command {
	for _, s := range cmd.subs {
		if equalFoldASCII(s.name, name) {
			return s
		}
	}
	return nil
}

func arityOK(arity, n int) bool {
	if arity > 0 {
		return n == arity
	}
	return n >= -arity
}

// client is the state of one connection.
type client struct {
	sess    *lockcore.Session
	authed  bool
	admin   bool // authenticated as the admin user
	name    string
	libName string
	libVer  string
}

// describe says who a client is, for logs of what it asked.
func (cl *client) describe(c *resp.Conn) string {
	s := "id=" + strconv.FormatUint(c.ID(), 10) + " addr=" + c.RemoteAddr().String()
	if cl.name != "" {
		s += " name=" + cl.name
	}
	return s
}

// OnOpen starts a connection's session; wire it to resp.Options.OnOpen.
func (h *Handler) OnOpen(c *resp.Conn) {
	cl := &client{authed: h.cfg.Password == ""}
	cl.sess = h.locks.NewSession(func(name, token string) {
		// RESP2 clients learn of it on their next command instead.
		c.Push("lock.lost", name, token)
	})
	cl.sess.SetClient(lockcore.Client{Addr: c.RemoteAddr().String()})
	c.SetValue(cl)
	h.clients.Add(1)
	h.obs.ConnectionsChanged(1)
}

// OnClose releases a connection's owned locks; wire it to resp.Options.OnClose.
func (h *Handler) OnClose(c *resp.Conn) {
	cl := c.Value().(*client)
	if err := cl.sess.Close(); err != nil {
		h.log.Warn("releasing a closed connection's locks failed; they expire by their ttl", "err", err)
	}
	h.clients.Add(-1)
	h.obs.ConnectionsChanged(-1)
}

// Shutdown stops srv, which serves h, and the locks behind it, in the order
// that lets no holder learn of its loss after someone else got its lock: no
// new connection, no new grant, blocked acquires answered, each connection
// closed before its OnClose releases its locks, and last whatever is left
// released. The drain ends reserve before ctx does, so that a client which
// stopped reading cannot use up the time the releases need.
func (h *Handler) Shutdown(ctx context.Context, srv *resp.Server, reserve time.Duration) error {
	srv.StopAccepting()
	h.locks.StopGranting()
	dctx := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		dctx, cancel = context.WithDeadline(ctx, deadline.Add(-reserve))
		defer cancel()
	}
	return errors.Join(srv.Drain(dctx), h.locks.Shutdown(ctx))
}

// ServeRESP implements resp.Handler.
func (h *Handler) ServeRESP(c *resp.Conn, req resp.Command) {
	cl := c.Value().(*client)
	args := req.Args
	cmd := h.table[lowerASCII(string(args[0]))]
	if cmd == nil {
		c.WriteError(unknownCommand(args))
		return
	}
	if !cl.authed && !cmd.noAuth {
		c.WriteError("NOAUTH Authentication required.")
		return
	}
	if cmd.subs != nil && len(args) >= 2 {
		sub := cmd.sub(string(args[1]))
		if sub == nil {
			c.WriteError("ERR unknown subcommand '" + clip(string(args[1])) + "'. Try " + strings.ToUpper(cmd.name) + " HELP.")
			return
		}
		cmd = sub
	}
	if !arityOK(cmd.arity, len(args)) {
		c.WriteError("ERR wrong number of arguments for '" + cmd.fullName() + "' command")
		return
	}
	if cmd.upstream {
		c.Flush()
	}
	cmd.run(c, cl, args)
}

// unknownCommand is Redis's own text for a command it does not know.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	for _, a := range args[1:] {
		if b.Len() >= 128 {
			break
		}
		n := 128 - b.Len()
		b.WriteString("'")
		b.WriteString(clipTo(string(a), n))
		b.WriteString("' ")
	}
	return "ERR unknown command '" + clip(string(args[0])) + "', with args beginning with: " + b.String()
}

// clip bounds echoed input in error replies, as Redis does.
func clip(s string) string { return clipTo(s, 128) }

func clipTo(s string, n int) string {
	if len(s) > n {
		return s[:max(n, 0)]
	}
	return s
}
