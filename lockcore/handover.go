package lockcore

import (
	"context"
	"sync"
	"time"
)

// Hand-offs: a release passing the lock straight to a waiter of this
// sidecar. Locally (handOver) the waiter is answered at once and a transfer
// tells the store behind it; through the store, a release grants it to the
// candidate in the same call (handedOff); and a release on another sidecar
// may grant it to one of ours, whose token comes in the wake
// (takeRemoteGrant).

// handover is a hand-off whose store call is still on its way: a local
// hand-over's transfer, or the renewal of a lock another sidecar granted.
type handover struct {
	done chan struct{} // closed when the store has answered
	ok   bool          // the new token holds the lock; set before done closes
	sent time.Time     // when the call was sent; set before done closes

	mu     sync.Mutex
	landed bool   // guarded by mu
	then   func() // guarded by mu; run once it has landed
}

func newHandover() *handover { return &handover{done: make(chan struct{})} }

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

// hasLanded reports whether the store has answered.
func (h *handover) hasLanded() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.landed
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

// wait waits for the store's answer, or ctx to end.
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

// handOverMargin is the least validity a lease must have left to be handed
// over locally; the transfer takes one round trip.
const handOverMargin = 10 * time.Millisecond

// handOver passes a valid lease's lock (token, valid until until) to the
// store's first waiter when that waiter is on this sidecar: the waiter is
// answered at once, with the next fence, and the store is told in the
// background. Nobody else can take the lock meanwhile: until the transfer
// lands the store holds it under the old token, which is still valid. It
// reports whether it handed the lock over; if not, release it as usual.
func (q *queue) handOver(token string, until time.Time) bool {
	fence, _, ok := ParseToken(token)
	now := q.c.now()
	// Keep a margin, so the transfer lands well within the old validity.
	if !ok || until.Sub(now) < handOverMargin {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	how := handOffLocal
	w := q.find(q.first)
	if w == nil || !w.ready() {
		// The store's first waiter is elsewhere, or not known: a local one
		// may still go first, a bounded number of times in a row.
		if w = q.firstReady(); w == nil || q.passes >= q.c.cfg.LocalHandoffs {
			return false
		}
		how = handOffLocalAhead
	}
	if !w.kind.Exclusive() {
		return false // a reader, or a semaphore's waiter: the store lets it in
	}
	ho := newHandover()
	to := FormatToken(fence+1, w.nonce)
	req := TransferRequest{Name: q.name, From: token, To: to, Waiter: w.id, TTL: w.ttl}
	// A try of the waiter's own may be on its way to the store, on another
	// connection. Reaching it after the new holder has released the lock,
	// it would take the lock anew for a waiter already answered; it reaches
	// it before, finding the lock held or the waiter's own, if the hand-off
	// lands only once that try is back.
	var try chan struct{}
	if q.trying == w {
		try = q.tryDone
	}
	if !q.c.work.Go(func() { q.transfer(req, until, ho, try) }) {
		return false
	}
	if how == handOffLocalAhead {
		q.passes++
	}
	q.c.countHandOff(how)
	q.first = "" // unknown until the store answers; older replies stay ignored
	// Readied last, the waiter runs next: the hand-off gap is the time until
	// its reply goes out, so it goes before the transfer and the releaser's.
	q.finish(w, outcome{g: grant{token: to, sent: now, until: earliest(until, validity(now, w.ttl)), handover: ho}})
	return true
}

// transfer tells the store of a local hand-over, which lands once that
// call, and try (the waiter's own call in flight, if any), are back. If
// the store refuses, or
// the call fails, the new holder's lease is lost (its session sees ho.ok
// false) and the old token, which nobody holds any more and which may
// still hold the lock, is given back.
func (q *queue) transfer(req TransferRequest, until time.Time, ho *handover, try <-chan struct{}) {
	ctx, cancel := q.c.until(context.Background(), until)
	sent := q.c.now()
	t, err := q.c.store.Transfer(ctx, req)
	cancel()
	switch {
	case err != nil:
		q.c.log.Warn("a local hand-over may not have reached the upstream; the new holder's lock is lost", "lock", req.Name, "err", err)
		q.releaseLater(req.From)
	case !t.OK:
		q.c.log.Warn("the upstream refused a local hand-over; the new holder's lock is lost", "lock", req.Name)
		q.releaseLater(req.From)
	default:
		q.mu.Lock()
		q.learn(t.First, t.Seq)
		q.mu.Unlock()
	}
	if try != nil {
		<-try
	}
	ho.land(err == nil && t.OK, sent)
}

// takeRemoteGrant answers w with the lock a release on another sidecar
// granted it, and renews the lock to w's own ttl behind it. It reports
// false, leaving w waiting, when the grant has too little validity left to
// vouch for: w's own try (same nonce) then takes it, with a validity of its
// own. q.mu is held.
func (q *queue) takeRemoteGrant(w *waiter, wk Wake) bool {
	// The grant happened after the last call that found w queued, so it
	// lasts at least TTL from when that call was sent.
	until := validity(w.seen, wk.TTL)
	if w.seen.IsZero() || until.Sub(q.c.now()) <= handOverMargin {
		return false
	}
	ho := newHandover()
	if !q.c.work.Go(func() { q.extend(wk.Token, w.ttl, until, ho) }) {
		return false
	}
	q.c.countHandOff(handOffRemote)
	q.finish(w, outcome{g: grant{token: wk.Token, sent: q.c.now(), until: until, handover: ho}})
	return true
}

// extend renews a lock that another sidecar's release granted with a
// short store ttl to its holder's own ttl; the holder's lease settles when
// it lands.
func (q *queue) extend(token string, ttl time.Duration, until time.Time, ho *handover) {
	ctx, cancel := q.c.until(context.Background(), until)
	sent := q.c.now()
	r, err := q.c.store.Renew(ctx, RenewRequest{Name: q.name, Token: token, TTL: ttl})
	cancel()
	if err != nil {
		q.c.log.Warn("could not renew a lock handed over from another sidecar; it is lost", "lock", q.name, "err", err)
	}
	if r.Revoked {
		q.releaseLater(RevokedToken(token))
	}
	ho.land(err == nil && r.OK, sent)
}

// candidate returns the first local waiter that the store has queued, to
// hand the lock to in the same step as its release. It is safe on a nil
// queue.
func (q *queue) candidate() (*waiter, *Candidate) {
	if q == nil {
		return nil, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if w := q.firstReady(); w != nil && w.kind.Exclusive() {
		// Readers and a semaphore's waiters take their own places.
		return w, &Candidate{Waiter: w.id, Nonce: w.nonce, TTL: w.ttl}
	}
	return nil, nil
}

// handedOff delivers what a release gave the candidate w, and records who
// the release left first in the store's queue. A release that freed the
// lock let the store's order choose who is next, so it ends a run of local
// hand-offs; one that freed nothing (a stale token, a waiter giving back a
// grant it never had) does not.
func (q *queue) handedOff(w *waiter, r Released, sent time.Time) {
	if q == nil {
		return
	}
	q.mu.Lock()
	q.learn(r.First, r.Seq)
	if r.Released {
		q.passes = 0
	}
	if w == nil {
		q.mu.Unlock()
		return
	}
	if r.Next == "" {
		if r.Repeated && w.waiting() {
			// An earlier send of the release may have granted w a lock whose
			// token we never saw; w's own try (same nonce) will find it.
			w.due = true
			q.pump()
		}
		q.mu.Unlock()
		return
	}
	until := validity(sent, w.ttl)
	giveBack := false
	switch {
	case w.state == answered && w.granted == r.Next:
		// Its own try already delivered this very grant.
	case !w.waiting():
		giveBack = true
	case !q.c.now().Before(until):
		giveBack = true
		q.finish(w, outcome{err: ErrTooSlow})
	default:
		q.c.countHandOff(handOffUpstream)
		q.finish(w, outcome{g: grant{token: r.Next, sent: sent, until: until}})
	}
	q.mu.Unlock()
	if giveBack {
		q.releaseLater(r.Next)
	}
}
