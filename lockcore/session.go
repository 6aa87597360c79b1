package lockcore

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Session is the set of leases held by one client connection. An owned
// lease is renewed in the background while the session lives and released
// when it closes; a detached lease is only remembered, so that its holder
// can use it without the token and see it in Held and Info.
//
// A session's methods are called by one connection at a time; renewals run
// concurrently with them.
type Session struct {
	l      *Locks
	onLost func(name, token string)

	mu     sync.Mutex
	leases map[string]*lease // guarded by mu
	closed bool              // guarded by mu
}

// lease is one lock a session holds.
type lease struct {
	name  string
	token string
	start time.Time

	// renewMu orders this lease's renewals, so the one applied last in the
	// store is also the one whose ttl and send time set validUntil.
	renewMu sync.Mutex

	detached   bool          // guarded by Session.mu
	ttl        time.Duration // guarded by Session.mu
	capAt      time.Time     // when MAXHOLD ends the lease; zero: never
	validUntil time.Time     // guarded by Session.mu
	timer      *time.Timer   // guarded by Session.mu; the next renewal, owned leases only
	failures   int           // guarded by renewMu; renewals failed in a row

	// handover, when set, is the local hand-over that gave the lease; the
	// store knows its token only once it has landed.
	handover *handover
}

// AcquireOptions are the options of one acquire.
type AcquireOptions struct {
	TTL      time.Duration // 0: Config.DefaultTTL
	Wait     time.Duration // how long to block while someone else holds it
	Detached bool          // not tied to the session: no renewal, no release on close
	MaxHold  time.Duration // caps how long the lease may be kept (see Config.MaxHold); 0: Config's
}

// Owner says who holds a lock, as seen from one session.
type Owner string

// Owners, as LOCK.INFO reports them.
const (
	OwnerNone  Owner = "none"
	OwnerSelf  Owner = "self"
	OwnerOther Owner = "other"
)

// Info describes one lock name.
type Info struct {
	Held     bool
	Fence    int64         // the holder's fence, or the last one issued (0: none remembered)
	TTL      time.Duration // time left when Held
	Owner    Owner
	Detached bool // when Owner is OwnerSelf: the lease is detached
	Waiters  int  // acquires blocked on the name on this sidecar
}

// Acquire takes name, blocking up to o.Wait while someone else holds it. It
// returns the token, or "" when the lock stayed held by someone else. When
// the session already holds name as an owned lease and o asks for an owned
// one, it keeps the same token and resets the ttl. Any other acquire
// contends like another client's: a detached lock belongs to whoever has
// its token, not to the connection, and two callers that share a pooled
// connection must not both be told they hold it.
//
// Errors: ErrTooManyLocks, ErrShuttingDown, ErrClosed, ErrTooSlow, ctx's
// error when the connection went away while waiting, or a store error.
func (s *Session) Acquire(ctx context.Context, name string, o AcquireOptions) (string, error) {
	if o.TTL <= 0 {
		o.TTL = s.l.cfg.DefaultTTL
	}
	if s.l.shuttingDown() {
		return "", ErrShuttingDown
	}
	maxHold := s.l.maxHold(o)
	// Before the quiet check: keeping a lock the store still holds is a
	// renewal, which the quiet period does not stop (LOCK.RENEW is not
	// refused either).
	if ls := s.current(name); ls != nil && !ls.detached && !o.Detached {
		ok, err := s.renewLease(ctx, ls, o.TTL)
		if err != nil {
			return "", err
		}
		if ok {
			return ls.token, nil
		}
		// The lease was lost (and dropped); take the lock afresh.
	}
	if err := s.l.quiet(); err != nil {
		return "", err
	}
	if err := s.roomFor(name); err != nil {
		return "", err
	}
	// The store's ttl never outlasts the cap, so the cap holds even if this
	// sidecar dies before it can release at the cap.
	storeTTL := o.TTL
	if maxHold > 0 {
		storeTTL = min(storeTTL, maxHold)
	}
	g, err := s.l.acquire(ctx, name, storeTTL, o.Wait)
	if err != nil || g.token == "" {
		return "", err
	}

	s.mu.Lock()
	// Checked under s.mu, which UpstreamReset takes after starting the quiet
	// period: either it sees this lease and drops it, or this sees the quiet.
	if err := s.l.quiet(); err != nil {
		// The upstream was reset while the call was in flight: the grant may
		// come from the old upstream, whose holders are not yet all gone.
		s.mu.Unlock()
		s.l.giveBack(name, g)
		return "", err
	}
	if s.closed || ctx.Err() != nil {
		// The client went away while the call was in flight: it must never
		// hold the lock.
		s.mu.Unlock()
		s.l.giveBack(name, g)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", ErrClosed
	}
	// The store granted name, so a lease this session still lists for it
	// is over: a detached one released by token elsewhere, or expired.
	old := s.leases[name]
	if old != nil {
		delete(s.leases, name)
		s.stopTimerLocked(old)
		s.l.clearHolder(old)
	}
	ls := &lease{name: name, token: g.token, start: g.sent, detached: o.Detached, ttl: o.TTL, validUntil: g.until,
		handover: g.handover}
	if maxHold > 0 {
		ls.capAt = g.sent.Add(maxHold)
	}
	s.leases[name] = ls
	s.l.setHolder(s, ls)
	if g.handover == nil && !o.Detached {
		s.scheduleLocked(ls, s.renewDelay(ls, g.sent, o.TTL))
	}
	s.mu.Unlock()
	if old != nil {
		// An owned lease still listed here was lost without this session
		// noticing yet (released by its token elsewhere, or gone from the
		// store): its holder is told, as at any loss.
		lost := !old.detached
		s.l.leaseEnded(old, lost)
		if lost {
			s.l.log.Warn("lock lost", "lock", old.name, "why", "the upstream granted it anew")
			if s.onLost != nil {
				s.onLost(old.name, old.token)
			}
		}
	}
	s.l.leaseStarted()
	if g.handover != nil {
		g.handover.whenLanded(func() { s.settle(ls) })
	}
	return g.token, nil
}

