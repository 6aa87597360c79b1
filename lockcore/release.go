package lockcore

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Releases: a session letting go of its own lease or of a token's, the
// release call that hands the lock on, and giving back locks that nobody
// can use.
//
// A token can leave its connection (it is printed, logged, stored with a
// fenced write), and any connection may release with it. Whoever does,
// nobody is granted the name while the holder's connection may still list
// it: the holder's lease ends first, and its client is told, as at any
// loss; then the lock is released. When the holder is a client of another
// sidecar, the store revokes the lock instead (Store.Revoke): it stays held
// by no client until that sidecar has ended the lease and released it, or
// until its ttl runs out if that sidecar is gone (a lock-delay, as in Chubby
// and Consul).

// whyRevoked is the loss a holder is told of when another connection
// released its lock by its token.
const whyRevoked = "another connection released it by its token"

// Release frees name. With token "" it releases the session's own lease;
// with a token, whichever lease that token holds, the session's or any
// other. It reports false when the caller did not hold the lock. When the
// store fails, the session's own lease ends all the same and is released
// in the background.
func (s *Session) Release(ctx context.Context, name, token string) (bool, error) {
	s.mu.Lock()
	ls := s.leases[name]
	s.mu.Unlock()
	if ls != nil && (token == "" || token == ls.token) {
		return s.releaseOwn(ctx, ls)
	}
	if token == "" {
		return false, nil
	}
	return s.releaseByToken(ctx, name, token)
}

