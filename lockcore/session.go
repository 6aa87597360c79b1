package lockcore

import (
	"context"
	"fmt"
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
	client Client            // guarded by mu; who the session serves, for admins' listings
}

// Client is what an admin's listing says of a session's connection.
type Client struct{ Name, Addr string }

// SetClient records who the session serves: its connection's name and
// address, as LOCK.LIST shows them.
func (s *Session) SetClient(c Client) {
	s.mu.Lock()
	s.client = c
	s.mu.Unlock()
}

func (s *Session) clientInfo() Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// AcquireOptions are the options of one acquire.
type AcquireOptions struct {
	TTL      time.Duration // 0: Config.DefaultTTL
	Wait     time.Duration // how long to block while someone else holds it
	Detached bool          // not tied to the session: no renewal, no release on close
	MaxHold  time.Duration // caps how long the lease may be kept (see Config.MaxHold); 0: Config's
	Kind     Kind          // what to hold it as: one holder (zero), a reader, or a semaphore's permit
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
	// Kind is how it is held, and Holders by how many. Held by many, Fence
	// and TTL are this session's own when Owner is OwnerSelf, else the
	// largest fence and the longest time left.
	Kind    Kind
	Holders int
}

// Acquire takes name, blocking up to o.Wait while someone else holds it. It
// returns the token, or "" when the lock stayed held by someone else. When
// the session already holds name as an owned lease and o asks for an owned
// one, it keeps the same token and resets the ttl. Any other acquire
// contends like another client's: a detached lock belongs to whoever has
// its token, not to the connection, and two callers that share a pooled
// connection must not both be told they hold it.
//
// Errors: ErrTooManyLocks, ErrTooManyWaiters, ErrTooManyDetached,
// ErrShuttingDown, ErrClosed, ErrTooSlow, ErrStoreReset, ErrNotChecked
// (wrapped), a *QuietError (ErrQuietPeriod), ctx's error when the
// connection went away while waiting, or a store error.
func (s *Session) Acquire(ctx context.Context, name string, o AcquireOptions) (string, error) {
	l := s.l
	if o.TTL <= 0 {
		o.TTL = l.cfg.DefaultTTL
	}
	if l.shuttingDown() {
		return "", ErrShuttingDown
	}
	// Before the quiet check: keeping a lock the store still holds is a
	// renewal, which the quiet period does not stop (LOCK.RENEW is not
	// refused either).
	if ls := s.current(name); ls != nil && !ls.detached && !o.Detached {
		if ls.kind != o.Kind {
			return "", &KindError{Name: name, Held: ls.kind, Asked: o.Kind, Self: true}
		}
		ok, err := s.renewLease(ctx, ls, o.TTL)
		if err != nil {
			return "", err
		}
		if ok {
			return ls.token, nil
		}
		// The lease was lost (and dropped); take the lock afresh.
	}
	if err := l.quiet(name); err != nil {
		return "", err
	}
	if err := s.roomFor(name); err != nil {
		return "", err
	}
	if o.Detached {
		if err := l.detached.reserve(); err != nil {
			return "", err
		}
	}
	ls, err := s.take(ctx, name, o)
	if o.Detached && ls == nil {
		l.detached.unreserve()
	}
	if ls == nil {
		return "", err
	}
	l.leaseStarted(o.Kind)
	if ls.handover != nil {
		ls.handover.whenLanded(func() { s.settle(ls) })
	}
	return ls.token, nil
}

