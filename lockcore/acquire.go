package lockcore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// grant is a lock the store gave: its token, when the call that took it was
// sent, and the end of its validity.
type grant struct {
	token string
	sent  time.Time
	until time.Time
	// handover, when set, says the lock was handed over locally: the store
	// still holds it under the previous holder's token until the transfer
	// lands, and until is that token's validity.
	handover *handover
}

// flight is a try-once acquire in flight for a name: others wait for it
// rather than make a call of their own that can only fail.
type flight struct {
	done chan struct{}
	err  error
}

// acquire gets name for a session: at once, or by waiting up to wait.
// Contention returns a zero grant and no error.
func (l *Locks) acquire(ctx context.Context, name string, ttl, wait time.Duration, kind Kind) (grant, error) {
	if wait <= 0 {
		return l.tryOnce(ctx, name, ttl, kind)
	}
	// The deadline runs from before the waiter joins: by the time it is
	// counted as waiting, its WAIT's end is set.
	timeout := make(chan struct{})
	t := l.clock.AfterFunc(wait, func() { close(timeout) })
	defer t.Stop()
	w := &waiter{id: l.newWaiterID(), nonce: l.newNonce(), ttl: ttl, kind: kind, result: make(chan outcome, 1)}
	if err := l.join(name, w); err != nil {
		return grant{}, err
	}
	l.waiters.Add(1)
	l.obs.WaitersChanged(1)
	defer func() {
		l.waiters.Add(-1)
		l.obs.WaitersChanged(-1)
	}()
	select {
	case o := <-w.result:
		return o.g, o.err
	case <-timeout:
		return w.q.abandon(w, nil)
	case <-ctx.Done():
		return w.q.abandon(w, ctx.Err())
	case <-l.ctx.Done():
		return w.q.abandon(w, ErrShuttingDown)
	}
}

// join puts w at the end of name's local queue, making the queue (and its
// watch) if it is the first.
func (l *Locks) join(name string, w *waiter) error {
	for {
		q, err := l.queueFor(name)
		if err != nil {
			return err
		}
		if ok, err := q.join(w); ok {
			return err
		}
		// It closed between the two steps: make another.
	}
}

// tryOnce is an acquire without WAIT: one try, and no queueing. When local
// waiters are queued for the name they come first, so it fails without a
// call; when another try-once for the name is in flight, it shares that
// call's outcome, which leaves the lock taken either way. (Not so for a
// kind held by many, where both may come in: each makes its own call.)
func (l *Locks) tryOnce(ctx context.Context, name string, ttl time.Duration, kind Kind) (grant, error) {
	if !kind.Exclusive() {
		l.mu.Lock()
		q := l.queues[name]
		l.mu.Unlock()
		if q != nil && q.len() > 0 {
			return grant{}, nil
		}
		return l.try(ctx, AcquireRequest{Name: name, Nonce: l.newNonce(), TTL: ttl, Kind: kind})
	}
	for {
		l.mu.Lock()
		if q := l.queues[name]; q != nil && q.len() > 0 {
			l.mu.Unlock()
			return grant{}, nil
		}
		f := l.flights[name]
		if f == nil {
			f = &flight{done: make(chan struct{})}
			l.flights[name] = f
			l.mu.Unlock()
			g, err := l.try(ctx, AcquireRequest{Name: name, Nonce: l.newNonce(), TTL: ttl})
			l.mu.Lock()
			delete(l.flights, name)
			f.err = err
			close(f.done)
			l.mu.Unlock()
			return g, err
		}
		l.mu.Unlock()
		select {
		case <-f.done:
			if f.err == nil {
				return grant{}, nil
			}
			// That call failed, perhaps for its own client's reasons: try ourselves.
		case <-ctx.Done():
			return grant{}, ctx.Err()
		}
	}
}

