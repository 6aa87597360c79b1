package lockcore

import (
	"container/heap"
	"sync"
	"time"
)

// detachedSet is the detached locks this sidecar granted that may still be
// held, whether or not the connection that took them is still open: until
// its ttl runs out, or it is released or revoked through this sidecar.
// Config.MaxDetached bounds it, so that no client can pin the upstream's
// memory with locks that outlive every connection.
type detachedSet struct {
	c *core

	mu       sync.Mutex
	expires  map[string]time.Time // guarded by mu; token → end of its ttl as last set here
	names    map[string]string    // guarded by mu; token → lock name
	order    expiryHeap           // guarded by mu; may hold stale entries, skipped when popped
	reserved int                  // guarded by mu; slots taken by acquires in flight
	sweep    *task                // guarded by mu; armed for the earliest expiry
	sweepAt  time.Time            // guarded by mu; when sweep fires
	armed    int                  // guarded by mu; counts armings, so a superseded sweep knows it is one
}

func newDetachedSet(c *core) *detachedSet {
	return &detachedSet{c: c, expires: make(map[string]time.Time), names: make(map[string]string)}
}

// reserve takes a slot for a detached acquire, or fails with
// ErrTooManyDetached when Config.MaxDetached are taken. The caller gives
// the slot back with add (granted) or unreserve (not).
func (d *detachedSet) reserve() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweepLocked(d.c.now())
	if limit := d.c.cfg.MaxDetached; limit > 0 && len(d.expires)+d.reserved >= limit {
		return ErrTooManyDetached
	}
	d.reserved++
	return nil
}

func (d *detachedSet) unreserve() {
	d.mu.Lock()
	d.reserved--
	d.mu.Unlock()
}

// add turns a reserved slot into name's lock token, held until expires.
func (d *detachedSet) add(name, token string, expires time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reserved--
	if _, ok := d.expires[token]; !ok {
		d.c.obs.DetachedChanged(1)
	}
	d.expires[token] = expires
	d.names[token] = name
	heap.Push(&d.order, expiry{expires, token})
	d.armLocked()
}

// extend records that token's lock may now be held until expires, if it
// is one of the set's.
func (d *detachedSet) extend(token string, expires time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.expires[token]; ok && expires.After(old) {
		d.expires[token] = expires
		heap.Push(&d.order, expiry{expires, token})
	}
}

// remove takes token out: released, revoked or known to be gone.
func (d *detachedSet) remove(token string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.expires[token]; ok {
		delete(d.expires, token)
		delete(d.names, token)
		d.c.obs.DetachedChanged(-1)
	}
}

// detachedLock is one lock of the set, as list gives it.
type detachedLock struct {
	name, token string
	at          time.Time // the end of its ttl as last set here
}

// list is the set's locks.
func (d *detachedSet) list() []detachedLock {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]detachedLock, 0, len(d.expires))
	for token, at := range d.expires {
		out = append(out, detachedLock{d.names[token], token, at})
	}
	return out
}

// has reports whether token is one of the set's.
func (d *detachedSet) has(token string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.expires[token]
	return ok
}

// len is how many detached locks the set counts.
func (d *detachedSet) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.expires)
}

// sweepLocked drops the locks whose ttl has run out. d.mu is held.
func (d *detachedSet) sweepLocked(now time.Time) {
	for len(d.order) > 0 && !d.order[0].at.After(now) {
		e := heap.Pop(&d.order).(expiry)
		if at, ok := d.expires[e.token]; ok && !at.After(now) {
			delete(d.expires, e.token)
			delete(d.names, e.token)
			d.c.obs.DetachedChanged(-1)
		}
	}
	if len(d.expires) == 0 {
		d.order = nil // let a burst's backing array go
	}
}

// armLocked schedules a sweep at the earliest expiry, so that the count
// (and its gauge) drops as locks run out, not only when a new one is asked
// for. d.mu is held.
func (d *detachedSet) armLocked() {
	if len(d.order) == 0 || (d.sweep != nil && !d.order[0].at.Before(d.sweepAt)) {
		return
	}
	d.sweep.Stop()
	d.armed++
	armed := d.armed
	d.sweepAt = d.order[0].at
	d.sweep = d.c.work.AfterFunc(d.sweepAt.Sub(d.c.now()), func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.armed != armed {
			return // stopped too late: a later arming has replaced it
		}
		d.sweep = nil
		d.sweepLocked(d.c.now())
		d.armLocked()
	})
}

// stop disarms the sweep.
func (d *detachedSet) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweep.Stop()
	d.sweep = nil
}

type expiry struct {
	at    time.Time
	token string
}

// expiryHeap orders expiries, earliest first (container/heap).
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
