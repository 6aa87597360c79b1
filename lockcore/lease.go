package lockcore

import (
	"context"
	"fmt"
	"time"
)

// lease is one lock a session holds, and its renewal.
type lease struct {
	name  string
	token string
	start time.Time

	// renewing orders this lease's renewals, so the one applied last in the
	// store is also the one whose ttl and send time set validUntil. It is
	// a lock a client's RENEW waits on with a deadline: a background
	// renewal stuck on a frozen upstream must not hold its reply past the
	// upstream timeout.
	renewing chan struct{} // buffered 1: holding it is a value in it

	kind       Kind          // what it holds the name as
	detached   bool          // guarded by Session.mu
	releasing  bool          // guarded by Session.mu; its release is on its way to the store
	ttl        time.Duration // guarded by Session.mu
	capAt      time.Time     // when MAXHOLD ends the lease; zero: never
	validUntil time.Time     // guarded by Session.mu
	timer      *task         // guarded by Session.mu; the next renewal, owned leases only
	failures   int           // guarded by renewing; renewals failed in a row

	// handover, when set, is the hand-off that gave the lease; the store
	// knows its token only once it has landed.
	handover *handover
}

// renewLease renews one of the session's leases with ttl, which becomes its
// ttl from then on. A false result means the lease was lost; it is dropped.
func (s *Session) renewLease(ctx context.Context, ls *lease, ttl time.Duration) (bool, error) {
	l := s.l
	if err := ls.handover.wait(ctx); err != nil {
		return false, err
	}
	s.mu.Lock()
	until := ls.validUntil
	s.mu.Unlock()
	deadline := earliest(l.now().Add(l.cfg.UpstreamTimeout), until)
	if err := s.waitRenewal(ctx, ls, deadline); err != nil {
		if ctx.Err() == nil && !l.now().Before(until) {
			s.lapse(ls, "its validity ran out before it could be renewed", true)
			return false, nil
		}
		return false, fmt.Errorf("renew %q: waiting for the background renewal: %w", ls.name, err)
	}
	defer func() { <-ls.renewing }()
	s.mu.Lock()
	until = ls.validUntil
	ok := s.leases[ls.name] == ls
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	sent := l.now()
	if ls.capReached(sent) {
		s.capOut(ls)
		return false, nil
	}
	if !sent.Before(until) {
		s.lapse(ls, "its validity ran out before it could be renewed", true)
		return false, nil
	}
	storeTTL, _ := ls.capped(sent, ttl)
	ctx, cancel := l.until(ctx, earliest(deadline, until))
	defer cancel()
	r, err := l.store.Renew(ctx, RenewRequest{Name: ls.name, Token: ls.token, TTL: storeTTL})
	if err != nil {
		// The renewal may have been applied: with a shorter ttl, the store
		// could now expire the lock sooner than we assumed.
		s.mu.Lock()
		ls.validUntil = earliest(ls.validUntil, validity(sent, storeTTL))
		s.mu.Unlock()
		return false, fmt.Errorf("renew %q: %w", ls.name, err)
	}
	if !r.OK {
		s.gone(ls, r.Revoked)
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[ls.name] != ls {
		return false, nil // released or lost while the call was in flight
	}
	ls.ttl = ttl
	ls.validUntil = validity(sent, storeTTL)
	l.extendHorizon(sent.Add(storeTTL))
	if !ls.detached {
		ls.stopTimer()
		s.scheduleLocked(ls, s.renewDelay(ls, sent, ls.validUntil))
	}
	if ls.detached {
		l.detached.extend(ls.token, sent.Add(storeTTL))
	}
	return true, nil
}

// ttlNow is the lease's ttl.
func (ls *lease) ttlNow(s *Session) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ls.ttl
}

// waitRenewal takes ls's renewal slot, waiting until deadline at most for
// a renewal in flight. The caller gives it back.
func (s *Session) waitRenewal(ctx context.Context, ls *lease, deadline time.Time) error {
	wctx, cancel := s.l.until(ctx, deadline)
	defer cancel()
	select {
	case ls.renewing <- struct{}{}:
		return nil
	case <-wctx.Done():
		return wctx.Err()
	}
}

// gone drops a lease the store says the token no longer holds. When
// another connection revoked it, the lock is still held, by nobody, until
// this sidecar releases it.
func (s *Session) gone(ls *lease, revoked bool) {
	if !revoked {
		s.lapse(ls, "the upstream no longer has it", false)
		return
	}
	s.lapse(ls, whyRevoked, false)
	s.l.releaseLater(ls.name, RevokedToken(ls.token))
}

// renewDelay is when to renew a lease last acquired or renewed at sent and
// valid until until: that fraction of its validity later, or at its
// MAXHOLD cap, whichever is first. (The validity, not the ttl: a lock a
// release granted this sidecar's waiter may have far less left than the
// waiter's own ttl.)
func (s *Session) renewDelay(ls *lease, sent, until time.Time) time.Duration {
	interval := time.Duration(float64(until.Sub(sent)) * s.l.cfg.RenewFraction)
	// Earlier, never later: a renewal keeps its margin.
	at := sent.Add(interval).Truncate(renewTick(interval))
	if !ls.capAt.IsZero() {
		// Its holder is told as a loss would be, so as early.
		at = earliest(at, ls.capDeadline().Add(-ls.capLead()))
	}
	return at.Sub(s.l.now())
}

// renewTick is the grid that renewals due every interval are moved onto:
// a tenth of the interval, at most 100ms, so that the leases of a sidecar
// fall due together and their renewals reach the store at once, where they
// share calls (see redisstore's batching). A lease is renewed at most a
// tick early, less than a tenth of its interval.
func renewTick(interval time.Duration) time.Duration { return min(interval/10, 100*time.Millisecond) }