// try is one acquire call for a request that is not a queued waiter's.
func (l *Locks) try(ctx context.Context, req AcquireRequest) (grant, error) {
	if l.shuttingDown() {
		return grant{}, ErrShuttingDown
	}
	sent := l.now()
	until := validity(sent, req.TTL)
	actx, cancel := l.until(ctx, earliest(sent.Add(l.cfg.UpstreamTimeout), until))
	g, err := l.store.Acquire(actx, req)
	if err == nil && !g.Acquired && l.departed(req.Name, g.Head) {
		// The lock is free but kept for one of this sidecar's waiters that
		// has left, whose leaving has not reached the store yet: clear it
		// and try again.
		if err = l.store.Leave(actx, req.Name, g.Head); err == nil {
			sent = l.now()
			g, err = l.store.Acquire(actx, req)
		}
	}
	cancel()
	if err != nil {
		if wrote(err) {
			// The call may have taken the lock before failing: fail closed,
			// in the background so the error reply does not wait on it.
			l.releaseLater(req.Name, ":"+req.Nonce)
		}
		if ctx.Err() != nil {
			return grant{}, ctx.Err()
		}
		return grant{}, l.callError(req.Name, err, sent, until)
	}
	if g.Mismatch {
		return grant{}, &KindError{Name: req.Name, Held: g.HeldAs, Asked: req.Kind}
	}
	if !g.Acquired {
		return grant{}, nil
	}
	until = grantValidity(sent, req.TTL, g)
	if !l.now().Before(until) {
		l.releaseLater(req.Name, g.Token)
		return grant{}, ErrTooSlow
	}
	return grant{token: g.Token, sent: sent, until: until}, nil
}

// wrote reports whether a failed acquire may have written to the store: the
// store's refusals before any check (ErrNotChecked, ErrStoreReset) did not.
func wrote(err error) bool {
	return !errors.Is(err, ErrNotChecked) && !errors.Is(err, ErrStoreReset)
}

// callError is the error of an acquire call sent at sent for a lease valid
// until until: ErrTooSlow when it was the validity that ran out, not the
// upstream timeout, since a reply after it would have been no use.
func (c *core) callError(name string, err error, sent, until time.Time) error {
	if errors.Is(err, context.DeadlineExceeded) && until.Before(sent.Add(c.cfg.UpstreamTimeout)) && !c.now().Before(until) {
		return ErrTooSlow
	}
	return fmt.Errorf("acquire %q: %w", name, err)
}

// grantValidity is the validity of a grant g made for a call sent at sent
// asking for ttl: ttl from sent, or less when the store found the lock
// already granted to the nonce with less time left, which it does not
// extend.
func grantValidity(sent time.Time, ttl time.Duration, g Grant) time.Time {
	return earliest(validity(sent, ttl), sent.Add(g.TTL-Drift(ttl)))
}

