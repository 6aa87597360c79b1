package lockcore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Locks grants leases from a Store to sessions. It owns the renewal timers
// and background releases of every session it made.
//
// Lock order: a lease's renewing, then a Session's mu, then Locks.mu, then
// a queue's mu. A handover's mu and the tracker's mu are leaves. No store
// call is made while any of them is held, but for renewing, which orders a
// lease's renewals and is held across them (each bounded by the upstream
// timeout).
type Locks struct {
	core

	quietUntil  atomic.Int64 // ns since base; no grant before it (see UpstreamReset)
	verifying   atomic.Bool  // the upstream changed and its locks are being checked: no grant
	checkMu     sync.Mutex   // serialises CheckUpstream
	store0      Health       // guarded by checkMu; the store as last accepted
	verifyStart time.Time    // guarded by checkMu; when verifying began
	// On a sharded store: the per-slot stops (nil until the first check),
	// the shards as last accepted, by Node, and when each shard being
	// checked began to be.
	gates  atomic.Pointer[gates]
	shards map[string]Shard // guarded by checkMu
	// What the last check found of the shards: how many were fine, and
	// how many could not be checked.
	shardsOK, shardsFailing atomic.Int64
	verifyStarts            map[string]time.Time // guarded by checkMu

	mu       sync.Mutex
	sessions map[*Session]struct{} // guarded by mu
	queues   map[string]*queue     // guarded by mu; names with blocked acquires
	flights  map[string]*flight    // guarded by mu; try-once acquires in flight
	holders  map[string]holder     // guarded by mu; the local session holding each name and token (holderKey)
	closing  bool                  // guarded by mu
}

// core is what every part of Locks shares, and all that a name's queue may
// reach: the store and the settings, the clock, the background work and
// the counters.
type core struct {
	store Store
	cfg   Config
	clock Clock
	work  *tracker
	obs   Observer
	log   *slog.Logger
	id    string // this sidecar's part of waiter ids

	// ctx is cancelled by StopGranting; it ends waits and in-flight renewals.
	ctx    context.Context
	cancel context.CancelFunc

	nextWaiter atomic.Uint64
	who        whoRequests     // LOCK.LIST's questions to other sidecars
	held       atomic.Int64    // leases held by all sessions
	heldMany   [2]atomic.Int64 // of them, shared (0) and semaphore permits (1)
	lost       atomic.Int64    // leases lost since start
	waiters    atomic.Int64    // acquires blocked
	// handOffs counts hand-offs to this sidecar's waiters, by HandOffKinds.
	handOffs [len(HandOffKinds)]atomic.Int64
	detached *detachedSet

	base time.Time // read with its monotonic clock, so a clock step cannot end a quiet period
	// horizon is the latest end (ns since base) of any lease this sidecar
	// knows to have been granted or renewed through the store, once
	// horizonKnown. It bounds the quiet period after a loss.
	horizon      atomic.Int64
	horizonKnown atomic.Bool
}

// New returns Locks over store, or an error naming each field of cfg that
// is out of range (see VerifyConfig). Shutdown releases what it granted;
// the caller closes the store afterwards.
func New(store Store, cfg Config) (*Locks, error) {
	if err := VerifyConfig(cfg); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	l := &Locks{
		core: core{
			store:  store,
			cfg:    cfg,
			clock:  cfg.Clock,
			work:   &tracker{clock: cfg.Clock},
			obs:    cfg.Observer,
			log:    cfg.Logger,
			id:     randomHex()[:16],
			ctx:    ctx,
			cancel: cancel,
			base:   cfg.Clock.Now(),
		},
		sessions:     make(map[*Session]struct{}),
		queues:       make(map[string]*queue),
		flights:      make(map[string]*flight),
		holders:      make(map[string]holder),
		verifyStarts: make(map[string]time.Time),
	}
	l.detached = newDetachedSet(&l.core)
	l.work.Go(l.watchRevokes)
	return l, nil
}

// randomHex returns 128 random bits in hex, from crypto/rand: enough that a
// collision, or a guess of another client's token, is impractical.
func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (Go ≥ 1.24 panics instead)
	return hex.EncodeToString(b[:])
}

// newNonce returns a nonce of this sidecar's (see TokenSidecar).
func (c *core) newNonce() string { return c.id + nonceSep + randomHex() }

func (c *core) newWaiterID() string {
	return c.id + ":" + strconv.FormatUint(c.nextWaiter.Add(1), 36)
}

// now reads the clock.
func (c *core) now() time.Time { return c.clock.Now() }

// shuttingDown reports whether StopGranting has begun.
func (c *core) shuttingDown() bool { return c.ctx.Err() != nil }

// until is context.WithDeadline for a deadline read off the clock: the
// context's own timer runs on real time, so it is given the time left.
func (c *core) until(parent context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, deadline.Sub(c.now()))
}