// settle runs when the transfer behind a handed-over lease has landed: once
// the store holds the new token, the lease's validity runs from the
// transfer and its renewals begin; if the store refused, the lease is lost.
func (s *Session) settle(ls *lease) {
	ho := ls.handover
	if !ho.ok {
		s.lapse(ls, "the upstream did not take its hand-over", true)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[ls.name] != ls {
		return
	}
	// The store's ttl was capped by MAXHOLD, if any: so is the validity.
	storeTTL, _ := ls.capped(ho.sent, ls.ttl)
	ls.validUntil = validity(ho.sent, storeTTL)
	if !ls.detached && ls.timer == nil {
		s.scheduleLocked(ls, s.renewDelay(ls, ho.sent, ls.ttl))
	}
}

// roomFor checks MaxLocksPerSession before a new lease on name.
func (s *Session) roomFor(name string) error {
	limit := s.l.cfg.MaxLocksPerSession
	if limit <= 0 {
		return nil
	}
	s.mu.Lock()
	n := len(s.leases)
	_, has := s.leases[name]
	s.mu.Unlock()
	if n < limit || has {
		return nil
	}
	s.Held() // drops lapsed leases, which may make room
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.leases) >= limit {
		return ErrTooManyLocks
	}
	return nil
}

// Renew sets the ttl of name to ttl from now. With token "" it renews the
// session's own lease; with a token it renews whichever lease that token
// holds, the session's or any other. It reports false when the caller does
// not hold the lock.
func (s *Session) Renew(ctx context.Context, name string, ttl time.Duration, token string) (bool, error) {
	ls := s.current(name)
	if ls != nil && (token == "" || token == ls.token) {
		return s.renewLease(ctx, ls, ttl)
	}
	if token == "" {
		return false, nil
	}
	ctx, cancel := s.l.callCtx(ctx)
	defer cancel()
	ok, err := s.l.store.Renew(ctx, name, token, ttl)
	if err != nil {
		return false, fmt.Errorf("renew %q: %w", name, err)
	}
	return ok, nil
}