// departed reports whether waiter is one of this sidecar's that no longer
// waits for name.
func (l *Locks) departed(name, waiter string) bool {
	if !strings.HasPrefix(waiter, l.id+":") {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queues[name]
	if q == nil {
		return true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.find(waiter) == nil
}

// tryWaiter is one store call for a queued waiter.
func (q *queue) tryWaiter(w *waiter, done chan struct{}) {
	defer close(done)
	c := q.c
	sent := c.now()
	until := validity(sent, w.ttl)
	ctx, cancel := c.until(c.ctx, earliest(sent.Add(c.cfg.UpstreamTimeout), until))
	g, err := c.store.Acquire(ctx, AcquireRequest{Name: q.name, Nonce: w.nonce, TTL: w.ttl, Waiter: w.id, WaiterTTL: c.cfg.WaiterTTL, Kind: w.kind})
	cancel()

	q.mu.Lock()
	q.trying = nil
	var giveBack string // a grant nobody can use, released after unlocking
	var leave bool      // the store may have queued a waiter that is gone
	if err != nil {
		giveBack, leave = q.tryFailed(w, err, sent, until)
	} else {
		giveBack, leave = q.tried(w, g, sent)
	}
	q.pump()
	q.mu.Unlock()
	if giveBack != "" {
		q.releaseLater(giveBack)
	}
	if leave {
		q.leaveLater(w)
	}
}

// tryFailed deals with a waiter's store call that failed. An upstream
// that stalls, or refuses for a while, ends no wait: the waiter keeps its
// place (its sidecar keeps its entry alive) and tries again after the
// poll, until its own WAIT runs out, with -UPSTREAM then only if the
// upstream is still failing. The call may have queued it, or granted it
// the lock: its next try, with the same nonce, finds out. It returns what
// to give back and whether to leave the store's queue. q.mu is held.
func (q *queue) tryFailed(w *waiter, err error, sent, until time.Time) (giveBack string, leave bool) {
	q.failing, q.lastErr = true, q.c.callError(q.name, err, sent, until)
	switch w.state {
	case joined, queued:
		w.set(queued)
		w.due = true
	case left:
		if wrote(err) {
			return ":" + w.nonce, true
		}
	}
	// An answered waiter keeps what it was given, which may be a lock
	// under this very nonce: nothing is given back by it.
	return "", false
}

// tried deals with what a waiter's store call found: the lock, for the
// waiter or for nobody; or the waiter queued. It returns what to give back
// and whether to leave the store's queue. q.mu is held.
func (q *queue) tried(w *waiter, g Grant, sent time.Time) (giveBack string, leave bool) {
	q.failing, q.lastErr = false, nil
	q.learn(g.First, g.Seq)
	if g.Mismatch {
		// Nothing was written; a place it had in the store's queue (the
		// name changed kind while it waited) is left.
		leave = w.state == queued || w.state == left
		if w.waiting() {
			q.finish(w, outcome{err: &KindError{Name: q.name, Held: g.HeldAs, Asked: w.kind}})
		}
		return "", leave
	}
	if g.Acquired {
		until := grantValidity(sent, w.ttl, g)
		switch {
		case w.state == answered && w.granted == g.Token:
			// A hand-off already gave it this very grant.
		case !w.waiting():
			return g.Token, false
		case !q.c.now().Before(until):
			q.finish(w, outcome{err: ErrTooSlow})
			return g.Token, false
		default:
			q.finish(w, outcome{g: grant{token: g.Token, sent: sent, until: until}})
		}
		return "", false
	}
	switch w.state {
	case left:
		leave = true
	case joined, queued:
		w.set(queued)
		w.seen = sent
	}
	q.cap = g.HolderTTL
	if g.Head != "" {
		q.cap = 0
		if h := q.find(g.Head); h != nil {
			h.due = true
		}
	}
	return "", leave
}

// watch subscribes the queue's name to the store's wakes. A waiter queued
// before the subscription was active may have missed a wake, so once it
// is, the first waiter tries again.
func (q *queue) watch() {
	stop, err := q.c.store.Watch(q.c.ctx, q.name, q.wake)
	if err != nil {
		if q.c.ctx.Err() == nil {
			q.c.log.Warn("could not watch for releases; waiters poll", "lock", q.name, "err", err)
		}
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		q.c.work.GoOrRun(stop)
		return
	}
	q.stop = stop
	for _, w := range q.waiters {
		if w.state == queued {
			q.pollDue = true
			q.pump()
			break
		}
	}
}

// wake is the store telling the queue that a waiter is first (or, with a
// zero Wake, that wakes may have been missed). When the store has granted
// the waiter the lock already, the waiter is answered at once and the lock
// is renewed to its own ttl behind it. A grant to a waiter that has left is
// given back by the leaving (see leaveLater).
func (q *queue) wake(wk Wake) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if wk.Seq != 0 {
		// Every sidecar watching the name hears who is first now.
		q.learn(wk.First, wk.Seq)
	}
	if wk.Waiter == "" {
		if wk.Seq == 0 {
			q.pollDue = true
			q.pump()
		}
		return
	}
	w := q.find(wk.Waiter)
	if w == nil {
		return // another sidecar's, or it has left or been answered
	}
	if wk.Token != "" && q.takeRemoteGrant(w, wk) {
		return
	}
	w.due = true
	q.pump()
}