// callCtx bounds one store call made for a client command.
func (c *core) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.UpstreamTimeout)
}

// maxHold is the cap for a new lease: the lower of the configured and the
// requested ones; 0 when neither caps it. Detached leases have no renewal
// to cap.
func (l *Locks) maxHold(o AcquireOptions) time.Duration {
	if o.Detached {
		return 0
	}
	switch {
	case o.MaxHold > 0 && l.cfg.MaxHold > 0:
		return min(o.MaxHold, l.cfg.MaxHold)
	case o.MaxHold > 0:
		return o.MaxHold
	default:
		return l.cfg.MaxHold
	}
}

// Config returns the effective configuration, defaults filled in.
func (l *Locks) Config() Config { return l.cfg }

// NewSession starts a session: the leases of one client connection. onLost,
// if not nil, is called (from another goroutine) when a lease is lost.
func (l *Locks) NewSession(onLost func(name, token string)) *Session {
	s := &Session{l: l, onLost: onLost, leases: make(map[string]*lease)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		s.closed = true
		return s
	}
	l.sessions[s] = struct{}{}
	return s
}

// StopGranting is the first step of a shutdown: nothing is granted from
// now on, and every blocked acquire ends with ErrShuttingDown. Sessions
// that close after it still release their owned leases. It is safe to call
// more than once.
func (l *Locks) StopGranting() {
	l.mu.Lock()
	l.closing = true
	l.work.Close()
	queues := l.queueList()
	l.mu.Unlock()
	for _, q := range queues {
		q.stopTimers()
	}
	l.detached.stop()
	l.cancel()
}

// sessionList is the open sessions, at one moment.
func (l *Locks) sessionList() []*Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Session, 0, len(l.sessions))
	for s := range l.sessions {
		out = append(out, s)
	}
	return out
}

// queueList is every queue. l.mu is held.
func (l *Locks) queueList() []*queue {
	qs := make([]*queue, 0, len(l.queues))
	for _, q := range l.queues {
		qs = append(qs, q)
	}
	return qs
}

// Shutdown stops granting, ends every blocked acquire with ErrShuttingDown,
// releases every owned lease of every session in one batch, and waits for
// background work, all within ctx. Detached leases are left to their ttl:
// they belong to no connection. It is safe to call more than once.
func (l *Locks) Shutdown(ctx context.Context) error {
	l.StopGranting()
	l.mu.Lock()
	sessions := make([]*Session, 0, len(l.sessions))
	for s := range l.sessions {
		sessions = append(sessions, s)
	}
	clear(l.sessions)
	l.mu.Unlock()

	var owned []*lease
	for _, s := range sessions {
		owned = append(owned, s.takeOwned(true)...)
	}
	err := l.releaseAll(ctx, owned)
	return errors.Join(err, l.work.Wait(ctx))
}

// Stats are the figures INFO shows.
type Stats struct {
	Held int64 // leases held by all sessions
	// HeldShared and HeldPermits are how many of them are read locks and
	// semaphore permits.
	HeldShared, HeldPermits int64
	Lost                    int64 // leases lost since start
	Waiters                 int64 // acquires blocked now
	Detached                int64 // detached locks granted here that may still be held (see Config.MaxDetached)
	HandOffs                [len(HandOffKinds)]int64
}

// HandOffKinds are how a release can pass a lock straight to a waiter of
// this sidecar (see Observer.HandedOff), in the order of Stats.HandOffs.
var HandOffKinds = [...]string{"local", "local_ahead", "upstream", "remote"}

const (
	handOffLocal = iota
	handOffLocalAhead
	handOffUpstream
	handOffRemote
)

// Stats returns current figures.
func (l *Locks) Stats() Stats {
	st := Stats{Held: l.held.Load(), HeldShared: l.heldMany[0].Load(), HeldPermits: l.heldMany[1].Load(),
		Lost: l.lost.Load(), Waiters: l.waiters.Load(), Detached: int64(l.detached.len())}
	for i := range l.handOffs {
		st.HandOffs[i] = l.handOffs[i].Load()
	}
	return st
}

// countHandOff counts a hand-off to a waiter, by its index in HandOffKinds.
func (c *core) countHandOff(kind int) {
	c.handOffs[kind].Add(1)
	c.obs.HandedOff(HandOffKinds[kind])
}

func (c *core) leaseStarted(kind Kind) {
	c.held.Add(1)
	if i, ok := manyIndex(kind); ok {
		c.heldMany[i].Add(1)
	}
	c.obs.LeaseStarted(kind.Mode())
}

func (c *core) leaseEnded(ls *lease, lost bool) {
	c.held.Add(-1)
	if i, ok := manyIndex(ls.kind); ok {
		c.heldMany[i].Add(-1)
	}
	if lost {
		c.lost.Add(1)
	}
	c.obs.LeaseEnded(ls.kind.Mode(), c.now().Sub(ls.start), lost)
}

