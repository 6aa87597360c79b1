// Package redisstore keeps lockproxy's locks in Redis, with one atomic Lua
// script per operation. It works through go-redis's UniversalClient, so a
// single Redis, Sentinel or Cluster can back it.
//
// Each lock name uses keys that share one hash slot: the lock key, whose
// value is the holder's token and whose TTL is the lease; a fence key that
// remembers the last fence for a retention period; and, while anyone waits,
// a queue of waiters with their liveness deadlines. Releases wake the next
// waiter's sidecar on a per-name channel in the same slot (sharded pub/sub
// on a Cluster). Every key expires on its own, so the keyspace does not grow
// with the number of names ever used.
package redisstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/lockcore"
)

// DefaultRetention is how long a name's last fence is remembered after its
// lock was last used. Fences come from Redis's clock, so this only matters if
// that clock steps back; it bounds the step that is tolerated.
const DefaultRetention = time.Hour

var (
	//go:embed scripts/lib.lua
	libSrc string
	//go:embed scripts/acquire.lua
	acquireSrc string
	//go:embed scripts/renew.lua
	renewSrc string
	//go:embed scripts/revoke.lua
	revokeSrc string
	//go:embed scripts/release.lua
	releaseSrc string
	//go:embed scripts/leave.lua
	leaveSrc string
	//go:embed scripts/transfer.lua
	transferSrc string
	//go:embed scripts/keepalive.lua
	keepaliveSrc string
	//go:embed scripts/inspect.lua
	inspectSrc string
	//go:embed scripts/batch.lua
	batchSrc string
)

// Options tune a Store.
type Options struct {
	Prefix    string        // key prefix, e.g. "lock:"; must not contain '{' or '}'
	Retention time.Duration // default DefaultRetention
	// Attempts is how many times a call is sent when the connection fails
	// under it (the reply is lost). The scripts are idempotent, so repeating
	// is safe. Default 3.
	Attempts int
	// Logger receives the watcher's connection trouble (default: discard).
	Logger interface{ Warn(msg string, args ...any) }
	// Guard refuses every acquire until Accept has adopted an epoch, so
	// that nothing is granted before the sidecar has checked the upstream
	// once (see Health).
	Guard bool
	// ReplicaAcks, when above 0, makes every grant, renewal and hand-off
	// wait for WAIT to confirm that this many replicas have it, within the
	// call's deadline. Short of that, a grant is given back and the call
	// fails with a *NotReplicatedError.
	ReplicaAcks int
	// BatchMax is the most calls one batch carries (see batcher); 1 sends
	// every call on its own. Default DefaultBatchMax.
	BatchMax int
	// OnReset is called, without blocking, when an acquire finds that the
	// upstream's epoch is not the one last accepted: the caller should
	// check Health now rather than at its next tick.
	OnReset func()
}

// Store is a lockcore.Store on Redis.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	state     string // the state hash's key (see stateKey), made once
	retention int64  // ms
	attempts  int
	sharded   string // "1" when wakes use sharded pub/sub (Cluster)
	watcher   *watcher
	guard     bool
	onReset   func()
	// epoch is the value of the epoch key that Accept last adopted; nil
	// before that. Acquires are granted only while the key still holds it.
	epoch atomic.Pointer[string]
	// lastHealthErr is the last Health's error; nil after a success.
	lastHealthErr atomic.Pointer[string]
	// server is the run_id that Accept last adopted, and changed is set
	// when a new connection finds another server behind it: the upstream
	// restarted or failed over, and until CheckUpstream has checked that it
	// kept the locks, nothing is granted through it.
	server  atomic.Pointer[string]
	changed atomic.Bool
	// changedTo is the run_id that set changed: only accepting that
	// server clears it, not a health check that still reached the old one.
	changedTo atomic.Pointer[string]
	// floor is the largest fence this store has seen granted, passed to
	// every grant so that fences rise above it whatever the server's clock
	// says (see grant in lib.lua).
	floor atomic.Int64

	acks int // Options.ReplicaAcks

	// On a Cluster: what the Store keeps of it, and the shards as
	// CheckUpstream last accepted them (nil before), with a channel that
	// the next Accept closes.
	cluster  *clusterState
	view     atomic.Pointer[view]
	viewMu   sync.Mutex
	nextView chan struct{} // guarded by viewMu

	acquire, renew, revoke, release, transfer, leave, keepalive, inspect *luaScript
	batch                                                                *batcher // nil on a Cluster and with ReplicaAcks
}

// NotReplicatedError is a grant, renewal or hand-off that fewer replicas
// than Options.ReplicaAcks confirmed in time. A grant was given back.
type NotReplicatedError struct {
	Op          string
	Acked, Want int
}

func (e *NotReplicatedError) Error() string {
	return fmt.Sprintf("only %d of %d replicas confirmed the %s in time (LOCKPROXY_REPLICA_ACKS=%d)", e.Acked, e.Want, e.Op, e.Want)
}

var (
	_ lockcore.Store    = (*Store)(nil)
	_ lockcore.Upstream = (*Store)(nil)
)

