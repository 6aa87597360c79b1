package lockcore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Waiting, fairly and without polling when it can be helped.
//
// Every blocked acquire is a waiter with an id unique across sidecars. The
// store keeps, per name, a queue of waiters in arrival order, and grants a
// free lock only to the first live one; so waiters on every sidecar are
// served first come, first served. On this sidecar, a name's waiters form a
// local queue in the same order, which makes at most one store call for the
// name at a time: a new waiter's first try (which queues it in the store), a
// try for a waiter the store says is first, or a fallback poll.
//
// Hand-off needs no poll. A release on this sidecar passes the first local
// waiter along as a candidate, and the store grants it the lock in the same
// step if it is first in the store's queue. A release on another sidecar
// makes the store wake the first waiter's sidecar (Watch), which tries for
// it at once. Expiry wakes nobody, so while anyone waits the local queue
// polls with backoff and jitter, never sleeping past the holder's ttl.

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

// handover is a local hand-over's transfer in the store.
type handover struct {
	done chan struct{} // closed when the store has answered
	ok   bool          // the new token holds the lock; set before done closes
	sent time.Time     // when the transfer was sent; set before done closes

	mu     sync.Mutex
	landed bool   // guarded by mu
	then   func() // guarded by mu; run once it has landed
}

// land records the store's answer and runs what waits on it.
func (h *handover) land(ok bool, sent time.Time) {
	h.mu.Lock()
	h.ok, h.sent, h.landed = ok, sent, true
	then := h.then
	close(h.done)
	h.mu.Unlock()
	if then != nil {
		then()
	}
}