// manyIndex is kind's place in core.heldMany, when it is held by many.
func manyIndex(kind Kind) (int, bool) {
	switch {
	case kind.Limit > 0:
		return 1, true
	case kind.Shared:
		return 0, true
	}
	return 0, false
}

// holder is the session on this sidecar that holds a name, and its lease.
type holder struct {
	s  *Session
	ls *lease
}

// holderKey is a lease's key in Locks.holders: a name held by many has a
// holder per token.
func holderKey(name, token string) string { return name + "\x00" + token }

func (l *Locks) setHolder(s *Session, ls *lease) {
	l.mu.Lock()
	l.holders[holderKey(ls.name, ls.token)] = holder{s, ls}
	l.mu.Unlock()
}

func (l *Locks) clearHolder(ls *lease) {
	l.mu.Lock()
	if k := holderKey(ls.name, ls.token); l.holders[k].ls == ls {
		delete(l.holders, k)
	}
	l.mu.Unlock()
}

// heldBy returns the local session and lease whose token is token on name.
func (l *Locks) heldBy(name, token string) (holder, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.holders[holderKey(name, token)]
	return h, ok
}

func (l *Locks) forget(s *Session) {
	l.mu.Lock()
	delete(l.sessions, s)
	l.mu.Unlock()
}

// Waiters reports how many acquires are blocked on name on this sidecar.
func (l *Locks) Waiters(name string) int {
	if q := l.queue(name); q != nil {
		return q.len()
	}
	return 0
}

// queue returns name's queue, or nil when nobody waits for it here.
func (l *Locks) queue(name string) *queue {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queues[name]
}

// queueFor returns name's queue, making it (and its watch) if there is
// none open.
func (l *Locks) queueFor(name string) (*queue, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return nil, ErrShuttingDown
	}
	if q := l.queues[name]; q != nil && q.open() {
		return q, nil
	}
	q := newQueue(&l.core, name, l.forgetQueue)
	l.queues[name] = q
	l.work.Go(q.watch)
	return q, nil
}

// forgetQueue takes a closed queue out of the map.
func (l *Locks) forgetQueue(q *queue) {
	l.mu.Lock()
	if l.queues[q.name] == q {
		delete(l.queues, q.name)
	}
	l.mu.Unlock()
}

// ListEntry is one name in an admin's listing (Locks.List).
type ListEntry struct {
	Name    string
	Kind    Kind
	Waiters int // queued for it, on every sidecar
	Holders []ListHolder
}

// ListHolder is one holder of a listed name.
type ListHolder struct {
	Fence   int64
	Sidecar string // the id of the sidecar whose client holds it, from its token
	// Client is the holder's connection: this sidecar's own, or as the
	// holder's sidecar answered when asked (empty when it did not).
	Client  Client
	TTL     time.Duration
	Revoked bool
}

// ID is this sidecar's id, as tokens and listings name it.
func (l *Locks) ID() string { return l.id }

// List is an admin's view of the names held or waited for on the store,
// for every sidecar: at most count names that match accepts, looking at a
// bounded part of the store (see Store.List).
func (l *Locks) List(ctx context.Context, match func(string) bool, count int) ([]ListEntry, error) {
	listed, err := l.store.List(ctx, match, count)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	// Holders on other sidecars: ask them who their clients are.
	remote := map[string]map[string][]string{}
	ask := func(name, token string) {
		if sc, ok := TokenSidecar(token); ok && sc != l.id {
			if remote[sc] == nil {
				remote[sc] = map[string][]string{}
			}
			remote[sc][name] = append(remote[sc][name], token)
		}
	}
	for _, ld := range listed {
		for _, h := range ld.Holders {
			if !h.Revoked {
				ask(ld.Name, h.Token)
			}
		}
		if ld.Held && !ld.Revoked && len(ld.Holders) == 0 {
			ask(ld.Name, ld.Token)
		}
	}
	others := l.askWho(ctx, remote)
	out := make([]ListEntry, 0, len(listed))
	for _, ld := range listed {
		e := ListEntry{Name: ld.Name, Kind: ld.Kind, Waiters: ld.Queued}
		holders := ld.Holders
		if len(holders) == 0 && ld.Held {
			holders = []Holder{{Token: ld.Token, Fence: ld.Fence, TTL: ld.TTL, Revoked: ld.Revoked}}
		}
		for _, h := range holders {
			lh := ListHolder{Fence: h.Fence, TTL: h.TTL, Revoked: h.Revoked}
			lh.Sidecar, _ = TokenSidecar(h.Token)
			if hd, ok := l.heldBy(ld.Name, h.Token); ok {
				lh.Client = hd.s.clientInfo()
			} else if c, ok := others[h.Token]; ok {
				lh.Client = c
			}
			e.Holders = append(e.Holders, lh)
		}
		out = append(out, e)
	}
	return out, nil
}
