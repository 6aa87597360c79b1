package lockcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	// UpstreamTimeout bounds each store call made for a client command (2s).
	UpstreamTimeout time.Duration
	Observer        Observer     // (none)
	Logger          *slog.Logger // (discard)
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

	mu       sync.Mutex
	sessions map[*Session]struct{} // guarded by mu
	queues   map[string]*queue     // guarded by mu; names with blocked acquires
	holders  map[string]holder     // guarded by mu; the local session holding each name
	closing  bool                  // guarded by mu
}

// queue is the set of sessions blocked on one name.
type queue struct {
	waiters int
	// wake is closed, and replaced, when this sidecar releases the name, so
	// local waiters retry at once instead of at their next poll.
	wake chan struct{}
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
		holders:  make(map[string]holder),
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
	if l.closing {
		return false
	}
	l.work.Add(1)
	return true
}

// Waiters reports how many acquires are blocked on name on this sidecar.
func (l *Locks) Waiters(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.queues[name]; q != nil {
		return q.waiters
	}
	return 0
}

func (l *Locks) enqueue(name string) {
	l.mu.Lock()
	q := l.queues[name]
	if q == nil {
		q = &queue{wake: make(chan struct{})}
		l.queues[name] = q
	}
	q.waiters++
	l.mu.Unlock()
	l.waiters.Add(1)
	l.obs.WaitersChanged(1)
}

func (l *Locks) dequeue(name string) {
	l.mu.Lock()
	if q := l.queues[name]; q != nil {
		if q.waiters--; q.waiters == 0 {
			delete(l.queues, name)
		}
	}
	l.mu.Unlock()
	l.waiters.Add(-1)
	l.obs.WaitersChanged(-1)
}

// wakeChan returns the channel closed at the next local release of name.
func (l *Locks) wakeChan(name string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.queues[name]; q != nil {
		return q.wake
	}
	return nil
}

// released tells local waiters that name was freed.
func (l *Locks) released(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.queues[name]; q != nil {
		close(q.wake)
		q.wake = make(chan struct{})
	}
}

// shuttingDown reports whether Shutdown has begun.
func (l *Locks) shuttingDown() bool {
	return l.ctx.Err() != nil
}

// callCtx bounds one store call made for a client command.
func (l *Locks) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.cfg.UpstreamTimeout)
}

// grant is a lock the store gave: its token and the end of its validity.
type grant struct {
	token string
	sent  time.Time
	until time.Time
}

// acquire asks the store for name until it is granted, wait runs out, ctx
// ends or Shutdown begins. Contention returns a zero grant and no error.
func (l *Locks) acquire(ctx context.Context, name string, ttl, wait time.Duration) (grant, error) {
	nonce := newNonce()
	deadline := time.Now().Add(wait)
	if wait > 0 {
		l.enqueue(name)
		defer l.dequeue(name)
	}
	backoff := l.cfg.Retry.Base
	for {
		if l.shuttingDown() {
			return grant{}, ErrShuttingDown
		}
		// Taken before the attempt, so a release that lands between a failed
		// attempt and the sleep still wakes us.
		wake := l.wakeChan(name)
		sent := time.Now()
		until := validity(sent, ttl)
		actx, cancel := context.WithDeadline(ctx, earliest(sent.Add(l.cfg.UpstreamTimeout), until))
		g, err := l.store.Acquire(actx, name, nonce, ttl)
		cancel()
		if err != nil {
			// The call may have taken the lock before failing: fail closed,
			// in the background so the error reply does not wait on it.
			l.releaseLater(name, ":"+nonce)
			if ctx.Err() != nil {
				return grant{}, ctx.Err()
			}
			return grant{}, fmt.Errorf("acquire %q: %w", name, err)
		}
		now := time.Now()
		if g.Acquired {
			if !now.Before(until) {
				l.releaseLater(name, g.Token)
				return grant{}, ErrTooSlow
			}
			return grant{token: g.Token, sent: sent, until: until}, nil
		}
		if wait <= 0 || !now.Before(deadline) {
			return grant{}, nil
		}
		// Never sleep past the holder's expiry: expiry publishes nothing.
		sleep := min(jitter(backoff, l.cfg.Retry.Jitter), max(g.HolderTTL, time.Millisecond), deadline.Sub(now))
		backoff = min(time.Duration(float64(backoff)*l.cfg.Retry.Multiplier), l.cfg.Retry.Max)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return grant{}, ctx.Err()
		case <-l.ctx.Done():
			t.Stop()
			return grant{}, ErrShuttingDown
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

func jitter(d time.Duration, j float64) time.Duration {
	if j == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
}

// releaseNow gives back a lock whose grant cannot be used, on a context of
// its own because the caller's may be what ended.
func (l *Locks) releaseNow(name, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.UpstreamTimeout)
	defer cancel()
	ok, err := l.store.Release(ctx, name, token)
	if err != nil {
		l.log.Warn("could not give back a lock; it will expire by its ttl", "lock", name, "err", err)
	}
	if ok {
		l.released(name)
	}
}

// releaseLater is releaseNow in the background, for callers that must not
// wait on it (renewal timers, error replies).
func (l *Locks) releaseLater(name, token string) {
	if !l.track() {
		l.releaseNow(name, token)
		return
	}
	go func() {
		defer l.work.Done()
		l.releaseNow(name, token)
	}()
}

// Shutdown stops granting, ends every blocked acquire with ErrShuttingDown,
// releases every owned lease of every session in one batch, and waits for
// background work, all within ctx. Detached leases are left to their ttl:
// they belong to no connection. It is safe to call more than once.
func (l *Locks) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	sessions := make([]*Session, 0, len(l.sessions))
	for s := range l.sessions {
		sessions = append(sessions, s)
	}
	clear(l.sessions)
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

// releaseAll releases owned leases in one store call and ends them.
func (l *Locks) releaseAll(ctx context.Context, leases []*lease) error {
	if len(leases) == 0 {
		return nil
	}
	held := make([]Held, len(leases))
	for i, ls := range leases {
		held[i] = Held{Name: ls.name, Token: ls.token}
	}
	err := l.store.ReleaseAll(ctx, held)
	if err != nil {
		l.log.Warn("could not release locks; they will expire by their ttl", "locks", len(held), "err", err)
	}
	for _, ls := range leases {
		l.leaseEnded(ls, false)
		l.released(ls.name)
	}
	return err
}

// Stats are the figures INFO shows.
type Stats struct {
	Held    int64 // leases held by all sessions
	Lost    int64 // leases lost since start
	Waiters int64 // acquires blocked now
}

// Stats returns current figures.
func (l *Locks) Stats() Stats {
	return Stats{Held: l.held.Load(), Lost: l.lost.Load(), Waiters: l.waiters.Load()}
}

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