// take acquires name from the store and makes it the session's lease; nil
// when the store did not grant it, or the grant could not be kept.
func (s *Session) take(ctx context.Context, name string, o AcquireOptions) (*lease, error) {
	l := s.l
	maxHold := l.maxHold(o)
	// The store's ttl never outlasts the cap, so the cap holds even if this
	// sidecar dies before it can release at the cap.
	storeTTL := o.TTL
	if maxHold > 0 {
		storeTTL = min(storeTTL, maxHold)
	}
	g, err := l.acquire(ctx, name, storeTTL, o.Wait, o.Kind)
	if err != nil || g.token == "" {
		return nil, err
	}
	ls := &lease{name: name, token: g.token, start: g.sent, detached: o.Detached, ttl: o.TTL, validUntil: g.until,
		handover: g.handover, renewing: make(chan struct{}, 1), kind: o.Kind}
	if maxHold > 0 {
		ls.capAt = g.sent.Add(maxHold)
	}
	l.extendHorizon(g.sent.Add(storeTTL))
	old, err := s.adopt(ctx, ls, g)
	if err != nil {
		l.giveBack(name, g)
		return nil, err
	}
	if o.Detached {
		// Counted from here until its ttl runs out or it is released
		// through this sidecar, whatever becomes of this connection.
		l.detached.add(name, g.token, g.sent.Add(storeTTL))
	}
	if old != nil {
		// An owned lease still listed here was lost without this session
		// noticing yet (released by its token elsewhere, or gone from the
		// store): its holder is told, as at any loss.
		lost := !old.detached
		l.leaseEnded(old, lost)
		if lost {
			l.log.Warn("lock lost", "lock", old.name, "why", "the upstream granted it anew")
			s.tell(old)
		}
	}
	return ls, nil
}

// adopt makes ls, just granted as g, the session's lease on its name, and
// returns the lease it replaces, if any. It refuses, for the grant to be
// given back, when the client went away or the upstream was reset while
// the call was in flight.
func (s *Session) adopt(ctx context.Context, ls *lease, g grant) (old *lease, err error) {
	l := s.l
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under s.mu, which UpstreamReset takes after starting the quiet
	// period: either it sees this lease and drops it, or this sees the
	// quiet, and the grant, which may come from the old upstream whose
	// holders are not all gone yet, is given back.
	if err := l.quiet(ls.name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the client went away: it must never hold the lock
	}
	if s.closed {
		return nil, ErrClosed
	}
	// The store granted the name, so a lease this session still lists for
	// it is over: a detached one released by token elsewhere, or expired.
	old = s.leases[ls.name]
	if old != nil {
		delete(s.leases, ls.name)
		old.stopTimer()
		l.clearHolder(old)
	}
	s.leases[ls.name] = ls
	l.setHolder(s, ls)
	if g.handover == nil && !ls.detached {
		s.scheduleLocked(ls, s.renewDelay(ls, g.sent, g.until))
	}
	return old, nil
}

// settle runs when the store call behind a handed-over lease has landed:
// once the store holds the new token, the lease's validity runs from that
// call and its renewals begin; if the store refused, the lease is lost.
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
		s.scheduleLocked(ls, s.renewDelay(ls, ho.sent, ls.validUntil))
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
// holds, the session's or any other. Another's lease it may lengthen, never
// shorten: its holder vouches for it until a validity computed from the ttl
// it set itself. It reports false when the caller does not hold the lock.
func (s *Session) Renew(ctx context.Context, name string, ttl time.Duration, token string) (bool, error) {
	l := s.l
	ls := s.current(name)
	if ls != nil && (token == "" || token == ls.token) {
		return s.renewLease(ctx, ls, ttl)
	}
	if token == "" {
		return false, nil
	}
	ctx, cancel := l.callCtx(ctx)
	defer cancel()
	sent := l.now()
	r, err := l.store.Renew(ctx, RenewRequest{Name: name, Token: token, TTL: ttl, Foreign: true})
	if err != nil {
		return false, fmt.Errorf("renew %q: %w", name, err)
	}
	if r.OK {
		l.detached.extend(token, sent.Add(ttl))
	}
	return r.OK, nil
}