// whenLanded runs f once the store has answered: now, if it has.
func (h *handover) whenLanded(f func()) {
	h.mu.Lock()
	if !h.landed {
		h.then = f
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	f()
}

// wait waits for the transfer to land, or ctx to end.
func (h *handover) wait(ctx context.Context) error {
	if h == nil {
		return nil
	}
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waiter is one blocked acquire.
type waiter struct {
	id     string
	nonce  string
	ttl    time.Duration
	q      *queue
	result chan outcome // gets the one outcome; buffered, so a send never blocks

	registered bool      // guarded by Locks.mu; the store has queued it
	seen       time.Time // guarded by Locks.mu; when the last call that found it queued was sent
	kicked     bool      // guarded by Locks.mu; try it next (the store said it is first)
	gone       bool      // guarded by Locks.mu; it stopped waiting
	done       bool      // guarded by Locks.mu; its outcome was sent
	granted    string    // guarded by Locks.mu; the token it was sent
}

type outcome struct {
	g   grant
	err error
}

// queue is one name's local waiters, and the state of waiting for it. All
// fields are guarded by Locks.mu.
type queue struct {
	name    string
	waiters []*waiter // arrival order
	trying  bool      // a store call is in flight for the name
	pollDue bool      // the next free slot goes to a poll for the first waiter
	poll    *time.Timer
	keep    *time.Timer
	linger  *time.Timer   // armed while the queue is empty, to close it
	backoff time.Duration // next poll interval
	cap     time.Duration // the holder's time left at the last try; 0: none known
	first   string        // the store's first live waiter, as last heard; "": unknown
	firstAt int64         // the Seq of the reply that said so
	passes  int           // local hand-offs in a row that may have passed over a waiter elsewhere
	stop    func()        // ends the store watch; nil until it is active
	closed  bool
}

// flight is a try-once acquire in flight for a name: others wait for it
// rather than make a call of their own that can only fail.
type flight struct {
	done chan struct{}
	err  error
}

func (q *queue) find(id string) *waiter {
	for _, w := range q.waiters {
		if w.id == id {
			return w
		}
	}
	return nil
}

func (q *queue) remove(w *waiter) {
	if i := slices.Index(q.waiters, w); i >= 0 {
		q.waiters = slices.Delete(q.waiters, i, i+1)
	}
}

// Waiters reports how many acquires are blocked on name on this sidecar.
func (l *Locks) Waiters(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.queues[name]; q != nil {
		return len(q.waiters)
	}
	return 0
}

func (l *Locks) newWaiterID() string {
	return l.id + ":" + strconv.FormatUint(l.nextWaiter.Add(1), 36)
}

// acquire gets name for the session: at once, or by waiting up to wait.
// Contention returns a zero grant and no error.
func (l *Locks) acquire(ctx context.Context, name string, ttl, wait time.Duration) (grant, error) {
	if wait <= 0 {
		return l.tryOnce(ctx, name, ttl)
	}
	w := &waiter{id: l.newWaiterID(), nonce: newNonce(), ttl: ttl, result: make(chan outcome, 1)}
	if err := l.join(name, w); err != nil {
		return grant{}, err
	}
	l.waiters.Add(1)
	l.obs.WaitersChanged(1)
	defer func() {
		l.waiters.Add(-1)
		l.obs.WaitersChanged(-1)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case o := <-w.result:
		return o.g, o.err
	case <-t.C:
		return l.abandon(w, nil)
	case <-ctx.Done():
		return l.abandon(w, ctx.Err())
	case <-l.ctx.Done():
		return l.abandon(w, ErrShuttingDown)
	}
}

// tryOnce is an acquire without WAIT: one try, and no queueing. When local
// waiters are queued for the name they come first, so it fails without a
// call; when another try-once for the name is in flight, it shares that
// call's outcome, which leaves the lock taken either way.
func (l *Locks) tryOnce(ctx context.Context, name string, ttl time.Duration) (grant, error) {
	for {
		l.mu.Lock()
		if q := l.queues[name]; q != nil && len(q.waiters) > 0 {
			l.mu.Unlock()
			return grant{}, nil
		}
		f := l.flights[name]
		if f == nil {
			f = &flight{done: make(chan struct{})}
			l.flights[name] = f
			l.mu.Unlock()
			g, err := l.try(ctx, AcquireRequest{Name: name, Nonce: newNonce(), TTL: ttl})
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
	sent := time.Now()
	until := validity(sent, req.TTL)
	actx, cancel := context.WithDeadline(ctx, earliest(sent.Add(l.cfg.UpstreamTimeout), until))
	g, err := l.store.Acquire(actx, req)
	if err == nil && !g.Acquired && l.departed(req.Name, g.Head) {
		// The lock is free but kept for one of this sidecar's waiters that
		// has left, whose leaving has not reached the store yet: clear it
		// and try again.
		if err = l.store.Leave(actx, req.Name, g.Head); err == nil {
			sent = time.Now()
			g, err = l.store.Acquire(actx, req)
		}
	}
	cancel()
	if err != nil {
		// The call may have taken the lock before failing: fail closed, in
		// the background so the error reply does not wait on it.
		l.releaseLater(req.Name, ":"+req.Nonce)
		if ctx.Err() != nil {
			return grant{}, ctx.Err()
		}
		return grant{}, fmt.Errorf("acquire %q: %w", req.Name, err)
	}
	if !g.Acquired {
		return grant{}, nil
	}
	if !time.Now().Before(until) {
		l.releaseLater(req.Name, g.Token)
		return grant{}, ErrTooSlow
	}
	return grant{token: g.Token, sent: sent, until: until}, nil
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
	return q == nil || q.find(waiter) == nil
}

// join puts w at the end of name's local queue, making the queue (and its
// watch) if it is the first.
func (l *Locks) join(name string, w *waiter) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return ErrShuttingDown
	}
	q := l.queues[name]
	if q != nil && l.cfg.MaxWaitersPerName > 0 && len(q.waiters) >= l.cfg.MaxWaitersPerName {
		return ErrTooManyWaiters
	}
	if q == nil {
		q = &queue{name: name, backoff: l.cfg.Retry.Base}
		l.queues[name] = q
		if l.trackLocked() {
			go l.watch(q)
		}
	}
	l.stopTimer(q.linger)
	q.linger = nil
	if q.keep == nil {
		l.armKeepAlive(q)
	}
	w.q = q
	q.waiters = append(q.waiters, w)
	l.pump(q)
	return nil
}

// abandon takes w out of its queue: its wait ran out (why == nil), its
// client went away, or Shutdown began. An outcome that was sent before it
// left is kept on a timeout, and given back otherwise: a client that is
// gone must never hold the lock.
func (l *Locks) abandon(w *waiter, why error) (grant, error) {
	q := w.q
	l.mu.Lock()
	w.gone = true
	q.remove(w)
	registered := w.registered && !w.done
	l.closeIfEmpty(q)
	l.mu.Unlock()
	select {
	case o := <-w.result:
		if why == nil {
			return o.g, o.err
		}
		if o.err == nil {
			l.giveBack(q.name, o.g)
		}
		return grant{}, why
	default:
	}
	if registered {
		l.leaveLater(q.name, w)
	}
	return grant{}, why
}

// finish sends w its outcome and takes it out of the queue. l.mu is held.
func (l *Locks) finish(w *waiter, o outcome) {
	w.done, w.granted = true, o.g.token
	w.result <- o
	w.q.remove(w)
	if o.err == nil {
		w.q.backoff = l.cfg.Retry.Base
	}
	l.closeIfEmpty(w.q)
}

// pump starts the next store call for q, if none is in flight: for a
// waiter the store named first, else for a new waiter (to queue it), else a
// due poll for the first waiter. With nothing to do, it arms the poll.
// l.mu is held.
func (l *Locks) pump(q *queue) {
	if q.trying || q.closed || len(q.waiters) == 0 {
		return
	}
	var next *waiter
	for _, w := range q.waiters {
		if w.kicked {
			next = w
			break
		}
	}
	if next == nil {
		for _, w := range q.waiters {
			if !w.registered {
				next = w
				break
			}
		}
	}
	if next == nil && q.pollDue {
		next = q.waiters[0]
	}
	if next == nil {
		l.armPoll(q)
		return
	}
	if !l.trackLocked() {
		return
	}
	next.kicked, q.pollDue, q.trying = false, false, true
	go l.tryWaiter(next)
}

// tryWaiter is one store call for a queued waiter.
func (l *Locks) tryWaiter(w *waiter) {
	defer l.work.Done()
	q := w.q
	sent := time.Now()
	until := validity(sent, w.ttl)
	ctx, cancel := context.WithDeadline(l.ctx, earliest(sent.Add(l.cfg.UpstreamTimeout), until))
	g, err := l.store.Acquire(ctx, AcquireRequest{Name: q.name, Nonce: w.nonce, TTL: w.ttl, Waiter: w.id, WaiterTTL: l.cfg.WaiterTTL})
	cancel()

	var giveBack string // a grant nobody can use, released after unlocking
	leave := false      // the store may have queued a waiter that is gone
	l.mu.Lock()
	q.trying = false
	if err == nil {
		q.learn(g.First, g.Seq)
	}
	switch {
	case err != nil:
		giveBack, leave = ":"+w.nonce, true
		if !w.gone && !w.done {
			l.finish(w, outcome{err: fmt.Errorf("acquire %q: %w", q.name, err)})
		}
	case g.Acquired:
		switch {
		case w.done && w.granted == g.Token:
			// A hand-off already gave it this very grant.
		case w.gone || w.done:
			giveBack = g.Token
		case !time.Now().Before(until):
			giveBack = g.Token
			l.finish(w, outcome{err: ErrTooSlow})
		default:
			l.finish(w, outcome{g: grant{token: g.Token, sent: sent, until: until}})
		}
	default:
		if w.gone {
			leave = true
		} else {
			w.registered, w.seen = true, sent
		}
		q.cap = g.HolderTTL
		if g.Head != "" {
			q.cap = 0
			if h := q.find(g.Head); h != nil {
				h.kicked = true
			}
		}
	}
	l.pump(q)
	l.mu.Unlock()
	if giveBack != "" {
		l.releaseLater(q.name, giveBack)
	}
	if leave {
		l.leaveLater(q.name, w)
	}
}

// armPoll schedules the fallback poll: backoff with jitter, growing each
// time, but never past the holder's time left. l.mu is held.
func (l *Locks) armPoll(q *queue) {
	if q.poll != nil || q.closed {
		return
	}
	d := jitter(q.backoff, l.cfg.Retry.Jitter)
	if q.cap > 0 {
		// Expiry is the one event nobody announces: be there when it comes.
		d = min(d, q.cap+time.Millisecond)
	}
	q.backoff = min(time.Duration(float64(q.backoff)*l.cfg.Retry.Multiplier), l.cfg.Retry.Max)
	q.poll = l.afterFunc(d, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		q.poll = nil
		q.pollDue = true
		l.pump(q)
	})
}

// armKeepAlive schedules the renewal of q's waiters in the store's queue.
// l.mu is held.
func (l *Locks) armKeepAlive(q *queue) {
	q.keep = l.afterFunc(l.cfg.WaiterTTL/3, func() {
		l.mu.Lock()
		q.keep = nil
		var ids []string
		for _, w := range q.waiters {
			if w.registered {
				ids = append(ids, w.id)
			}
		}
		l.mu.Unlock()
		if len(ids) > 0 {
			ctx, cancel := context.WithTimeout(l.ctx, l.cfg.WaiterTTL/3)
			err := l.store.KeepAlive(ctx, q.name, ids, l.cfg.WaiterTTL)
			cancel()
			if err != nil {
				l.log.Warn("could not keep waiters queued; they may lose their place", "lock", q.name, "err", err)
			}
		}
		l.mu.Lock()
		if !q.closed {
			l.armKeepAlive(q)
		}
		l.mu.Unlock()
	})
}

// afterFunc is time.AfterFunc as tracked background work, or nil once
// Shutdown has begun. l.mu is held.
func (l *Locks) afterFunc(d time.Duration, f func()) *time.Timer {
	if !l.trackLocked() {
		return nil
	}
	return time.AfterFunc(d, func() {
		defer l.work.Done()
		f()
	})
}

func (l *Locks) stopTimer(t *time.Timer) {
	if t != nil && t.Stop() {
		l.work.Done() // its func will never run to do it
	}
}

// stopQueueTimersLocked disarms q's timers. l.mu is held.
func (l *Locks) stopQueueTimersLocked(q *queue) {
	l.stopTimer(q.poll)
	l.stopTimer(q.keep)
	l.stopTimer(q.linger)
	q.poll, q.keep, q.linger = nil, nil, nil
}

// queueLinger is how long an empty queue (and its subscription to wakes)
// is kept for the next waiter: a lock in steady use would otherwise
// subscribe and unsubscribe around every acquisition.
const queueLinger = time.Second

// closeIfEmpty ends q a while after its last waiter has left. l.mu is held.
func (l *Locks) closeIfEmpty(q *queue) {
	if len(q.waiters) > 0 || q.closed || q.linger != nil {
		return
	}
	l.stopTimer(q.poll)
	l.stopTimer(q.keep)
	q.poll, q.keep = nil, nil
	q.linger = l.afterFunc(queueLinger, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		q.linger = nil
		if len(q.waiters) == 0 {
			l.closeQueue(q)
		}
	})
	if q.linger == nil {
		l.closeQueue(q) // shutting down: no timers
	}
}