// releaseOwn releases one of the session's leases: handed over to a local
// waiter when one is first, else through the store.
func (s *Session) releaseOwn(ctx context.Context, ls *lease) (bool, error) {
	l := s.l
	if err := ls.handover.wait(ctx); err != nil {
		return false, err
	}
	s.mu.Lock()
	valid := s.leases[ls.name] == ls && l.now().Before(ls.validUntil)
	until := ls.validUntil
	s.mu.Unlock()
	if valid && ls.kind.Exclusive() {
		if q := l.queue(ls.name); q != nil && q.handOver(ls.token, until) {
			s.end(ls, false)
			// Let the new holder's reply go out before this one: on a busy
			// processor, that is what keeps the hand-off gap short.
			runtime.Gosched()
			return true, nil
		}
	}
	if ls.detached {
		l.detached.remove(ls.token)
	}
	// Before the call: from its landing until the lease is dropped below,
	// the store no longer has a lock the session still lists, which a
	// check after a failover must not take for a lost one.
	s.mu.Lock()
	ls.releasing = true
	s.mu.Unlock()
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	ok, err := l.release(cctx, ls.name, ls.token)
	if err != nil {
		if s.end(ls, false) {
			// The client let go: renewing the lock from here on would keep
			// it for a client that no longer wants it, and an acquire on
			// this connection would be handed the same token again. Try
			// once more in the background; failing that, it expires by its
			// ttl.
			l.releaseLater(ls.name, ls.token)
		}
		return false, fmt.Errorf("release %q: %w", ls.name, err)
	}
	s.mu.Lock()
	valid = s.leases[ls.name] == ls && l.now().Before(ls.validUntil)
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

// releaseByToken releases the lock token holds, which is not one of the
// session's leases: that lease ends first, here or on its own sidecar.
func (s *Session) releaseByToken(ctx context.Context, name, token string) (bool, error) {
	l := s.l
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	if h, ok := l.heldBy(name, token); ok {
		// A client of this sidecar holds it: its lease ends, and it is told,
		// before the release can hand the lock to anyone.
		if err := h.ls.handover.wait(cctx); err != nil {
			return false, fmt.Errorf("release %q: %w", name, err)
		}
		h.s.revoke(h.ls)
	} else if id, ok := TokenSidecar(token); ok && id != l.id {
		ok, err := l.store.Revoke(cctx, RevokeRequest{Name: name, Token: token, Holder: id})
		if err != nil {
			return false, fmt.Errorf("release %q: %w", name, err)
		}
		return ok, nil
	}
	// Else this sidecar's lock that no connection lists any more (a
	// detached one whose connection closed), or a token from a sidecar
	// that did not mark its tokens: nobody to tell.
	l.detached.remove(token)
	ok, err := l.release(cctx, name, token)
	if err != nil {
		// Its holder, if any here, was told it lost the lock: release it
		// once more in the background; failing that, it expires by its ttl.
		l.releaseLater(name, token)
		return false, fmt.Errorf("release %q: %w", name, err)
	}
	return ok, nil
}

// watchRevokes has the store tell this sidecar of its clients' locks that
// another sidecar's connection released (see Session.releaseByToken). It
// runs until Shutdown begins.
func (l *Locks) watchRevokes() {
	stop, err := l.store.WatchRevokes(l.ctx, l.id, func(name, token string) {
		l.work.GoOrRun(func() { l.revoked(name, token) })
	})
	if err != nil {
		if l.ctx.Err() == nil {
			l.log.Warn("could not watch for locks released through other sidecars; their holders learn of it at their next renewal", "err", err)
		}
		return
	}
	<-l.ctx.Done()
	stop()
}

// revoked ends the local lease token held, if any, telling its client,
// then releases the lock, which nobody else could take meanwhile.
func (l *Locks) revoked(name, token string) {
	switch token {
	case whoAsk:
		l.answerWho(name)
		return
	case whoAnswer:
		l.takeWho(name)
		return
	}
	if h, ok := l.heldBy(name, token); ok {
		h.s.revoke(h.ls)
	}
	l.detached.remove(token)
	l.releaseNow(l.queue(name), name, RevokedToken(token))
}

// pushWait is how long a release by token waits for the holder's lock.lost
// push to go out before it lets the lock go: long enough for a push to a
// client that reads its socket, short enough that one that does not holds
// up the release by no more than this.
const pushWait = 10 * time.Millisecond

// revoke ends ls because another connection released it by its token: an
// owned lease is lost, and its holder told before this returns, unless
// its connection takes longer than pushWait to take the push; a detached
// one just ends.
func (s *Session) revoke(ls *lease) {
	s.mu.Lock()
	detached := ls.detached
	s.mu.Unlock()
	if detached {
		s.end(ls, false)
		return
	}
	if !s.end(ls, true) {
		return
	}
	s.l.log.Warn("lock lost", "lock", ls.name, "why", whyRevoked)
	if s.onLost == nil {
		return
	}
	told := make(chan struct{})
	s.l.work.GoOrRun(func() {
		defer close(told)
		s.onLost(ls.name, ls.token)
	})
	t := time.NewTimer(pushWait)
	defer t.Stop()
	select {
	case <-told:
	case <-t.C:
	}
}

// release frees name if token holds it, handing it to the first local
// waiter in the same store call when that waiter is first in the store's
// queue.
func (l *Locks) release(ctx context.Context, name, token string) (bool, error) {
	return l.core.release(ctx, l.queue(name), name, token)
}

// release is Locks.release with name's queue, q, which may be nil.
func (c *core) release(ctx context.Context, q *queue, name, token string) (bool, error) {
	w, cand := q.candidate()
	sent := c.now()
	r, err := c.store.Release(ctx, ReleaseRequest{Name: name, Token: token, Next: cand, GrantTTL: c.cfg.WaiterTTL, Self: c.id + ":"})
	if err != nil {
		return false, err
	}
	q.handedOff(w, r, sent)
	return r.Released, nil
}

// releaseNow gives back a lock whose grant cannot be used, on a context of
// its own because the caller's may be what ended.
func (c *core) releaseNow(q *queue, name, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.UpstreamTimeout)
	defer cancel()
	if _, err := c.release(ctx, q, name, token); err != nil {
		c.log.Warn("could not give back a lock; it will expire by its ttl", "lock", name, "err", err)
	}
}

// releaseLater is releaseNow in the background, for callers that must not
// wait on it (renewal timers, error replies).
func (c *core) releaseLater(q *queue, name, token string) {
	c.work.GoOrRun(func() { c.releaseNow(q, name, token) })
}

