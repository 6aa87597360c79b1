package lockcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config tunes Locks. Zero fields take the defaults in parentheses.
type Config struct {
	DefaultTTL    time.Duration // ttl when a client gives none (30s)
	RenewFraction float64       // an owned lease is renewed every ttl × this (0.5)
	Retry         Backoff       // polling while a WAIT finds the lock held
	// MaxLocksPerSession bounds the leases one connection may hold (0: no bound).
	MaxLocksPerSession int
	// MaxWaitersPerName bounds the acquires this sidecar lets block on one
	// name (0: no bound).
	MaxWaitersPerName int
	// MaxHold caps how long an owned lease may be kept, renewals included:
	// at the cap it is released and its holder told, as for a lost lease,
	// so a client that hangs with its connection open cannot block others
	// for ever (0: no cap). A per-acquire MaxHold may only lower it.
	MaxHold time.Duration
	// QuietPeriod is how long nothing is granted after CheckUpstream finds
	// that the store restarted or failed over: long enough for every lease
	// granted through the old store to have expired, so no holder that was
	// not told can still believe it holds (0: no quiet period).
	QuietPeriod time.Duration
	// UpstreamTimeout bounds each store call made for a client command (2s).
	UpstreamTimeout time.Duration
	// WaiterTTL is how long a waiter keeps its place in the store's queue
	// without word from this sidecar, which renews it every third of that.
	// A crashed sidecar's waiters stop blocking others after it (3s).
	WaiterTTL time.Duration
	// LocalHandoffs is how many releases in a row may hand a lock to a
	// waiter on this sidecar while a waiter on another sidecar is first in
	// the store's queue (0: strict arrival order across sidecars). A local
	// hand-off skips the upstream round trip and the wake of the other
	// sidecar; the bound keeps the passed-over waiter's extra wait to that
	// many holds, as a cohort lock does across processor sockets.
	LocalHandoffs int
	Observer      Observer     // (none)
	Logger        *slog.Logger // (discard)
}

// Backoff is exponential backoff with jitter: Base, then × Multiplier up to
// Max, each sleep varied by ±Jitter of itself so that waiters spread out.
type Backoff struct {
	Base       time.Duration // (10ms)
	Multiplier float64       // (2)
	Max        time.Duration // (500ms)
	Jitter     float64       // 0..1 (0.2)
}

func (c *Config) setDefaults() {
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = 30 * time.Second
	}
	if c.RenewFraction <= 0 || c.RenewFraction >= 1 {
		c.RenewFraction = 0.5
	}
	if c.Retry.Base <= 0 {
		c.Retry.Base = 10 * time.Millisecond
	}
	if c.Retry.Multiplier < 1 {
		c.Retry.Multiplier = 2
	}
	if c.Retry.Max < c.Retry.Base {
		c.Retry.Max = max(500*time.Millisecond, c.Retry.Base)
	}
	c.Retry.Jitter = min(max(c.Retry.Jitter, 0), 1)
	if c.UpstreamTimeout <= 0 {
		c.UpstreamTimeout = 2 * time.Second
	}
	if c.WaiterTTL <= 0 {
		c.WaiterTTL = 3 * time.Second
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Drift is the margin by which a lease's validity ends before the store's
// expiry could: 1ms for the store's millisecond clock plus 1% of the ttl for
// the rate difference between two clocks (the Redlock rule).
func Drift(ttl time.Duration) time.Duration { return time.Millisecond + ttl/100 }

// validity is the deadline after which a lease acquired or renewed by a
// call sent at sent can no longer be assumed held.
func validity(sent time.Time, ttl time.Duration) time.Time {
	return sent.Add(ttl - Drift(ttl))
}

// Locks grants leases from a Store to sessions. It owns the renewal timers
// and background releases of every session it made.
type Locks struct {
	store Store
	cfg   Config
	obs   Observer
	log   *slog.Logger

	// ctx is cancelled by Shutdown; it ends waits and in-flight renewals.
	ctx    context.Context
	cancel context.CancelFunc
	work   sync.WaitGroup // renewal timers and background releases

	held    atomic.Int64 // leases held by all sessions
	lost    atomic.Int64 // leases lost since start
	waiters atomic.Int64 // acquires blocked
	// handOffs counts hand-offs to this sidecar's waiters, by HandOffKinds.
	handOffs [len(HandOffKinds)]atomic.Int64

	quietUntil atomic.Int64 // ns since base; no grant before it (see UpstreamReset)
	base       time.Time    // read with its monotonic clock, so a clock step cannot end a quiet period
	checkMu    sync.Mutex   // serialises CheckUpstream
	storeID    string       // guarded by checkMu; the store's last Health ID

	mu       sync.Mutex
	sessions map[*Session]struct{} // guarded by mu
	queues   map[string]*queue     // guarded by mu; names with blocked acquires
	flights  map[string]*flight    // guarded by mu; try-once acquires in flight
	holders  map[string]holder     // guarded by mu; the local session holding each name
	closing  bool                  // guarded by mu

	id         string        // this sidecar's part of waiter ids
	nextWaiter atomic.Uint64 // the other part
}

// New returns Locks over store. Shutdown releases what it granted; the
// caller closes the store afterwards.
func New(store Store, cfg Config) *Locks {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Locks{
		store:    store,
		cfg:      cfg,
		obs:      cfg.Observer,
		log:      cfg.Logger,
		ctx:      ctx,
		cancel:   cancel,
		sessions: make(map[*Session]struct{}),
		queues:   make(map[string]*queue),
		flights:  make(map[string]*flight),
		holders:  make(map[string]holder),
		id:       newNonce()[:16],
		base:     time.Now(),
	}
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

// track counts one piece of background work that Shutdown waits for; the
// worker calls l.work.Done. It reports false, counting nothing, once
// Shutdown has begun.
func (l *Locks) track() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.trackLocked()
}

// trackLocked is track with l.mu held.
func (l *Locks) trackLocked() bool {
	if l.closing {
		return false
	}
	l.work.Add(1)
	return true
}

// goTracked runs f as background work, or at once if Shutdown has begun.
func (l *Locks) goTracked(f func()) {
	if !l.track() {
		f()
		return
	}
	go func() {
		defer l.work.Done()
		f()
	}()
}

// shuttingDown reports whether Shutdown has begun.
func (l *Locks) shuttingDown() bool {
	return l.ctx.Err() != nil
}

// callCtx bounds one store call made for a client command.
func (l *Locks) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.cfg.UpstreamTimeout)
}