// closeQueue ends q and its watch. l.mu is held.
func (l *Locks) closeQueue(q *queue) {
	if q.closed {
		return
	}
	q.closed = true
	if l.queues[q.name] == q {
		delete(l.queues, q.name)
	}
	l.stopQueueTimersLocked(q)
	if stop := q.stop; stop != nil {
		q.stop = nil
		if l.trackLocked() {
			go func() {
				defer l.work.Done()
				stop()
			}()
		} else {
			stop()
		}
	}
}

// watch subscribes q's name to the store's wakes. A waiter queued before
// the subscription was active may have missed a wake, so once it is, the
// first waiter tries again.
func (l *Locks) watch(q *queue) {
	defer l.work.Done()
	stop, err := l.store.Watch(l.ctx, q.name, func(wk Wake) { l.wake(q, wk) })
	if err != nil {
		if l.ctx.Err() == nil {
			l.log.Warn("could not watch for releases; waiters poll", "lock", q.name, "err", err)
		}
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if q.closed {
		stop()
		return
	}
	q.stop = stop
	for _, w := range q.waiters {
		if w.registered {
			q.pollDue = true
			l.pump(q)
			break
		}
	}
}

// wake is the store telling q that a waiter is first (or, with a zero
// Wake, that wakes may have been missed). When the store has granted the
// waiter the lock already, the waiter is answered at once and the lock is
// renewed to its own ttl behind it. A grant to a waiter that has left is
// given back by the leaving (see leaveLater).
func (l *Locks) wake(q *queue, wk Wake) {
	l.mu.Lock()
	defer l.mu.Unlock()
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
			l.pump(q)
		}
		return
	}
	w := q.find(wk.Waiter)
	if w == nil {
		return // another sidecar's, or it has left or been answered
	}
	if wk.Token != "" {
		// The grant happened after the last call that found w queued, so it
		// lasts at least TTL from when that call was sent.
		until := validity(w.seen, wk.TTL)
		if !w.seen.IsZero() && time.Until(until) > handOverMargin && l.trackLocked() {
			ho := &handover{done: make(chan struct{})}
			go l.extend(q.name, wk.Token, w.ttl, until, ho)
			l.countHandOff(handOffRemote)
			l.finish(w, outcome{g: grant{token: wk.Token, sent: time.Now(), until: until, handover: ho}})
			return
		}
		// Too little validity to vouch for: its own try (same nonce) takes
		// the grant, with a validity of its own.
	}
	w.kicked = true
	l.pump(q)
}