// New returns a Store over rdb. The Store owns rdb: Close closes it.
// rdb should have its own retries turned off (MaxRetries: -1), because the
// Store retries itself and must know when a call is a repeat.
func New(rdb redis.UniversalClient, opt Options) (*Store, error) {
	if strings.ContainsAny(opt.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: key prefix %q must not contain '{' or '}'", opt.Prefix)
	}
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 3
	}
	crdb, cluster := rdb.(*redis.ClusterClient)
	s := &Store{
		rdb:       rdb,
		prefix:    opt.Prefix,
		state:     opt.Prefix + "state",
		retention: opt.Retention.Milliseconds(),
		attempts:  opt.Attempts,
		sharded:   flag(cluster),
		acquire:   script(acquireSrc),
		renew:     script(renewSrc),
		revoke:    script(revokeSrc),
		release:   script(releaseSrc),
		transfer:  script(transferSrc),
		leave:     script(leaveSrc),
		keepalive: script(keepaliveSrc),
		inspect:   script(inspectSrc),
		guard:     opt.Guard,
		onReset:   opt.OnReset,
		acks:      opt.ReplicaAcks,
		nextView:  make(chan struct{}),
	}
	if s.onReset == nil {
		s.onReset = func() {}
	}
	s.watcher = newWatcher(rdb, opt.Logger)
	if cluster {
		s.cluster = newClusterState(crdb)
		s.watchNodes(crdb)
	}
	if opt.BatchMax == 0 {
		opt.BatchMax = DefaultBatchMax
	}
	if !cluster && s.acks == 0 && opt.BatchMax > 1 {
		// On a Cluster a script's keys must share a slot; with ReplicaAcks
		// each grant waits for its own WAIT.
		s.acquire.op, s.release.op, s.renew.op = "acquire", "release", "renew"
		s.batch = newBatcher(s, opt.BatchMax)
	}
	if c, ok := rdb.(*redis.Client); ok {
		// Every connection to a server is new after it restarted or took
		// over: checking each one as it opens catches the change before a
		// grant can go through it, rather than at the next health check.
		o := c.Options()
		prev := o.OnConnect
		o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
			if prev != nil {
				if err := prev(ctx, cn); err != nil {
					return err
				}
			}
			s.checkServer(ctx, cn)
			return nil
		}
	}
	return s, nil
}

// checkServer notes a connection to a server other than the accepted one.
func (s *Store) checkServer(ctx context.Context, cn *redis.Conn) {
	accepted := s.server.Load()
	if accepted == nil {
		return
	}
	info, err := cn.Info(ctx, "server").Result()
	if err != nil {
		return // the connection fails its first command too
	}
	if id := infoField(info, "run_id"); id != "" && id != *accepted {
		s.changedTo.Store(&id)
		if !s.changed.Swap(true) {
			s.onReset()
		}
	}
}

// script is src with the shared functions of lib.lua in front.
func script(src string) *luaScript {
	src = libSrc + "\n" + src
	return &luaScript{src: src, sha: redis.NewScript(src).Hash()}
}

// luaScript is a script's source and its SHA-1, for EVALSHA, and its op
// in the batch script when it can be batched.
type luaScript struct{ src, sha, op string }

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// keys are the keys of one lock name, all in one hash slot.
type keys struct {
	lock, fence, queue, alive, wake string
}

func (k keys) list() []string { return k.listWith(0) }

// listWith is list with room for more keys after them.
func (k keys) listWith(more int) []string {
	return append(make([]string, 0, 4+more), k.lock, k.fence, k.queue, k.alive)
}

// withState is a script's keys with the store-wide state hash after them,
// but on a Cluster, where it lives in another slot than the lock's.
func (s *Store) withState(k keys) []string {
	if s.sharded == "1" {
		return k.list()
	}
	return append(k.listWith(2), s.stateKey()) // room for the epoch key
}

// noteFence raises floor to token's fence.
func (s *Store) noteFence(token string) {
	if f, _, ok := lockcore.ParseToken(token); ok {
		s.raiseFloor(f)
	}
}

func (s *Store) raiseFloor(f int64) {
	for {
		old := s.floor.Load()
		if old >= f || s.floor.CompareAndSwap(old, f) {
			return
		}
	}
}

func (s *Store) floorArg() string { return strconv.FormatInt(s.floor.Load(), 10) }

// Keys returns the lock key and the fence key of name. Every key of a name
// carries the same hash tag, so Cluster puts them in one slot. A name
// containing '}' would end the tag early (and "}…" would make it empty,
// hashing each whole key apart), so such names are tagged with a digest of
// the name instead.
func (s *Store) Keys(name string) (lock, fence string) {
	k := s.keys(name)
	return k.lock, k.fence
}