// StopGranting is the first step of a shutdown: nothing is granted from
// now on, and every blocked acquire ends with ErrShuttingDown. Sessions
// that close after it still release their owned leases. It is safe to call
// more than once.
func (l *Locks) StopGranting() {
	l.mu.Lock()
	l.closing = true
	for _, q := range l.queues {
		l.stopQueueTimersLocked(q)
	}
	l.mu.Unlock()
	l.cancel()
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
	for _, q := range l.queues {
		l.stopQueueTimersLocked(q)
	}
	l.mu.Unlock()
	l.cancel()

	var owned []*lease
	for _, s := range sessions {
		owned = append(owned, s.takeOwned(true)...)
	}
	err := l.releaseAll(ctx, owned)

	joined := make(chan struct{})
	go func() {
		l.work.Wait()
		close(joined)
	}()
	select {
	case <-joined:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("waiting for background work: %w", ctx.Err()))
	}
	return err
}

// Stats are the figures INFO shows.
type Stats struct {
	Held     int64 // leases held by all sessions
	Lost     int64 // leases lost since start
	Waiters  int64 // acquires blocked now
	HandOffs [len(HandOffKinds)]int64
}

// HandOffKinds are how a release can pass a lock straight to a waiter of
// this sidecar (see Observer.HandedOff), in the order of Stats.HandOffs.
var HandOffKinds = [...]string{"local", "local_ahead", "upstream", "remote"}

// Stats returns current figures.
func (l *Locks) Stats() Stats {
	st := Stats{Held: l.held.Load(), Lost: l.lost.Load(), Waiters: l.waiters.Load()}
	for i := range l.handOffs {
		st.HandOffs[i] = l.handOffs[i].Load()
	}
	return st
}

// countHandOff counts a hand-off to a waiter, by its index in HandOffKinds.
func (l *Locks) countHandOff(kind int) {
	l.handOffs[kind].Add(1)
	l.obs.HandedOff(HandOffKinds[kind])
}

const (
	handOffLocal = iota
	handOffLocalAhead
	handOffUpstream
	handOffRemote
)

func (l *Locks) leaseStarted() {
	l.held.Add(1)
	l.obs.LeaseStarted()
}

func (l *Locks) leaseEnded(ls *lease, lost bool) {
	l.held.Add(-1)
	if lost {
		l.lost.Add(1)
	}
	l.obs.LeaseEnded(time.Since(ls.start), lost)
}

// holder is the session on this sidecar that holds a name, and its lease.
type holder struct {
	s  *Session
	ls *lease
}

func (l *Locks) setHolder(s *Session, ls *lease) {
	l.mu.Lock()
	l.holders[ls.name] = holder{s, ls}
	l.mu.Unlock()
}

func (l *Locks) clearHolder(ls *lease) {
	l.mu.Lock()
	if l.holders[ls.name].ls == ls {
		delete(l.holders, ls.name)
	}
	l.mu.Unlock()
}

// releasedByToken tells the local holder of name, if token was its lease,
// that another connection released it: its lease is lost.
func (l *Locks) releasedByToken(name, token string) {
	l.mu.Lock()
	h, ok := l.holders[name]
	l.mu.Unlock()
	if ok && h.ls.token == token {
		h.s.lapse(h.ls, "another connection released it by its token", false)
	}
}

func (l *Locks) forget(s *Session) {
	l.mu.Lock()
	delete(l.sessions, s)
	l.mu.Unlock()
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