// extend renews a lock that another sidecar's release granted with a
// short store ttl to its holder's own ttl; the holder's lease settles when
// it lands.
func (l *Locks) extend(name, token string, ttl time.Duration, until time.Time, ho *handover) {
	defer l.work.Done()
	ctx, cancel := context.WithDeadline(context.Background(), until)
	sent := time.Now()
	ok, err := l.store.Renew(ctx, name, token, ttl)
	cancel()
	if err != nil {
		l.log.Warn("could not renew a lock handed over from another sidecar; it is lost", "lock", name, "err", err)
	}
	ho.land(err == nil && ok, sent)
}

func jitter(d time.Duration, j float64) time.Duration {
	if j == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
}

// candidate returns the first local waiter on name that the store has
// queued, to hand the lock to in the same step as its release.
func (l *Locks) candidate(name string) (*waiter, *Candidate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queues[name]
	if q == nil {
		return nil, nil
	}
	if w := q.firstReady(); w != nil {
		return w, &Candidate{Waiter: w.id, Nonce: w.nonce, TTL: w.ttl}
	}
	return nil, nil
}

// ready reports whether w can be given the lock: the store has queued it
// and it still waits. l.mu is held.
func (w *waiter) ready() bool { return w.registered && !w.gone && !w.done }

// firstReady is the first local waiter that can be given the lock, or nil.
// l.mu is held.
func (q *queue) firstReady() *waiter {
	for _, w := range q.waiters {
		if w.ready() {
			return w
		}
	}
	return nil
}