// Info describes name as seen from this session. Seeing the store no
// longer hold one of the session's leases declares that lease lost.
func (s *Session) Info(ctx context.Context, name string) (Info, error) {
	l := s.l
	s.mu.Lock()
	pending := s.leases[name]
	s.mu.Unlock()
	if pending != nil {
		// A handed-over lease is in the store only once its transfer lands.
		if err := pending.handover.wait(ctx); err != nil {
			return Info{}, err
		}
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	st, err := l.store.Inspect(cctx, name)
	if err != nil {
		return Info{}, fmt.Errorf("info %q: %w", name, err)
	}
	info := Info{Held: st.Held, Fence: st.Fence, TTL: st.TTL, Owner: OwnerNone, Waiters: l.Waiters(name), Kind: st.Kind,
		Holders: len(st.Holders)}
	if st.Held {
		info.Owner = OwnerOther
		info.Holders = max(info.Holders, 1)
	}
	s.mu.Lock()
	ls := s.leases[name]
	var entry Holder
	var held bool
	if ls != nil {
		entry, held = st.holder(ls.token)
	}
	mine := held && !entry.Revoked && l.now().Before(ls.validUntil)
	if mine {
		info.Owner, info.Detached = OwnerSelf, ls.detached
		info.Fence, info.TTL = entry.Fence, entry.TTL
	}
	s.mu.Unlock()
	if ls != nil && !mine {
		switch {
		case held && entry.Revoked:
			s.gone(ls, true)
		case held:
			s.lapse(ls, "its validity ran out", true)
		default:
			s.lapse(ls, "the upstream no longer has it", false)
		}
	}
	return info, nil
}

// Held lists the names the session holds, sorted. Leases whose validity ran
// out are dropped first.
func (s *Session) Held() []string {
	now := s.l.now()
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

// Holds reports whether the session still holds name under token and can
// vouch for it. It is the last check before a granted token goes out: a
// process paused between the grant and its reply (a stopped or starved
// sidecar) must not hand out a token whose validity ran out meanwhile. A
// lapsed lease is dropped, and its holder told, as Held does.
func (s *Session) Holds(name, token string) bool {
	ls := s.current(name)
	return ls != nil && ls.token == token
}

// current returns the session's lease on name if it is still valid,
// dropping it if it is not.
func (s *Session) current(name string) *lease {
	now := s.l.now()
	s.mu.Lock()
	ls := s.leases[name]
	valid := ls != nil && now.Before(ls.validUntil)
	s.mu.Unlock()
	if ls != nil && !valid {
		if ls.capReached(now) {
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
// giveBack says the store may still hold it under our token. It reports
// whether it declared an owned lease lost.
func (s *Session) lapse(ls *lease, why string, giveBack bool) bool {
	s.mu.Lock()
	detached := ls.detached
	s.mu.Unlock()
	if detached {
		s.end(ls, false)
		return false
	}
	return s.lose(ls, why, giveBack)
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
	ls.stopTimer()
	s.l.clearHolder(ls)
	s.mu.Unlock()
	s.l.leaseEnded(ls, lost)
	return true
}

// lose declares ls lost: dropped, counted, logged and pushed to the holder.
// giveBack says the lock may still sit in the store under our token (a
// renewal too slow rather than refused): it is then released, to free it
// for others. It reports whether ls was still the session's to lose.
func (s *Session) lose(ls *lease, why string, giveBack bool) bool {
	if !s.end(ls, true) {
		return false
	}
	s.l.log.Warn("lock lost", "lock", ls.name, "why", why)
	if giveBack {
		s.l.releaseLater(ls.name, ls.token)
	}
	s.tell(ls)
	return true
}

// tell pushes the loss of ls to its holder, from a goroutine of its own: a
// client that does not read its socket must hold up neither the caller
// (another connection's release, a renewal timer) nor anyone else. The
// lease has ended before, so the holder no longer lists it by the time the
// push goes out.
func (s *Session) tell(ls *lease) {
	if s.onLost != nil {
		s.l.work.GoOrRun(func() { s.onLost(ls.name, ls.token) })
	}
}

// takeOwned empties the session, closing it if close is set, and hands
// over its owned leases for one batch release; detached ones are forgotten.
func (s *Session) takeOwned(close bool) []*lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = s.closed || close
	var owned []*lease
	for _, ls := range s.leases {
		ls.stopTimer()
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