func (s *Store) keys(name string) keys {
	var lock string
	if name != "" && strings.IndexByte(name, '}') < 0 {
		lock = s.prefix + "{" + name + "}"
	} else {
		sum := sha256.Sum256([]byte(name))
		lock = s.prefix + "{" + hex.EncodeToString(sum[:8]) + "}" + name
	}
	// One string holds them all, each a slice of it: one allocation, not
	// five, on every call.
	all := lock + ":fence" + lock + ":qa" + lock + ":wake"
	n := len(lock)
	alive := all[n+6 : 2*n+9]
	return keys{lock: all[:n], fence: all[:n+6], queue: alive[:n+2], alive: alive, wake: all[2*n+9:]}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// run sends a script, sending it again while the connection fails under it
// and ctx allows. args learns whether the call is a repeat of one that may
// already have run; so does the caller, from repeated. A batchable script
// goes in a batch when another call is in flight (see batcher).
func (s *Store) run(ctx context.Context, sc *luaScript, keys []string, args func(repeat bool) []any) (v any, repeated bool, err error) {
	if s.batch != nil && sc.op != "" {
		return s.batch.run(ctx, sc.op, sc, keys, args)
	}
	return s.runOne(ctx, sc, keys, args)
}

// runOne is run, sent on its own.
func (s *Store) runOne(ctx context.Context, sc *luaScript, keys []string, args func(repeat bool) []any) (v any, repeated bool, err error) {
	return s.runFrom(ctx, sc, keys, args, false, s.attempts)
}

// runFrom is runOne, whose first attempt is a repeat if repeat says so,
// sent at most attempts times when its reply is lost.
func (s *Store) runFrom(ctx context.Context, sc *luaScript, keys []string, args func(repeat bool) []any, repeat bool, attempts int) (v any, repeated bool, err error) {
	src := "" // EVALSHA until Redis asks for the script
	for i := 0; i < attempts; i++ {
		repeated = repeat || i > 0
		cmd := evalCmd(ctx, sc, src, keys, args(repeated))
		_ = s.rdb.Process(ctx, cmd)
		v, err = cmd.Result()
		s.troubled(err)
		switch {
		case err == nil || ctx.Err() != nil:
			return v, repeated, err
		case src == "" && redis.HasErrorPrefix(err, "NOSCRIPT"):
			src = sc.src
		case notRun(err):
			if err := sleepCtx(ctx, busyRetry); err != nil {
				return nil, repeated, err
			}
		case s.cluster != nil && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK")):
			// go-redis followed the redirects as far as it would: the slot
			// is moving, and its nodes do not agree yet. It did not run.
			s.cluster.rdb.ReloadState(ctx)
			if err := sleepCtx(ctx, busyRetry); err != nil {
				return nil, repeated, err
			}
		case !lostReply(err):
			return v, repeated, err
		default:
			continue // a repeat
		}
		i-- // it did not run: not a repeat
	}
	return nil, true, err
}

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runDurable is run, followed, when Options.ReplicaAcks asks for it, by a
// WAIT on the same connection: a pipeline keeps the two together. WAIT
// counts what replicas have of the connection's own writes, and a script
// that found its grant already made (a retry, a hand-off another sidecar
// wrote) writes nothing: a touch of the state hash first brings the
// connection's offset up to everything written before it. acked is how many
// replicas confirmed; with no acks asked for, it is 0.
func (s *Store) runDurable(ctx context.Context, sc *luaScript, keys []string, args func(repeat bool) []any) (v any, repeated bool, acked int, err error) {
	if s.acks == 0 {
		v, repeated, err = s.run(ctx, sc, keys, args)
		return v, repeated, 0, err
	}
	src := ""
	for i := 0; i < s.attempts; i++ {
		var p redis.Pipeliner
		var touch string
		if p, touch, err = s.waitPipe(ctx, keys[0]); err != nil {
			return nil, i > 0, 0, err
		}
		eval := evalCmd(ctx, sc, src, keys, args(i > 0))
		_ = p.Process(ctx, eval)
		set := p.Set(ctx, touch, 1, time.Minute)
		wait := p.Do(ctx, "WAIT", s.acks, waitTimeout(ctx).Milliseconds())
		_, err = p.Exec(ctx)
		if eval.Err() != nil {
			err = eval.Err()
		}
		s.troubled(err)
		switch {
		case err == nil:
			n, _ := wait.Int64()
			return eval.Val(), i > 0, int(n), nil
		case eval.Err() == nil && (set.Err() != nil || wait.Err() != nil):
			// It ran, but whether replicas have it is unknown.
			return eval.Val(), i > 0, 0, nil
		case ctx.Err() != nil:
			return nil, i > 0, 0, err
		case src == "" && redis.HasErrorPrefix(err, "NOSCRIPT"):
			src = sc.src
		case redis.HasErrorPrefix(err, "MOVED"):
			s.cluster.rdb.ReloadState(ctx)
		case notRun(err) || redis.HasErrorPrefix(err, "ASK"):
			// An ASK: the name's slot is migrating, which is over in a moment.
			if err := sleepCtx(ctx, busyRetry); err != nil {
				return nil, i > 0, 0, err
			}
		case !lostReply(err):
			return nil, i > 0, 0, err
		default:
			continue // a repeat
		}
		i-- // it did not run: not a repeat
	}
	return nil, true, 0, err
}

// waitPipe is a pipeline to the primary of key, for a call and its WAIT,
// and the key whose touch brings the connection's offset up: on a
// Cluster, both go to the node itself, since go-redis would send a WAIT,
// which names no key, to any node.
func (s *Store) waitPipe(ctx context.Context, key string) (redis.Pipeliner, string, error) {
	if s.cluster == nil {
		return s.rdb.Pipeline(), s.prefix + "touch", nil
	}
	node, err := s.cluster.rdb.MasterForKey(ctx, key)
	if err != nil {
		return nil, "", err
	}
	touch := s.prefix + "touch{" + tagFor(keySlot(key)) + "}"
	return node.Pipeline(), touch, nil
}

// waitTimeout is WAIT's timeout: half of what is left of ctx, so that its
// reply, and a give-back after it, still fit, less the 100ms by which Redis
// may overrun it (it ends blocked commands from its cron, 10 times a second
// by default); at least a quarter of what is left, and a millisecond (0
// would wait for ever).
func waitTimeout(ctx context.Context) time.Duration {
	left := 4 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	return max(left/2-100*time.Millisecond, left/4, time.Millisecond)
}

// giveBack releases name's token after a grant that was not replicated,
// and returns why, with the release's own error if it failed too.
func (s *Store) giveBack(ctx context.Context, name, token string, why error) error {
	// Even if the caller's time is up: the lock must not stay held by
	// nobody until its ttl.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
	defer cancel()
	_, err := s.Release(ctx, lockcore.ReleaseRequest{Name: name, Token: token})
	return errors.Join(why, err)
}

// giveBackTimeout bounds giving back a grant that was not replicated.
const giveBackTimeout = time.Second

// lostReply reports whether err means the connection failed, so the command
// may or may not have run: not a Redis error reply, not our own deadline.
func lostReply(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return false // the reply may still be on its way; a repeat would race it
	}
	return true
}