// release frees name if token holds it, handing it to the first local
// waiter in the same store call when that waiter is first in the store's
// queue.
func (l *Locks) release(ctx context.Context, name, token string) (bool, error) {
	w, cand := l.candidate(name)
	sent := time.Now()
	r, err := l.store.Release(ctx, ReleaseRequest{Name: name, Token: token, Next: cand, GrantTTL: l.cfg.WaiterTTL, Self: l.id + ":"})
	if err != nil {
		return false, err
	}
	l.learnFirst(name, r)
	l.handedOff(w, r, sent)
	return r.Released, nil
}

// learnFirst records who a release left first in the store's queue. A
// release that freed the lock let the store's order choose who is next, so
// it ends a run of local hand-offs; one that freed nothing (a stale token,
// a waiter giving back a grant it never had) does not.
func (l *Locks) learnFirst(name string, r Released) {
	l.mu.Lock()
	if q := l.queues[name]; q != nil {
		q.learn(r.First, r.Seq)
		if r.Released {
			q.passes = 0
		}
	}
	l.mu.Unlock()
}

// learn records the store's first waiter, unless a reply that saw the
// queue later has already spoken: replies on different connections arrive
// in any order. l.mu is held.
func (q *queue) learn(first string, seq int64) {
	if seq > q.firstAt {
		q.first, q.firstAt = first, seq
	}
}