// renewLease renews one of the session's leases with ttl, which becomes its
// ttl from then on. A false result means the lease was lost; it is dropped.
func (s *Session) renewLease(ctx context.Context, ls *lease, ttl time.Duration) (bool, error) {
	if err := ls.handover.wait(ctx); err != nil {
		return false, err
	}
	ls.renewMu.Lock()
	defer ls.renewMu.Unlock()
	s.mu.Lock()
	until := ls.validUntil
	ok := s.leases[ls.name] == ls
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	sent := time.Now()
	if ls.capReached(sent) {
		s.capOut(ls)
		return false, nil
	}
	if !sent.Before(until) {
		s.lapse(ls, "its validity ran out before it could be renewed", true)
		return false, nil
	}
	storeTTL, _ := ls.capped(sent, ttl)
	ctx, cancel := context.WithDeadline(ctx, earliest(sent.Add(s.l.cfg.UpstreamTimeout), until))
	defer cancel()
	renewed, err := s.l.store.Renew(ctx, ls.name, ls.token, storeTTL)
	if err != nil {
		// The renewal may have been applied: with a shorter ttl, the store
		// could now expire the lock sooner than we assumed.
		s.mu.Lock()
		ls.validUntil = earliest(ls.validUntil, validity(sent, storeTTL))
		s.mu.Unlock()
		return false, fmt.Errorf("renew %q: %w", ls.name, err)
	}
	if !renewed {
		s.lapse(ls, "the upstream no longer has it", false)
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[ls.name] != ls {
		return false, nil // released or lost while the call was in flight
	}
	ls.ttl = ttl
	ls.validUntil = validity(sent, storeTTL)
	if !ls.detached {
		s.stopTimerLocked(ls)
		s.scheduleLocked(ls, s.renewDelay(ls, sent, ttl))
	}
	return true, nil
}

// Release frees name. With token "" it releases the session's own lease;
// with a token, whichever lease that token holds. It reports false when the
// caller did not hold the lock. When the store fails, the session's own
// lease ends all the same and is released in the background.
func (s *Session) Release(ctx context.Context, name, token string) (bool, error) {
	s.mu.Lock()
	ls := s.leases[name]
	s.mu.Unlock()
	if ls != nil && token != "" && token != ls.token {
		ls = nil
	}
	if ls == nil && token == "" {
		return false, nil
	}
	if ls != nil {
		token = ls.token
		if err := ls.handover.wait(ctx); err != nil {
			return false, err
		}
		s.mu.Lock()
		valid := s.leases[name] == ls && time.Now().Before(ls.validUntil)
		until := ls.validUntil
		s.mu.Unlock()
		if valid && s.l.handOver(name, token, until) {
			s.end(ls, false)
			// Let the new holder's reply go out before this one: on a busy
			// processor, that is what keeps the hand-off gap short.
			runtime.Gosched()
			return true, nil
		}
	}
	cctx, cancel := s.l.callCtx(ctx)
	defer cancel()
	ok, err := s.l.release(cctx, name, token)
	if err != nil {
		if ls != nil && s.end(ls, false) {
			// The client let go: renewing the lock from here on would keep
			// it for a client that no longer wants it, and an acquire on
			// this connection would be handed the same token again. Try
			// once more in the background; failing that, it expires by its
			// ttl.
			s.l.releaseLater(name, token)
		}
		return false, fmt.Errorf("release %q: %w", name, err)
	}
	if ls == nil {
		if ok {
			s.l.releasedByToken(name, token)
		}
		return ok, nil
	}
	s.mu.Lock()
	valid := s.leases[name] == ls && time.Now().Before(ls.validUntil)
	s.mu.Unlock()
	if !ok || !valid {
		// Gone from the store, or past the validity we could vouch for: the
		// caller did not hold it up to now.
		s.lapse(ls, "it was no longer held when released", false)
		return false, nil
	}
	s.end(ls, false)
	return true, nil
}

// Info describes name as seen from this session. Seeing the store no
// longer hold one of the session's leases declares that lease lost.
func (s *Session) Info(ctx context.Context, name string) (Info, error) {
	s.mu.Lock()
	pending := s.leases[name]
	s.mu.Unlock()
	if pending != nil {
		// A handed-over lease is in the store only once its transfer lands.
		if err := pending.handover.wait(ctx); err != nil {
			return Info{}, err
		}
	}
	cctx, cancel := s.l.callCtx(ctx)
	defer cancel()
	st, err := s.l.store.Inspect(cctx, name)
	if err != nil {
		return Info{}, fmt.Errorf("info %q: %w", name, err)
	}
	info := Info{Held: st.Held, Fence: st.Fence, TTL: st.TTL, Owner: OwnerNone, Waiters: s.l.Waiters(name)}
	if st.Held {
		info.Owner = OwnerOther
	}
	s.mu.Lock()
	ls := s.leases[name]
	mine := ls != nil && st.Held && st.Token == ls.token && time.Now().Before(ls.validUntil)
	if mine {
		info.Owner, info.Detached = OwnerSelf, ls.detached
	}
	s.mu.Unlock()
	if ls != nil && !mine {
		if st.Held && st.Token == ls.token {
			s.lapse(ls, "its validity ran out", true)
		} else {
			s.lapse(ls, "the upstream no longer has it", false)
		}
	}
	return info, nil
}

// Held lists the names the session holds, sorted. Leases whose validity ran
// out are dropped first.
func (s *Session) Held() []string {
	now := time.Now()
	var names []string
	var lapsed []*lease
	s.mu.Lock()
	for name, ls := range s.leases {
		if now.Before(ls.validUntil) {
			names = append(names, name)
		} else {
			lapsed = append(lapsed, ls)
		}
	}
	s.mu.Unlock()
	for _, ls := range lapsed {
		s.lapse(ls, "its validity ran out", true)
	}
	slices.Sort(names)
	return names
}

// current returns the session's lease on name if it is still valid,
// dropping it if it is not.
func (s *Session) current(name string) *lease {
	s.mu.Lock()
	ls := s.leases[name]
	valid := ls != nil && time.Now().Before(ls.validUntil)
	s.mu.Unlock()
	if ls != nil && !valid {
		if ls.capReached(time.Now()) {
			s.capOut(ls)
		} else {
			s.lapse(ls, "its validity ran out", true)
		}
		return nil
	}
	return ls
}

// lapse drops a lease that can no longer be vouched for: an owned one is
// lost; a detached one simply ended, as leases without renewal do.
// giveBack says the store may still hold it under our token.
func (s *Session) lapse(ls *lease, why string, giveBack bool) {
	s.mu.Lock()
	detached := ls.detached
	s.mu.Unlock()
	if detached {
		s.end(ls, false)
		return
	}
	s.lose(ls, why, giveBack)
}

// end drops ls from the session if it is still there, and reports whether
// it was.
func (s *Session) end(ls *lease, lost bool) bool {
	s.mu.Lock()
	if s.leases[ls.name] != ls {
		s.mu.Unlock()
		return false
	}
	delete(s.leases, ls.name)
	s.stopTimerLocked(ls)
	s.l.clearHolder(ls)
	s.mu.Unlock()
	s.l.leaseEnded(ls, lost)
	return true
}

// lose declares ls lost: dropped, counted, logged and pushed to the holder.
// giveBack says the lock may still sit in the store under our token (a
// renewal too slow rather than refused): it is then released, to free it
// for others.
func (s *Session) lose(ls *lease, why string, giveBack bool) {
	if !s.end(ls, true) {
		return
	}
	s.l.log.Warn("lock lost", "lock", ls.name, "why", why)
	if giveBack {
		s.l.releaseLater(ls.name, ls.token)
	}
	if s.onLost != nil {
		s.onLost(ls.name, ls.token)
	}
}

// renewDelay is when to renew a lease last acquired or renewed at sent:
// a fraction of its ttl later, or at its MAXHOLD cap, whichever is first.
func (s *Session) renewDelay(ls *lease, sent time.Time, ttl time.Duration) time.Duration {
	at := sent.Add(time.Duration(float64(ttl) * s.l.cfg.RenewFraction))
	if !ls.capAt.IsZero() {
		at = earliest(at, ls.capDeadline())
	}
	return time.Until(at)
}

// capDeadline is when a lease with a MAXHOLD ends: the cap, less the drift
// margin its validity keeps, since the store's ttl never runs past the cap.
func (ls *lease) capDeadline() time.Time {
	return ls.capAt.Add(-Drift(ls.capAt.Sub(ls.start)))
}

// capReached reports whether ls has a MAXHOLD and has come to its end.
func (ls *lease) capReached(now time.Time) bool {
	return !ls.capAt.IsZero() && !now.Before(ls.capDeadline())
}

// capOut ends a lease at its MAXHOLD: released, and its holder told as for
// a lost lock (the lock.lost push). It is not counted as lost: nothing
// failed, the cap did its job.
func (s *Session) capOut(ls *lease) {
	if !s.end(ls, false) {
		return
	}
	s.l.log.Info("lock released at its MAXHOLD", "lock", ls.name)
	s.l.releaseLater(ls.name, ls.token)
	if s.onLost != nil {
		s.onLost(ls.name, ls.token)
	}
}

// capped clamps a renewal's ttl to what the lease's MAXHOLD leaves; it
// reports false when the cap has been reached.
func (ls *lease) capped(now time.Time, ttl time.Duration) (time.Duration, bool) {
	if ls.capAt.IsZero() {
		return ttl, true
	}
	left := ls.capAt.Sub(now)
	if left <= 0 {
		return 0, false
	}
	return min(ttl, left), true
}

// scheduleLocked arms ls's renewal timer. s.mu must be held.
func (s *Session) scheduleLocked(ls *lease, after time.Duration) {
	if !s.l.track() {
		return // shutting down: the lease is about to be released
	}
	ls.timer = time.AfterFunc(after, func() {
		defer s.l.work.Done()
		s.autoRenew(ls)
	})
}

// stopTimerLocked disarms ls's renewal timer. s.mu must be held.
func (s *Session) stopTimerLocked(ls *lease) {
	if ls.timer != nil && ls.timer.Stop() {
		s.l.work.Done() // the timer's func will never run to do it
	}
	ls.timer = nil
}

// autoRenew is one background renewal of an owned lease. A failure is
// retried soon, but only while the lease is still valid; past that the
// lease is lost.
func (s *Session) autoRenew(ls *lease) {
	_ = ls.handover.wait(s.l.ctx)
	ls.renewMu.Lock()
	defer ls.renewMu.Unlock()
	s.mu.Lock()
	if s.leases[ls.name] != ls || ls.detached {
		s.mu.Unlock()
		return
	}
	ttl, until := ls.ttl, ls.validUntil
	s.mu.Unlock()

	sent := time.Now()
	if ls.capReached(sent) {
		s.capOut(ls) // not a renewal that failed: nothing is counted as lost
		return
	}
	if !sent.Before(until) {
		s.l.obs.AutoRenewed("lost")
		s.lose(ls, "renewal did not succeed before its validity ran out", true)
		return
	}
	storeTTL, _ := ls.capped(sent, ttl)
	ctx, cancel := context.WithDeadline(s.l.ctx, until)
	ok, err := s.l.store.Renew(ctx, ls.name, ls.token, storeTTL)
	cancel()
	switch {
	case err == nil && ok:
		s.l.obs.AutoRenewed("ok")
		ls.failures = 0
		s.mu.Lock()
		if s.leases[ls.name] == ls && !ls.detached {
			ls.validUntil = validity(sent, storeTTL)
			s.scheduleLocked(ls, s.renewDelay(ls, sent, ttl))
		}
		s.mu.Unlock()
	case err == nil:
		s.l.obs.AutoRenewed("lost")
		s.lose(ls, "the upstream no longer has it", false)
	default:
		s.l.obs.AutoRenewed("error")
		ls.failures++
		if ls.failures == 1 {
			s.l.log.Warn("renewal failed; retrying until the lock's validity runs out", "lock", ls.name, "err", err)
		}
		s.mu.Lock()
		if s.leases[ls.name] == ls && !ls.detached {
			s.scheduleLocked(ls, retryDelay(ls.failures, time.Until(until)))
		}
		s.mu.Unlock()
	}
}

// retryDelay spaces failed renewals: quick at first, never more than a
// quarter of the validity left, so several tries fit before it runs out.
// With no time left it is 0, and the next try declares the lease lost.
func retryDelay(failures int, left time.Duration) time.Duration {
	d := 10 * time.Millisecond << min(failures-1, 6)
	return max(min(d, left/4), 0)
}

// takeOwned empties the session, closing it if close is set, and hands
// over its owned leases for one batch release; detached ones are forgotten.
func (s *Session) takeOwned(close bool) []*lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = s.closed || close
	var owned []*lease
	for _, ls := range s.leases {
		s.stopTimerLocked(ls)
		s.l.clearHolder(ls)
		if ls.detached {
			s.l.leaseEnded(ls, false)
		} else {
			owned = append(owned, ls)
		}
	}
	clear(s.leases)
	return owned
}

// Reset releases the session's owned leases and forgets its detached ones,
// as when its connection closes, but the session stays usable (RESET).
func (s *Session) Reset(ctx context.Context) error {
	cctx, cancel := s.l.callCtx(ctx)
	defer cancel()
	return s.l.releaseAll(cctx, s.takeOwned(false))
}

// Close releases the session's owned leases, in one round trip, and ends
// the session. It is safe to call more than once.
func (s *Session) Close() error {
	owned := s.takeOwned(true)
	s.l.forget(s)
	ctx, cancel := s.l.callCtx(context.Background())
	defer cancel()
	return s.l.releaseAll(ctx, owned)
}
