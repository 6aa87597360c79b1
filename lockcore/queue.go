package lockcore

import (
	"context"
	"math/rand/v2"
	"slices"
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
// step if it is first in the store's queue (release.go), or hands it over
// without a store round trip on the waiter's path (handover.go). A release
// on another sidecar makes the store wake the first waiter's sidecar
// (Watch), which tries for it at once, or already holds its grant. Expiry
// wakes nobody, so while anyone waits the local queue polls with backoff
// and jitter, never sleeping past the holder's ttl.
//
// This file is the local queue itself; acquire.go has the store calls made
// for it.

// queue is one name's local waiters and the state of waiting for it. It
// reaches the rest of the sidecar only through core and forget.
type queue struct {
	c      *core
	name   string
	forget func(*queue) // takes it out of Locks' map once it has closed

	mu      sync.Mutex
	waiters []*waiter // guarded by mu; the waiting ones, in arrival order
	// trying is the waiter whose store call is in flight for the name, or
	// nil, and tryDone is closed once that call has returned and been taken
	// in. Guarded by mu.
	trying  *waiter
	tryDone chan struct{}
	failing bool          // guarded by mu; the last store call failed: the next waits for the poll
	lastErr error         // guarded by mu; its error, for a WAIT that runs out meanwhile
	pollDue bool          // guarded by mu; the next free slot goes to a poll for the first waiter
	poll    *task         // guarded by mu; the fallback poll
	keep    *task         // guarded by mu; the next KeepAlive of the waiters
	linger  *task         // guarded by mu; armed while the queue is empty, to close it
	backoff time.Duration // guarded by mu; next poll interval
	cap     time.Duration // guarded by mu; the holder's time left at the last try; 0: none known
	first   string        // guarded by mu; the store's first live waiter, as last heard; "": unknown
	firstAt int64         // guarded by mu; the Seq of the reply that said so
	passes  int           // guarded by mu; local hand-offs in a row that may have passed over a waiter elsewhere
	stop    func()        // guarded by mu; ends the store watch; nil until it is active
	closed  bool          // guarded by mu
}

func newQueue(c *core, name string, forget func(*queue)) *queue {
	return &queue{c: c, name: name, forget: forget, backoff: c.cfg.Retry.Base}
}

// open reports whether the queue still takes waiters.
func (q *queue) open() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.closed
}

// len is the number of waiters.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiters)
}

// find returns the waiter with id, if it still waits. q.mu is held.
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

// firstReady is the first waiter that can be given the lock, or nil. q.mu
// is held.
func (q *queue) firstReady() *waiter {
	for _, w := range q.waiters {
		if w.ready() {
			return w
		}
	}
	return nil
}

// join puts w at the end of the queue. It reports false if the queue has
// closed meanwhile; the caller makes a new one.
func (q *queue) join(w *waiter) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false, nil
	}
	if limit := q.c.cfg.MaxWaitersPerName; limit > 0 && len(q.waiters) >= limit {
		return true, ErrTooManyWaiters
	}
	q.linger.Stop()
	q.linger = nil
	if q.keep == nil {
		q.armKeepAlive()
	}
	w.q = q
	q.waiters = append(q.waiters, w)
	q.pump()
	return true, nil
}

// abandon takes w out of the queue: its wait ran out (why == nil), its
// client went away, or Shutdown began. An outcome that was sent before it
// left is kept on a timeout, and given back otherwise: a client that is
// gone must never hold the lock.
func (q *queue) abandon(w *waiter, why error) (grant, error) {
	q.mu.Lock()
	inStore := w.state == queued
	if w.waiting() {
		w.set(left)
	}
	failed := q.lastErr
	q.remove(w)
	q.closeIfEmpty()
	q.mu.Unlock()
	select {
	case o := <-w.result:
		if why == nil {
			return o.g, o.err
		}
		if o.err == nil {
			q.giveBack(o.g)
		}
		return grant{}, why
	default:
	}
	if inStore {
		q.leaveLater(w)
	}
	if why == nil && failed != nil {
		// Its WAIT ran out while the upstream was failing: not "held by
		// someone else", which a null would say.
		return grant{}, failed
	}
	return grant{}, why
}

// finish sends w its outcome and takes it out of the queue. q.mu is held.
func (q *queue) finish(w *waiter, o outcome) {
	w.set(answered)
	w.granted = o.g.token
	w.result <- o
	q.remove(w)
	if o.err == nil {
		q.backoff = q.c.cfg.Retry.Base
	}
	q.closeIfEmpty()
}