// handOver passes a valid lease's lock (token, valid until until) to the
// store's first waiter when that waiter is on this sidecar: the waiter is
// answered at once, with the next fence, and the store is told in the
// background. Nobody else can take the lock meanwhile: until the transfer
// lands the store holds it under the old token, which is still valid. It
// reports whether it handed the lock over; if not, release it as usual.
func (l *Locks) handOver(name, token string, until time.Time) bool {
	fence, _, ok := ParseToken(token)
	now := time.Now()
	// Keep a margin, so the transfer lands well within the old validity.
	if !ok || until.Sub(now) < handOverMargin {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.queues[name]
	if q == nil {
		return false
	}
	how := handOffLocal
	w := q.find(q.first)
	if w == nil || !w.ready() {
		// The store's first waiter is elsewhere, or not known: a local one
		// may still go first, a bounded number of times in a row.
		if w = q.firstReady(); w == nil || q.passes >= l.cfg.LocalHandoffs {
			return false
		}
		how = handOffLocalAhead
	}
	if !l.trackLocked() {
		return false
	}
	if how == handOffLocalAhead {
		q.passes++
	}
	l.countHandOff(how)
	ho := &handover{done: make(chan struct{})}
	to := FormatToken(fence+1, w.nonce)
	q.first = "" // unknown until the store answers; older replies stay ignored
	go l.transfer(q, TransferRequest{Name: name, From: token, To: to, Waiter: w.id, TTL: w.ttl}, until, ho)
	// Readied last, the waiter runs next: the hand-off gap is the time until
	// its reply goes out, so it goes before the transfer and the releaser's.
	l.finish(w, outcome{g: grant{token: to, sent: now, until: earliest(until, validity(now, w.ttl)), handover: ho}})
	return true
}

// handOverMargin is the least validity a lease must have left to be handed
// over locally; the transfer takes one round trip.
const handOverMargin = 10 * time.Millisecond

// transfer tells the store of a local hand-over. If the store refuses, or
// the call fails, the new holder's lease is lost (its session sees ho.ok
// false) and whatever token may still hold the lock is given back.
func (l *Locks) transfer(q *queue, req TransferRequest, until time.Time, ho *handover) {
	defer l.work.Done()
	ctx, cancel := context.WithDeadline(context.Background(), until)
	sent := time.Now()
	t, err := l.store.Transfer(ctx, req)
	cancel()
	if err != nil {
		l.log.Warn("a local hand-over may not have reached the upstream; the new holder's lock is lost", "lock", req.Name, "err", err)
		l.releaseLater(req.Name, req.From)
	}
	if err == nil {
		l.mu.Lock()
		q.learn(t.First, t.Seq)
		l.mu.Unlock()
	}
	ho.land(err == nil && t.OK, sent)
}

// handedOff delivers what a release gave the candidate w.
func (l *Locks) handedOff(w *waiter, r Released, sent time.Time) {
	if w == nil {
		return
	}
	if r.Next == "" {
		if r.Repeated {
			// An earlier send of the release may have granted w a lock whose
			// token we never saw; w's own try (same nonce) will find it.
			l.wake(w.q, Wake{Waiter: w.id})
		}
		return
	}
	until := validity(sent, w.ttl)
	giveBack := false
	l.mu.Lock()
	switch {
	case w.done && w.granted == r.Next:
		// Its own try already delivered this very grant.
	case w.gone || w.done:
		giveBack = true
	case !time.Now().Before(until):
		giveBack = true
		l.finish(w, outcome{err: ErrTooSlow})
	default:
		l.countHandOff(handOffUpstream)
		l.finish(w, outcome{g: grant{token: r.Next, sent: sent, until: until}})
	}
	l.mu.Unlock()
	if giveBack {
		l.releaseLater(w.q.name, r.Next)
	}
}

// releaseNow gives back a lock whose grant cannot be used, on a context of
// its own because the caller's may be what ended.
func (l *Locks) releaseNow(name, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.UpstreamTimeout)
	defer cancel()
	if _, err := l.release(ctx, name, token); err != nil {
		l.log.Warn("could not give back a lock; it will expire by its ttl", "lock", name, "err", err)
	}
}