func (l *Locks) releaseLater(name, token string) { l.core.releaseLater(l.queue(name), name, token) }

func (q *queue) releaseLater(token string) { q.c.releaseLater(q, q.name, token) }

// giveBack releases, in the background, a grant whose client is gone. A
// handed-over grant's token is in the store only once its transfer lands,
// so that is waited for first.
func (c *core) giveBack(q *queue, name string, g grant) {
	c.work.GoOrRun(func() {
		if h := g.handover; h != nil {
			<-h.done // bounded: the transfer's deadline is the old token's validity
			if !h.ok {
				return // the transfer gave back the old token itself
			}
		}
		c.releaseNow(q, name, g.token)
	})
}

func (l *Locks) giveBack(name string, g grant) { l.core.giveBack(l.queue(name), name, g) }

func (q *queue) giveBack(g grant) { q.c.giveBack(q, q.name, g) }

// leaveLater takes a waiter that is gone out of the store's queue, in the
// background, then gives back any lock a release on another sidecar may
// have granted it just before (by its nonce, which nobody else holds). If
// leaving fails, the entry lapses after WaiterTTL.
func (q *queue) leaveLater(w *waiter) {
	c := q.c
	c.work.Go(func() { // shutting down: the entry lapses on its own
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.UpstreamTimeout)
		defer cancel()
		if err := c.store.Leave(ctx, q.name, w.id); err != nil {
			c.log.Warn("could not leave a lock's queue; the entry lapses by itself", "lock", q.name, "err", err)
			return
		}
		if _, err := c.release(ctx, q, q.name, ":"+w.nonce); err != nil {
			c.log.Warn("could not give back a lock granted to a waiter that left; it expires by itself", "lock", q.name, "err", err)
		}
	})
}

// releaseAll releases owned leases in one store call, handing each lock to
// its first local waiter where it can, and ends the leases.
func (l *Locks) releaseAll(ctx context.Context, leases []*lease) error {
	if len(leases) == 0 {
		return nil
	}
	for _, ls := range leases {
		// A handed-over lease's token is in the store only once the
		// transfer lands; releasing it before would leave the lock stuck.
		_ = ls.handover.wait(ctx)
	}
	reqs := make([]ReleaseRequest, len(leases))
	qs := make([]*queue, len(leases))
	cands := make([]*waiter, len(leases))
	for i, ls := range leases {
		var cand *Candidate
		qs[i] = l.queue(ls.name)
		cands[i], cand = qs[i].candidate()
		reqs[i] = ReleaseRequest{Name: ls.name, Token: ls.token, Next: cand, GrantTTL: l.cfg.WaiterTTL, Self: l.id + ":"}
	}
	sent := l.now()
	res, err := l.store.ReleaseAll(ctx, reqs)
	if err != nil {
		l.log.Warn("could not release locks; they will expire by their ttl", "locks", len(reqs), "err", err)
	}
	for i, ls := range leases {
		l.leaseEnded(ls, false)
		if i < len(res) {
			qs[i].handedOff(cands[i], res[i], sent)
		}
	}
	return err
}

// ForceRelease revokes every holder of name, whoever and wherever they
// are, as a release by each one's token from this session would: each
// holder is told before anyone else can have the name, and one whose
// sidecar cannot be told keeps it from others until its lease would have
// run out (see Release). A holder already revoked is left to its sidecar.
// It returns how many holders it released.
func (s *Session) ForceRelease(ctx context.Context, name string) (int, error) {
	cctx, cancel := s.l.callCtx(ctx)
	st, err := s.l.store.Inspect(cctx, name)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("force release %q: %w", name, err)
	}
	var tokens []string
	for _, h := range st.Holders {
		if !h.Revoked {
			tokens = append(tokens, h.Token)
		}
	}
	if len(st.Holders) == 0 && st.Held && !st.Revoked {
		tokens = append(tokens, st.Token)
	}
	released := 0
	for _, token := range tokens {
		ok, err := s.Release(ctx, name, token)
		if err != nil {
			return released, err
		}
		if ok {
			released++
		}
	}
	return released, nil
}