// capDeadline is when a lease with a MAXHOLD ends: the cap, less the drift
// margin its validity keeps, since the store's ttl never runs past the cap.
func (ls *lease) capDeadline() time.Time {
	return ls.capAt.Add(-Drift(ls.capAt.Sub(ls.start)))
}

// capLead is lossLead for the cap: the end of a MAXHOLD is told that much
// early, by the cap's own length.
func (ls *lease) capLead() time.Duration { return lossLead(ls.capAt.Sub(ls.start)) }

// lossWindow is ttl, or the whole cap's length if the lease has a shorter one.
func (ls *lease) lossWindow(ttl time.Duration) time.Duration {
	if ls.capAt.IsZero() {
		return ttl
	}
	return min(ttl, ls.capAt.Sub(ls.start))
}

// capReached reports whether ls has a MAXHOLD and has come to its end.
func (ls *lease) capReached(now time.Time) bool {
	return !ls.capAt.IsZero() && !now.Before(ls.capDeadline())
}

// capOut ends a lease at its MAXHOLD: released, and then its holder told
// as for a lost lock (the lock.lost push), so that the push means the lock
// is free for others. It is not counted as lost: nothing failed, the cap
// did its job.
func (s *Session) capOut(ls *lease) {
	if !s.end(ls, false) {
		return
	}
	s.l.log.Info("lock released at its MAXHOLD", "lock", ls.name)
	s.l.releaseNow(s.l.queue(ls.name), ls.name, ls.token)
	s.tell(ls)
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

// scheduleLocked arms ls's renewal timer. s.mu is held.
func (s *Session) scheduleLocked(ls *lease, after time.Duration) {
	// Shutting down, the tracker arms nothing: the lease is about to be
	// released.
	ls.timer = s.l.work.AfterFunc(after, func() { s.autoRenew(ls) })
}

// stopTimer disarms ls's renewal timer. Session.mu is held.
func (ls *lease) stopTimer() {
	ls.timer.Stop()
	ls.timer = nil
}

// autoRenew is one background renewal of an owned lease. A failure is
// retried soon, but only while the lease is still valid; past that the
// lease is lost.
func (s *Session) autoRenew(ls *lease) {
	l := s.l
	_ = ls.handover.wait(l.ctx)
	ls.renewing <- struct{}{}
	defer func() { <-ls.renewing }()
	s.mu.Lock()
	if s.leases[ls.name] != ls || ls.detached {
		s.mu.Unlock()
		return
	}
	ttl, until := ls.ttl, ls.validUntil
	s.mu.Unlock()

	sent := l.now()
	if ls.capReached(sent.Add(ls.capLead())) {
		s.capOut(ls) // not a renewal that failed: nothing is counted as lost
		return
	}
	// The store's ttl is the lease's, or the cap's length if that is less.
	giveUp := until.Add(-lossLead(ls.lossWindow(ttl)))
	if !sent.Before(giveUp) {
		l.obs.AutoRenewed("lost")
		s.lose(ls, "renewal did not succeed before its validity ran out", true)
		return
	}
	storeTTL, _ := ls.capped(sent, ttl)
	// Bounded by the upstream timeout too, not only the validity: a call
	// stuck on a dead connection gives way to a retry on another, and a
	// client's RENEW waiting behind it is answered in time. And by giveUp,
	// not the validity: a call that hangs until the validity ends would
	// leave its loss to be told after the store may have expired the lock.
	ctx, cancel := l.until(l.ctx, earliest(sent.Add(l.cfg.UpstreamTimeout), giveUp))
	r, err := l.store.Renew(ctx, RenewRequest{Name: ls.name, Token: ls.token, TTL: storeTTL})
	cancel()
	switch {
	case err == nil && r.OK:
		l.obs.AutoRenewed("ok")
		ls.failures = 0
		l.extendHorizon(sent.Add(storeTTL))
		s.mu.Lock()
		if s.leases[ls.name] == ls && !ls.detached {
			ls.validUntil = validity(sent, storeTTL)
			s.scheduleLocked(ls, s.renewDelay(ls, sent, ls.validUntil))
		}
		s.mu.Unlock()
	case err == nil:
		l.obs.AutoRenewed("lost")
		s.gone(ls, r.Revoked)
	default:
		l.obs.AutoRenewed("error")
		ls.failures++
		if ls.failures == 1 {
			l.log.Warn("renewal failed; retrying until the lock's validity runs out", "lock", ls.name, "err", err)
		}
		s.mu.Lock()
		if s.leases[ls.name] == ls && !ls.detached {
			s.scheduleLocked(ls, retryDelay(ls.failures, giveUp.Sub(l.now())))
		}
		s.mu.Unlock()
	}
}

// lossLead is how long before a failing lease's validity runs out its
// sidecar gives up renewing it and declares it lost: a timer on a starved
// processor fires late, and the lock.lost push must still reach the holder
// before the upstream could expire the lock and grant it to another. A
// tenth of the ttl, at most 100ms; answers (HELD, RENEW, INFO) check the
// validity itself whatever the timers do.
func lossLead(ttl time.Duration) time.Duration { return min(ttl/10, 100*time.Millisecond) }

// retryDelay spaces failed renewals: quick at first, never more than a
// quarter of the validity left, so several tries fit before it runs out.
// Under a millisecond it waits out what is left, and the next try declares
// the lease lost, rather than retrying ever sooner.
func retryDelay(failures int, left time.Duration) time.Duration {
	d := min(10*time.Millisecond<<min(failures-1, 6), left/4)
	if d < time.Millisecond {
		d = left
	}
	return max(d, 0)
}