// giveBack releases, in the background, a grant whose client is gone. A
// handed-over grant's token is in the store only once its transfer lands,
// so that is waited for first.
func (l *Locks) giveBack(name string, g grant) {
	l.goTracked(func() {
		if h := g.handover; h != nil {
			<-h.done // bounded: the transfer's deadline is the old token's validity
			if !h.ok {
				return // the transfer gave back the old token itself
			}
		}
		l.releaseNow(name, g.token)
	})
}

// releaseLater is releaseNow in the background, for callers that must not
// wait on it (renewal timers, error replies).
func (l *Locks) releaseLater(name, token string) {
	l.goTracked(func() { l.releaseNow(name, token) })
}

// leaveLater takes a waiter that is gone out of the store's queue, in the
// background, then gives back any lock a release on another sidecar may
// have granted it just before (by its nonce, which nobody else holds). If
// leaving fails, the entry lapses after WaiterTTL.
func (l *Locks) leaveLater(name string, w *waiter) {
	if !l.track() {
		return // shutting down: the entry lapses on its own
	}
	go func() {
		defer l.work.Done()
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.UpstreamTimeout)
		defer cancel()
		if err := l.store.Leave(ctx, name, w.id); err != nil {
			l.log.Warn("could not leave a lock's queue; the entry lapses by itself", "lock", name, "err", err)
			return
		}
		if _, err := l.release(ctx, name, ":"+w.nonce); err != nil {
			l.log.Warn("could not give back a lock granted to a waiter that left; it expires by itself", "lock", name, "err", err)
		}
	}()
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
	cands := make([]*waiter, len(leases))
	for i, ls := range leases {
		var cand *Candidate
		cands[i], cand = l.candidate(ls.name)
		reqs[i] = ReleaseRequest{Name: ls.name, Token: ls.token, Next: cand, GrantTTL: l.cfg.WaiterTTL, Self: l.id + ":"}
	}
	sent := time.Now()
	res, err := l.store.ReleaseAll(ctx, reqs)
	if err != nil {
		l.log.Warn("could not release locks; they will expire by their ttl", "locks", len(reqs), "err", err)
	}
	for i, ls := range leases {
		l.leaseEnded(ls, false)
		if i < len(res) {
			l.learnFirst(ls.name, res[i])
			l.handedOff(cands[i], res[i], sent)
		}
	}
	return err
}