// Acquire implements lockcore.Store.
func (s *Store) Acquire(ctx context.Context, req lockcore.AcquireRequest) (lockcore.Grant, error) {
	k := s.keys(req.Name)
	keys, args := k.listWith(2), s.acquireArgs(req, k)
	if s.changed.Load() {
		s.onReset()
		return lockcore.Grant{}, lockcore.ErrServerChanged
	}
	var arr []any
	var acked int
	var sv *shardView
	var err error
	if s.cluster != nil {
		arr, acked, sv, err = s.acquireOnCluster(ctx, req.Name, keys, args)
	} else {
		keys = append(keys, s.stateKey())
		switch epoch := s.epoch.Load(); {
		case epoch != nil:
			keys, args = append(keys, s.epochKey()), append(args, *epoch)
		case s.guard:
			s.onReset()
			return lockcore.Grant{}, s.unreached()
		}
		arr, acked, err = s.runAcquire(ctx, keys, args)
	}
	if err != nil {
		return lockcore.Grant{}, err
	}
	if arr[0] == int64(3) {
		s.onReset()
		return lockcore.Grant{}, lockcore.ErrStoreReset
	}
	if sv != nil && s.cluster.restarted(sv) {
		// As below: the call may have gone through a new connection to a
		// primary that restarted.
		return lockcore.Grant{}, lockcore.ErrServerChanged
	}
	if s.changed.Load() {
		// The call may have gone through a connection that found a new
		// server as it opened (see checkServer): whatever it did, grant
		// nothing until the server has been checked.
		return lockcore.Grant{}, lockcore.ErrServerChanged
	}
	var g lockcore.Grant
	g.First, _ = arr[2].(string)
	g.Seq, _ = arr[3].(int64)
	switch arr[0] {
	case int64(1):
		var ok bool
		if g.Token, ok = arr[1].(string); !ok {
			return lockcore.Grant{}, fmt.Errorf("unexpected token in reply to acquire: %v", arr[1])
		}
		s.noteFence(g.Token)
		if acked < s.acks {
			return lockcore.Grant{}, s.giveBack(ctx, req.Name, g.Token, &NotReplicatedError{"grant", acked, s.acks})
		}
		ttl, _ := arr[4].(int64)
		g.Acquired, g.TTL = true, time.Duration(max(ttl, 0))*time.Millisecond
	case int64(0):
		pttl, _ := arr[1].(int64)
		g.HolderTTL = time.Duration(max(pttl, 0)) * time.Millisecond
	case int64(2):
		g.Head = g.First
	case int64(5):
		code, _ := arr[1].(string)
		held, ok := lockcore.ParseKindCode(code)
		if !ok {
			return lockcore.Grant{}, fmt.Errorf("unexpected kind in reply to acquire: %v", arr)
		}
		g.Mismatch, g.HeldAs = true, held
	default:
		return lockcore.Grant{}, fmt.Errorf("unexpected reply to acquire: %v", arr)
	}
	return g, nil
}

// acquireArgs are the acquire script's arguments, up to the epoch's.
func (s *Store) acquireArgs(req lockcore.AcquireRequest, k keys) []any {
	// Room for what Acquire adds: the epoch, or a Cluster shard's four.
	return append(make([]any, 0, 13), req.Nonce, ms(req.TTL), s.retention, req.Waiter, ms(req.WaiterTTL), k.wake, s.sharded,
		s.floorArg(), req.Kind.Code())
}

// runAcquire sends the acquire script and checks the shape of its reply.
func (s *Store) runAcquire(ctx context.Context, keys []string, args []any) ([]any, int, error) {
	v, _, acked, err := s.runDurable(ctx, s.acquire, keys, func(bool) []any { return args })
	if err != nil {
		return nil, 0, err
	}
	arr, ok := v.([]any)
	if !ok || len(arr) != 5 {
		return nil, 0, fmt.Errorf("unexpected reply to acquire: %v", v)
	}
	return arr, acked, nil
}

// acquireOnCluster is the acquire script on a Cluster, checked against the
// shard of name's slot as CheckUpstream last accepted it: it runs only on
// that shard's primary, and only while the shard's epoch is the accepted
// one. When it finds itself on another node, a reshard moved the slot (or
// a failover its shard): on a primary that was accepted too it is sent
// there at once; else it waits for the next check to accept the change.
func (s *Store) acquireOnCluster(ctx context.Context, name string, keys []string, args []any) ([]any, int, *shardView, error) {
	slot := s.Slot(name)
	var sv *shardView
	for {
		v := s.view.Load()
		if v == nil && !s.guard {
			// Nothing to check against (a Store used without CheckUpstream).
			arr, acked, err := s.runAcquire(ctx, keys, args)
			return arr, acked, nil, err
		}
		if sv == nil && v != nil {
			sv = v.owner(slot)
		}
		if sv == nil {
			s.onReset()
			if v == nil {
				return nil, 0, nil, s.unreached()
			}
			if err := s.awaitView(ctx); err != nil {
				return nil, 0, nil, fmt.Errorf("no checked shard of the Cluster owns slot %d: %w", slot, err)
			}
			continue
		}
		if s.cluster.restarted(sv) {
			s.onReset()
			return nil, 0, sv, lockcore.ErrServerChanged
		}
		arr, acked, err := s.runAcquire(ctx, keys, append(slices.Clip(args), shardArgs(sv)...))
		if err != nil || arr[0] != int64(4) {
			return arr, acked, sv, err
		}
		me, _ := arr[1].(string)
		if other := v.byNode[me]; other != nil && other != sv && !s.cluster.restarted(other) {
			sv = other
			continue
		}
		s.onReset()
		if err := s.awaitView(ctx); err != nil {
			return nil, 0, sv, fmt.Errorf("slot %d moved to node %s, which has not been checked yet: %w", slot, me, err)
		}
		sv = nil
	}
}