// pump starts the next store call for the queue, if none is in flight: for
// a waiter the store named first, else for a new waiter (to queue it), else
// a due poll for the first waiter. With nothing to do, it arms the poll.
// q.mu is held.
func (q *queue) pump() {
	if q.trying != nil || q.closed || len(q.waiters) == 0 {
		return
	}
	if q.failing && !q.pollDue {
		// The upstream failed the last call: one call per poll until it
		// answers again, not one per waiter as fast as they fail.
		q.armPoll()
		return
	}
	var next *waiter
	for _, w := range q.waiters {
		if w.due {
			next = w
			break
		}
	}
	if next == nil {
		for _, w := range q.waiters {
			if w.state == joined {
				next = w
				break
			}
		}
	}
	if next == nil && q.pollDue {
		next = q.waiters[0]
	}
	if next == nil {
		q.armPoll()
		return
	}
	done := make(chan struct{})
	if !q.c.work.Go(func() { q.tryWaiter(next, done) }) {
		return
	}
	next.due, q.pollDue = false, false
	q.trying, q.tryDone = next, done
}

// armPoll schedules the fallback poll: backoff with jitter, growing each
// time, but never past the holder's time left. q.mu is held.
func (q *queue) armPoll() {
	if q.poll != nil || q.closed {
		return
	}
	retry := q.c.cfg.Retry
	d := jitter(q.backoff, retry.Jitter)
	if q.cap > 0 {
		// Expiry is the one event nobody announces: be there when it comes.
		d = min(d, q.cap+time.Millisecond)
	}
	q.backoff = min(time.Duration(float64(q.backoff)*retry.Multiplier), retry.Max)
	q.poll = q.c.work.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.poll = nil
		q.pollDue = true
		q.pump()
	})
}

func jitter(d time.Duration, j float64) time.Duration {
	if j == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
}

// armKeepAlive schedules the renewal of the waiters' places in the store's
// queue. q.mu is held.
func (q *queue) armKeepAlive() {
	every := q.c.cfg.WaiterTTL / 3
	q.keep = q.c.work.AfterFunc(every, func() {
		q.mu.Lock()
		q.keep = nil
		var ids []string
		for _, w := range q.waiters {
			if w.state == queued {
				ids = append(ids, w.id)
			}
		}
		q.mu.Unlock()
		if len(ids) > 0 {
			ctx, cancel := context.WithTimeout(q.c.ctx, every)
			err := q.c.store.KeepAlive(ctx, q.name, ids, q.c.cfg.WaiterTTL)
			cancel()
			if err != nil {
				q.c.log.Warn("could not keep waiters queued; they may lose their place", "lock", q.name, "err", err)
			}
		}
		q.mu.Lock()
		if !q.closed {
			q.armKeepAlive()
		}
		q.mu.Unlock()
	})
}

// queueLinger is how long an empty queue (and its subscription to wakes)
// is kept for the next waiter: a lock in steady use would otherwise
// subscribe and unsubscribe around every acquisition.
const queueLinger = time.Second

// closeIfEmpty ends the queue a while after its last waiter has left. q.mu
// is held.
func (q *queue) closeIfEmpty() {
	if len(q.waiters) > 0 || q.closed || q.linger != nil {
		return
	}
	q.poll.Stop()
	q.keep.Stop()
	q.poll, q.keep = nil, nil
	q.linger = q.c.work.AfterFunc(queueLinger, func() {
		q.mu.Lock()
		q.linger = nil
		closed := len(q.waiters) == 0 && !q.closed
		if closed {
			q.close()
		}
		q.mu.Unlock()
		if closed {
			q.forget(q)
		}
	})
	if q.linger == nil {
		q.close() // shutting down: no timers
	}
}

// close ends the queue and its watch. q.mu is held.
func (q *queue) close() {
	if q.closed {
		return
	}
	q.closed = true
	q.stopTimersLocked()
	if stop := q.stop; stop != nil {
		q.stop = nil
		q.c.work.GoOrRun(stop)
	}
}

// stopTimers disarms the queue's timers.
func (q *queue) stopTimers() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopTimersLocked()
}

func (q *queue) stopTimersLocked() {
	q.poll.Stop()
	q.keep.Stop()
	q.linger.Stop()
	q.poll, q.keep, q.linger = nil, nil, nil
}

// learn records the store's first waiter, unless a reply that saw the
// queue later has already spoken: replies on different connections arrive
// in any order. q.mu is held.
func (q *queue) learn(first string, seq int64) {
	if seq > q.firstAt {
		q.first, q.firstAt = first, seq
	}
}

// answerAll ends every waiter with err. It is how an upstream reset ends
// the waits, whose places in the store's queue went with the old store.
func (q *queue) answerAll(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, w := range slices.Clone(q.waiters) {
		q.finish(w, outcome{err: err})
	}
}