// awaitView waits for the next Accept, or for ctx to end.
func (s *Store) awaitView(ctx context.Context) error {
	select {
	case <-s.viewChanged():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Transfer implements lockcore.Store.
func (s *Store) Transfer(ctx context.Context, req lockcore.TransferRequest) (lockcore.Transferred, error) {
	fence, _, ok := lockcore.ParseToken(req.To)
	if !ok {
		return lockcore.Transferred{}, fmt.Errorf("transfer to a bad token %q", req.To)
	}
	k := s.keys(req.Name)
	v, _, acked, err := s.runDurable(ctx, s.transfer, s.withState(k), func(bool) []any {
		return append([]any{req.From, req.To, fence, ms(req.TTL), s.retention, req.Waiter}, s.stateArg(req.Name)...)
	})
	if err != nil {
		return lockcore.Transferred{}, err
	}
	arr, ok := v.([]any)
	if !ok || len(arr) != 3 {
		return lockcore.Transferred{}, fmt.Errorf("unexpected reply to transfer: %v", v)
	}
	t := lockcore.Transferred{OK: arr[0] == int64(1)}
	if t.OK {
		s.raiseFloor(fence)
		if acked < s.acks {
			// The caller gives the old token back; the new one goes too.
			return lockcore.Transferred{}, s.giveBack(ctx, req.Name, req.To, &NotReplicatedError{"hand-off", acked, s.acks})
		}
	}
	t.First, _ = arr[1].(string)
	t.Seq, _ = arr[2].(int64)
	return t, nil
}

// Renew implements lockcore.Store.
func (s *Store) Renew(ctx context.Context, req lockcore.RenewRequest) (lockcore.Renewed, error) {
	k := s.keys(req.Name)
	v, _, acked, err := s.runDurable(ctx, s.renew, s.withState(k), func(bool) []any {
		return append([]any{req.Token, ms(req.TTL), s.retention, flag(req.Foreign)}, s.stateArg(req.Name)...)
	})
	if err != nil {
		return lockcore.Renewed{}, err
	}
	if v == int64(1) && acked < s.acks {
		// Not given back: the lock is still held under its earlier ttl,
		// which the replicas have, and the caller keeps the validity that
		// ttl gave.
		return lockcore.Renewed{}, &NotReplicatedError{"renewal", acked, s.acks}
	}
	return lockcore.Renewed{OK: v == int64(1), Revoked: v == int64(2)}, nil
}

// revokeChannel is where sidecar id hears of its clients' locks revoked.
// It is a classic channel, even on a Cluster, where a PUBLISH reaches
// every node: a sidecar cannot subscribe to one slot per lock it holds.
func (s *Store) revokeChannel(id string) string { return s.prefix + "sidecar:" + id }

// Notify implements lockcore.Store: a message on the sidecar's channel,
// in the form Revoke's script sends.
func (s *Store) Notify(ctx context.Context, sidecar, name, token string) error {
	return s.rdb.Publish(ctx, s.revokeChannel(sidecar), token+" "+name).Err()
}

// Revoke implements lockcore.Store.
func (s *Store) Revoke(ctx context.Context, req lockcore.RevokeRequest) (bool, error) {
	k := s.keys(req.Name)
	v, _, err := s.run(ctx, s.revoke, k.list(), func(repeat bool) []any {
		return []any{req.Token, flag(repeat), s.revokeChannel(req.Holder), req.Token + " " + req.Name}
	})
	if err != nil {
		return false, err
	}
	return v == int64(1), nil
}

// WatchRevokes implements lockcore.Store.
func (s *Store) WatchRevokes(ctx context.Context, id string, revoked func(name, token string)) (func(), error) {
	return s.watcher.watch(ctx, s.revokeChannel(id), false, func(msg string, ok bool) {
		if token, name, found := strings.Cut(msg, " "); ok && found {
			revoked(name, token)
		}
	})
}

func (s *Store) releaseArgs(req lockcore.ReleaseRequest, k keys, repeat bool) []any {
	var waiter, nonce string
	var ttl int64
	if s.changed.Load() {
		// A hand-off is a grant: not through a server not yet checked. The
		// release only wakes the next waiter, whose own acquire waits.
		req.Next, req.GrantTTL = nil, 0
	}
	if s.acks > 0 {
		// Another sidecar would tell its waiter of a grant in the wake,
		// before any WAIT: let the waiter's own acquire take it, durably.
		req.GrantTTL = 0
	}
	if req.Next != nil {
		waiter, nonce, ttl = req.Next.Waiter, req.Next.Nonce, ms(req.Next.TTL)
	}
	return append([]any{req.Token, s.retention, flag(repeat), waiter, nonce, ttl, k.wake, s.sharded, ms(req.GrantTTL), req.Self, s.floorArg()},
		s.stateArg(req.Name)...)
}

func (s *Store) parseReleased(v any) (lockcore.Released, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 4 {
		return lockcore.Released{}, fmt.Errorf("unexpected reply to release: %v", v)
	}
	r := lockcore.Released{Released: arr[0] == int64(1)}
	r.Next, _ = arr[1].(string)
	s.noteFence(r.Next)
	r.First, _ = arr[2].(string)
	r.Seq, _ = arr[3].(int64)
	return r, nil
}

// Release implements lockcore.Store.
func (s *Store) Release(ctx context.Context, req lockcore.ReleaseRequest) (lockcore.Released, error) {
	k := s.keys(req.Name)
	args := func(repeat bool) []any { return s.releaseArgs(req, k, repeat) }
	var v any
	var repeated bool
	var err error
	acked := s.acks
	if req.Next != nil {
		// It may grant the candidate, who is told only once replicas have it.
		v, repeated, acked, err = s.runDurable(ctx, s.release, s.withState(k), args)
	} else {
		v, repeated, err = s.run(ctx, s.release, s.withState(k), args)
	}
	if err != nil {
		return lockcore.Released{}, err
	}
	r, err := s.parseReleased(v)
	r.Repeated = repeated
	if err == nil && r.Next != "" && (s.changed.Load() || acked < s.acks) {
		// Handed to the candidate by a server not yet checked: give it
		// back, as an acquire's grant would be.
		if _, err := s.Release(ctx, lockcore.ReleaseRequest{Name: req.Name, Token: r.Next}); err != nil {
			return r, err
		}
		r.Next = ""
	}
	return r, err
}

// ReleaseAll implements lockcore.Store with batches on one Redis, and with
// one pipeline on a Cluster, which go-redis splits by node.
func (s *Store) ReleaseAll(ctx context.Context, reqs []lockcore.ReleaseRequest) ([]lockcore.Released, error) {
	out := make([]lockcore.Released, len(reqs))
	if len(reqs) == 0 {
		return out, nil
	}
	if s.acks > 0 {
		// Each may hand the lock to a waiter, which must wait for its WAIT.
		var errs []error
		for i, req := range reqs {
			var err error
			if out[i], err = s.Release(ctx, req); err != nil {
				errs = append(errs, err)
			}
		}
		return out, errors.Join(errs...)
	}
	if s.batch != nil {
		return s.releaseBatched(ctx, reqs)
	}
	cmds, _ := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, req := range reqs {
			k := s.keys(req.Name)
			_ = p.Process(ctx, evalCmd(ctx, s.release, "", s.withState(k), s.releaseArgs(req, k, false)))
		}
		return nil
	})
	// The script cache may have been flushed, or the pipeline cut: send each
	// failed one on its own, which reloads the script and repeats lost replies.
	var errs []error
	for i, c := range cmds {
		var err error
		if c.Err() == nil {
			out[i], err = s.parseReleased(c.(noRetry).Val())
		} else {
			out[i], err = s.Release(ctx, reqs[i])
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// Leave implements lockcore.Store.
func (s *Store) Leave(ctx context.Context, name, waiter string) error {
	k := s.keys(name)
	_, _, err := s.run(ctx, s.leave, k.list(), func(bool) []any { return []any{waiter, k.wake, s.sharded} })
	if err != nil {
		return err
	}
	return nil
}

// KeepAlive implements lockcore.Store.
func (s *Store) KeepAlive(ctx context.Context, name string, waiters []string, ttl time.Duration) error {
	if len(waiters) == 0 {
		return nil
	}
	k := s.keys(name)
	_, _, err := s.run(ctx, s.keepalive, k.list(), func(bool) []any {
		args := make([]any, 0, len(waiters)+1)
		args = append(args, ms(ttl))
		for _, w := range waiters {
			args = append(args, w)
		}
		return args
	})
	if err != nil {
		return err
	}
	return nil
}

// Watch implements lockcore.Store with one subscriber connection for the
// whole store (one per name on a Cluster), subscribed to a name's channel
// only while it is watched.
func (s *Store) Watch(ctx context.Context, name string, wake func(lockcore.Wake)) (func(), error) {
	return s.watcher.watch(ctx, s.keys(name).wake, s.sharded == "1", func(msg string, ok bool) {
		if !ok {
			wake(lockcore.Wake{}) // messages may have been missed: look again
			return
		}
		wake(parseWake(msg))
	})
}

// Inspect implements lockcore.Store.
func (s *Store) Inspect(ctx context.Context, name string) (lockcore.State, error) {
	k := s.keys(name)
	v, _, err := s.run(ctx, s.inspect, k.list(), func(bool) []any { return nil })
	if err != nil {
		return lockcore.State{}, err
	}
	arr, ok := v.([]any)
	if !ok || (len(arr) != 4 && (len(arr) < 5 || (len(arr)-5)%3 != 0)) {
		return lockcore.State{}, fmt.Errorf("unexpected reply to inspect: %v", v)
	}
	var st lockcore.State
	if f, ok := arr[2].(string); ok {
		st.Fence, _ = strconv.ParseInt(f, 10, 64)
	}
	if n, ok := arr[3].(int64); ok {
		st.Queued = int(n)
	}
	if token, ok := arr[0].(string); ok {
		pttl, _ := arr[1].(int64)
		st.Held, st.Token, st.TTL = true, token, time.Duration(max(pttl, 0))*time.Millisecond
		if t, ok := strings.CutSuffix(token, "!"); ok && lockcore.RevokedToken(t) == token {
			st.Token, st.Revoked = t, true
		}
		st.Fence, _, _ = lockcore.ParseToken(st.Token)
	}
	if len(arr) > 4 {
		if err := inspectMany(&st, arr); err != nil {
			return lockcore.State{}, fmt.Errorf("unexpected reply to inspect: %w", err)
		}
	}
	return st, nil
}

// inspectMany fills st from inspect's reply for a name held by many: its
// kind, then each holder's nonce, ms left and fence.
func inspectMany(st *lockcore.State, arr []any) error {
	code, _ := arr[4].(string)
	kind, ok := lockcore.ParseKindCode(code)
	if !ok {
		return fmt.Errorf("kind %q", code)
	}
	for i := 5; i+2 < len(arr); i += 3 {
		member, _ := arr[i].(string)
		left, _ := arr[i+1].(int64)
		f, _ := arr[i+2].(string)
		fence, err := strconv.ParseInt(f, 10, 64)
		if err != nil || member == "" {
			return fmt.Errorf("holder %v %v %v", arr[i], arr[i+1], arr[i+2])
		}
		nonce, revoked := strings.CutSuffix(member, "!")
		st.Holders = append(st.Holders, lockcore.Holder{Token: lockcore.FormatToken(fence, nonce), Fence: fence,
			TTL: time.Duration(max(left, 0)) * time.Millisecond, Revoked: revoked})
		st.Fence, st.TTL = max(st.Fence, fence), max(st.TTL, time.Duration(left)*time.Millisecond)
	}
	if len(st.Holders) > 0 {
		st.Held, st.Kind = true, kind
		slices.SortFunc(st.Holders, func(a, b lockcore.Holder) int { return cmp.Compare(a.Fence, b.Fence) })
	}
	return nil
}

// unreached is the refusal of an acquire while Options.Guard holds them
// back: no health check has succeeded yet, however many ran. It says why
// the last one failed, as the log does.
func (s *Store) unreached() error {
	err := notChecked{}
	if last := s.lastHealthErr.Load(); last != nil {
		err.last = *last
	}
	return err
}

// notChecked is lockcore.ErrNotChecked with the last health check's error.
// It is only text: unwrapping to that error could make a timeout of the
// check look like one of the acquire.
type notChecked struct{ last string }

func (e notChecked) Error() string {
	if e.last == "" {
		return "the upstream could not be reached since lockproxy started; retry in a moment"
	}
	return "the upstream could not be reached since lockproxy started (last error: " + e.last + "); retry in a moment"
}

func (e notChecked) Unwrap() error { return lockcore.ErrNotChecked }

// quietKey is where a quiet period is announced to every sidecar.
func (s *Store) quietKey() string { return s.prefix + "quiet" }

// epochKey holds a random value that marks the upstream's data set: a
// restart that loses the data loses the key too, and the next Health
// writes a new one. Unlike run_id, an acquire script can check it.
func (s *Store) epochKey() string { return s.prefix + "epoch" }

// stateKey is the store-wide state hash: the largest fence granted and the
// latest end of any lease (see note_state in lib.lua).
func (s *Store) stateKey() string { return s.state }

// Health implements lockcore.Upstream, in one round trip. The ID is the
// server's run_id, which changes on every restart and failover; Data is
// the epoch, which changes when the data is lost. A server that is a
// replica (a demoted primary) is an error: lockproxy cannot write there.
func (s *Store) Health(ctx context.Context) (lockcore.Health, error) {
	if s.cluster != nil {
		return s.clusterHealth(ctx)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return lockcore.Health{}, err
	}
	var epoch, info *redis.StringCmd
	var quiet *redis.DurationCmd
	var state *redis.SliceCmd
	var now *redis.TimeCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		info = p.Info(ctx, "server", "replication", "cluster")
		// No expiry: it is one key, and it must outlive every lock.
		p.SetNX(ctx, s.epochKey(), hex.EncodeToString(nonce[:]), 0)
		epoch = p.Get(ctx, s.epochKey())
		quiet = p.PTTL(ctx, s.quietKey())
		state = p.HMGet(ctx, s.stateKey(), "fence", "hwm")
		now = p.Time(ctx)
		return nil
	})
	if infoField(info.Val(), "cluster_enabled") == "1" {
		// Its other nodes hold most slots, and this client would follow
		// none of their MOVED replies.
		err = errors.New("upstream is a Redis Cluster node, but lockproxy reads it as one Redis: set LOCKPROXY_UPSTREAM_MODE=cluster " +
			"(auto finds out at start, when the node answers then)")
	} else if role := infoField(info.Val(), "role"); role != "" && role != "master" {
		// Its writes fail with READONLY: say what is true.
		err = fmt.Errorf("upstream is a replica (role %s of %s:%s), not the primary", role,
			infoField(info.Val(), "master_host"), infoField(info.Val(), "master_port"))
	}
	if err != nil {
		msg := err.Error()
		s.lastHealthErr.Store(&msg)
		return lockcore.Health{}, err
	}
	s.lastHealthErr.Store(nil)
	h := lockcore.Health{ID: infoField(info.Val(), "run_id"), Data: epoch.Val()}
	s.readQuietAndState(&h, quiet, state, now)
	return h, nil
}

// readQuietAndState fills h's Quiet from the quiet key's PTTL, and its
// Outstanding from the state hash's hwm against Redis's clock (-1 when the
// reply says nothing), and raises the floor to the hash's fence.
func (s *Store) readQuietAndState(h *lockcore.Health, quiet *redis.DurationCmd, state *redis.SliceCmd, now *redis.TimeCmd) {
	h.Quiet, h.Outstanding = max(quiet.Val(), 0), -1
	v := state.Val()
	if len(v) != 2 {
		return
	}
	if f, ok := v[0].(string); ok {
		if n, err := strconv.ParseInt(f, 10, 64); err == nil {
			s.raiseFloor(n)
		}
	}
	h.Outstanding = 0
	if hw, ok := v[1].(string); ok {
		if n, err := strconv.ParseInt(hw, 10, 64); err == nil {
			h.Outstanding = max(time.Duration(n-now.Val().UnixMilli())*time.Millisecond, 0)
		}
	}
}

// Accept implements lockcore.Upstream: acquires are granted from now on
// only while the epoch key still holds h.Data.
func (s *Store) Accept(h lockcore.Health) {
	if s.cluster != nil {
		s.acceptShards(h)
		return
	}
	epoch, server := h.Data, h.ID
	s.epoch.Store(&epoch)
	s.server.Store(&server)
	if to := s.changedTo.Load(); to == nil || *to == server {
		s.changed.Store(false)
	}
}

// Invalidate implements lockcore.Upstream with a new epoch: every
// sidecar's acquires are refused from now on, until its next health check
// sees the change and deals with it.
func (s *Store) Invalidate(ctx context.Context, shard string) error {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	keys, err := s.supervisionKeys(shard)
	if err != nil {
		return err
	}
	return s.rdb.Set(ctx, keys.epoch, hex.EncodeToString(nonce[:]), 0).Err()
}

// supervisionKeys are the epoch and quiet keys of shard (a Shard's Node)
// on a Cluster, and the store-wide ones otherwise.
func (s *Store) supervisionKeys(shard string) (shardKeys, error) {
	if s.cluster == nil {
		return shardKeys{epoch: s.epochKey(), state: s.stateKey(), quiet: s.quietKey()}, nil
	}
	sv, err := s.shardOf(shard)
	if err != nil {
		return shardKeys{}, err
	}
	return sv.keys, nil
}

// infoField is one "name:value" line of INFO's text.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// AnnounceQuiet implements lockcore.Store. It never shortens an announced
// period: another sidecar may have seen an earlier restart.
func (s *Store) AnnounceQuiet(ctx context.Context, shard string, d time.Duration) error {
	keys, err := s.supervisionKeys(shard)
	if err != nil {
		return err
	}
	// One script, so that two sidecars announcing different periods at once
	// cannot leave the shorter one.
	return announceQuiet.Run(ctx, s.rdb, []string{keys.quiet}, d.Milliseconds()).Err()
}

var announceQuiet = redis.NewScript(`
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], 'upstream restarted or failed over', 'PX', ARGV[1])
end
return 1`)

// Risks implements lockcore.Store from CONFIG GET and INFO persistence:
// on a Cluster, of every primary, each risk once. An upstream that
// refuses CONFIG (managed services, ACLs) is reported as a risk to check
// by hand.
func (s *Store) Risks(ctx context.Context) ([]lockcore.Risk, error) {
	if s.cluster == nil {
		return risksOf(ctx, s.rdb)
	}
	var risks []lockcore.Risk
	err := s.eachPrimary(ctx, func(c *redis.Client) error {
		rs, err := risksOf(ctx, c)
		for _, r := range rs {
			if !slices.ContainsFunc(risks, func(o lockcore.Risk) bool { return o.Kind == r.Kind }) {
				r.Detail = c.Options().Addr + ": " + r.Detail
				risks = append(risks, r)
			}
		}
		return err
	})
	return risks, err
}

// eachPrimary calls fn with each primary of the Cluster in turn.
func (s *Store) eachPrimary(ctx context.Context, fn func(c *redis.Client) error) error {
	var mu sync.Mutex
	var primaries []*redis.Client
	err := s.cluster.rdb.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		primaries = append(primaries, c)
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range primaries {
		errs = append(errs, fn(c))
	}
	return errors.Join(errs...)
}

func risksOf(ctx context.Context, c redis.UniversalClient) ([]lockcore.Risk, error) {
	var risks []lockcore.Risk
	cfg, err := c.ConfigGet(ctx, "maxmemory*").Result()
	if err != nil {
		return []lockcore.Risk{{Kind: "unknown", Detail: "CONFIG GET refused (" + err.Error() +
			"): check by hand that maxmemory-policy is noeviction and that Redis persists its data"}}, nil
	}
	if policy := cfg["maxmemory-policy"]; policy != "" && policy != "noeviction" {
		risks = append(risks, lockcore.Risk{Kind: "eviction", Detail: "maxmemory-policy is " + policy +
			" (maxmemory " + cfg["maxmemory"] + "): Redis may evict lock keys under memory pressure; use noeviction"})
	}
	save, err := c.ConfigGet(ctx, "save").Result()
	if err != nil {
		return risks, err
	}
	info, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		return risks, err
	}
	if save["save"] == "" && infoField(info, "aof_enabled") == "0" {
		risks = append(risks, lockcore.Risk{Kind: "no_persistence", Detail: "neither RDB snapshots nor AOF: " +
			"a restart forgets every lock (lockproxy then keeps a quiet period, LOCKPROXY_QUIET_PERIOD)"})
	}
	return risks, nil
}

// persistenceRank orders Persistence's answers, from the least kept.
func persistenceRank(p string) int {
	return slices.Index([]string{"unknown", "none", "rdb", "aof-no", "aof-everysec", "aof-always"}, p)
}

// Persistence implements lockcore.Upstream from CONFIG GET: AOF, with its
// fsync policy, before RDB snapshots. A Redis that refuses CONFIG says
// unknown. On a Cluster, it is the least that any primary keeps: what a
// restart of the worst shard would cost.
func (s *Store) Persistence(ctx context.Context) (string, error) {
	if s.cluster == nil {
		return persistenceOf(ctx, s.rdb)
	}
	least := ""
	err := s.eachPrimary(ctx, func(c *redis.Client) error {
		p, err := persistenceOf(ctx, c)
		if err == nil && (least == "" || persistenceRank(p) < persistenceRank(least)) {
			least = p
		}
		return err
	})
	return least, err
}

func persistenceOf(ctx context.Context, c redis.UniversalClient) (string, error) {
	aof, err := c.ConfigGet(ctx, "append*").Result()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return "unknown", nil
		}
		return "", err
	}
	if aof["appendonly"] == "yes" {
		return "aof-" + aof["appendfsync"], nil
	}
	save, err := c.ConfigGet(ctx, "save").Result()
	if err != nil {
		return "", err
	}
	if save["save"] != "" {
		return "rdb", nil
	}
	return "none", nil
}

// Close stops the watcher and closes the Redis client. Errors closing
// connections to the upstream (a TLS close alert it did not take, say) are
// not reported: they say nothing of the locks, which are left to expire.
func (s *Store) Close() error {
	if s.batch != nil {
		s.batch.close()
	}
	s.watcher.close()
	_ = s.rdb.Close()
	return nil
}

// List implements lockcore.Store: it SCANs for the names' keys (on every
// primary of a Cluster), at most lockcore.ListScanBudget of them, and
// inspects each name it finds, up to count.
func (s *Store) List(ctx context.Context, match func(string) bool, count int) ([]lockcore.Listed, error) {
	var mu sync.Mutex
	seen := map[string]bool{}
	var names []string
	scanned := 0
	pattern := globEscape(s.prefix) + "{*"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			scanned += len(keys)
			for _, k := range keys {
				if name, ok := s.nameOf(k); ok && !seen[name] && match(name) {
					seen[name] = true
					names = append(names, name)
				}
			}
			done := next == 0 || len(names) >= count || scanned >= lockcore.ListScanBudget
			mu.Unlock()
			if done {
				return nil
			}
			cursor = next
		}
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.rdb)
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []lockcore.Listed
	for _, name := range names {
		if len(out) >= count {
			break
		}
		st, err := s.Inspect(ctx, name)
		if err != nil {
			return out, err
		}
		if st.Held || st.Queued > 0 {
			out = append(out, lockcore.Listed{Name: name, State: st})
		}
	}
	return out, nil
}

// nameOf returns the lock name whose lock or queue key key is (see keys).
func (s *Store) nameOf(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+"{")
	i := strings.IndexByte(rest, '}')
	if !ok || i < 0 {
		return "", false
	}
	tag, tail := rest[:i], rest[i+1:]
	if !strings.Contains(tail, "}") {
		// A name of its own tag: its lock key, or a key of its queue.
		return tag, tail == "" || tail == ":q" || tail == ":qa"
	}
	// A name with a '}', tagged by its digest: the lock key is the tag and
	// the name, the queue's have a suffix more.
	for _, suffix := range []string{"", ":q", ":qa"} {
		if name, ok := strings.CutSuffix(tail, suffix); ok && s.keys(name).lock == s.prefix+"{"+tag+"}"+name {
			return name, true
		}
	}
	return "", false
}

// globEscape makes s match itself in a Redis glob pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
