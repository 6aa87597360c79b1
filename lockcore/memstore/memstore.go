// Package memstore is lockproxy's embedded, in-process lock store: the store
// used when no upstream Redis is configured. Its locks are local to one
// process, so it gives mutual exclusion only among that sidecar's clients.
//
// It follows the Redis store's semantics exactly (the conformance suite in
// lockcore/storetest runs against both): fences come from the wall clock in
// microseconds, or the last fence + 1 when the clock has not moved past it,
// so they keep increasing across a restart of the process too; waiters
// queue in arrival order, and wakes go to watchers as Redis pub/sub would.
package memstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

// DefaultRetention is how long a fence is remembered after its lock was last
// used, so that fences keep increasing even if the wall clock steps back by
// less than this.
const DefaultRetention = time.Hour

// Options tune a Store. The zero value is usable.
type Options struct {
	Retention     time.Duration    // default DefaultRetention
	SweepInterval time.Duration    // how often forgotten names are dropped; default 10s
	Now           func() time.Time // for tests; default time.Now
}

// Store is an in-process lockcore.Store.
type Store struct {
	retention time.Duration
	now       func() time.Time

	mu       sync.Mutex
	names    map[string]*record             // guarded by mu
	seq      int64                          // guarded by mu; orders replies about queues
	watchers map[string]map[*watch]struct{} // guarded by mu
	wakes    chan func()                    // wake calls, run in order outside mu

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

// record is everything remembered about one name.
type record struct {
	token   string    // current holder; "" when free
	expires time.Time // when token lapses
	fence   int64     // last fence issued
	forget  time.Time // when the record may be dropped
	queue   []queued  // waiters in arrival order
}

type queued struct {
	waiter   string
	deadline time.Time // presumed dead after this
	nonce    string    // to grant it the lock
	ttl      time.Duration
}

type watch struct{ wake func(lockcore.Wake) }

var _ lockcore.Store = (*Store)(nil)

// New starts a Store, its sweeper and its wake dispatcher. Close stops them.
func New(opt Options) *Store {
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.SweepInterval <= 0 {
		opt.SweepInterval = 10 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Store{
		retention: opt.Retention,
		now:       opt.Now,
		names:     make(map[string]*record),
		watchers:  make(map[string]map[*watch]struct{}),
		wakes:     make(chan func(), 1024),
		stop:      make(chan struct{}),
	}
	s.done.Add(2)
	go s.sweep(opt.SweepInterval)
	go s.dispatch()
	return s
}

// held returns the live holder's token of r at now, or "".
func (r *record) held(now time.Time) string {
	if r == nil || r.token == "" || !now.Before(r.expires) {
		return ""
	}
	return r.token
}

// liveHead drops dead waiters from the front and returns the first live one.
func (r *record) liveHead(now time.Time) string {
	for len(r.queue) > 0 {
		if !now.After(r.queue[0].deadline) {
			return r.queue[0].waiter
		}
		r.queue = r.queue[1:]
	}
	return ""
}

func (r *record) enqueue(req lockcore.AcquireRequest, now time.Time) {
	if req.Waiter == "" {
		return
	}
	deadline := now.Add(req.WaiterTTL)
	for i := range r.queue {
		if r.queue[i].waiter == req.Waiter {
			r.queue[i].deadline = deadline
			return
		}
	}
	r.queue = append(r.queue, queued{waiter: req.Waiter, deadline: deadline, nonce: req.Nonce, ttl: req.TTL})
	r.forget = maxTime(r.forget, deadline)
}

func (r *record) dequeue(waiter string) (wasFirst bool) {
	for i := range r.queue {
		if r.queue[i].waiter == waiter {
			r.queue = slices.Delete(r.queue, i, i+1)
			return i == 0
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// next returns the next reply sequence number. s.mu is held.
func (s *Store) next() int64 {
	s.seq++
	return s.seq
}

// record returns name's record, creating it.
func (s *Store) record(name string) *record {
	r := s.names[name]
	if r == nil {
		r = &record{}
		s.names[name] = r
	}
	return r
}

// grant gives r to nonce with a fresh fence.
func (s *Store) grant(r *record, now time.Time, nonce string, ttl time.Duration) string {
	fence := now.UnixMicro()
	if r.fence >= fence {
		fence = r.fence + 1
	}
	r.fence = fence
	r.token = lockcore.FormatToken(fence, nonce)
	s.extend(r, now, ttl)
	return r.token
}

func (s *Store) extend(r *record, now time.Time, ttl time.Duration) {
	r.expires = now.Add(ttl)
	r.forget = maxTime(r.forget, r.expires.Add(s.retention))
}

// wakeLocked queues a wake for name's watchers. s.mu must be held.
func (s *Store) wakeLocked(name string, wake lockcore.Wake) {
	for w := range s.watchers[name] {
		select {
		case s.wakes <- func() { w.wake(wake) }:
		default:
			// The dispatcher is far behind; as with a lost pub/sub message,
			// the waiters' polling covers it.
		}
	}
}

// Acquire implements lockcore.Store.
func (s *Store) Acquire(ctx context.Context, req lockcore.AcquireRequest) (lockcore.Grant, error) {
	if err := ctx.Err(); err != nil {
		return lockcore.Grant{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.record(req.Name)
	if cur := r.held(now); cur != "" {
		if lockcore.TokenMatches(cur, ":"+req.Nonce) {
			s.extend(r, now, req.TTL)
			r.dequeue(req.Waiter)
			return lockcore.Grant{Acquired: true, Token: cur, First: r.liveHead(now), Seq: s.next()}, nil
		}
		r.enqueue(req, now)
		return lockcore.Grant{HolderTTL: r.expires.Sub(now), First: r.liveHead(now), Seq: s.next()}, nil
	}
	if head := r.liveHead(now); head != "" && head != req.Waiter {
		r.enqueue(req, now)
		s.wakeLocked(req.Name, lockcore.Wake{Waiter: head})
		return lockcore.Grant{Head: head, First: head, Seq: s.next()}, nil
	}
	r.dequeue(req.Waiter)
	token := s.grant(r, now, req.Nonce, req.TTL)
	return lockcore.Grant{Acquired: true, Token: token, First: r.liveHead(now), Seq: s.next()}, nil
}

// Transfer implements lockcore.Store.
func (s *Store) Transfer(ctx context.Context, req lockcore.TransferRequest) (lockcore.Transferred, error) {
	if err := ctx.Err(); err != nil {
		return lockcore.Transferred{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.names[req.Name]
	cur := r.held(now)
	if cur != "" && cur == req.To {
		return lockcore.Transferred{OK: true, First: r.liveHead(now), Seq: s.next()}, nil // a repeat
	}
	fence, _, ok := lockcore.ParseToken(req.To)
	if cur == "" || cur != req.From || !ok || r.fence >= fence {
		return lockcore.Transferred{Seq: s.next()}, nil
	}
	r.fence, r.token = fence, req.To
	s.extend(r, now, req.TTL)
	r.dequeue(req.Waiter)
	return lockcore.Transferred{OK: true, First: r.liveHead(now), Seq: s.next()}, nil
}

// Renew implements lockcore.Store.
func (s *Store) Renew(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.names[name]
	cur := r.held(now)
	if cur == "" || !lockcore.TokenMatches(cur, token) {
		return false, nil
	}
	s.extend(r, now, ttl)
	return true, nil
}

// Release implements lockcore.Store. An in-process call cannot lose its
// reply, so unlike the Redis store it never repeats one.
func (s *Store) Release(ctx context.Context, req lockcore.ReleaseRequest) (lockcore.Released, error) {
	if err := ctx.Err(); err != nil {
		return lockcore.Released{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.release(req), nil
}

func (s *Store) release(req lockcore.ReleaseRequest) lockcore.Released {
	now := s.now()
	r := s.names[req.Name]
	cur := r.held(now)
	if cur == "" || !lockcore.TokenMatches(cur, req.Token) {
		return lockcore.Released{}
	}
	r.token = ""
	r.forget = maxTime(r.forget, now.Add(s.retention))
	head := r.liveHead(now)
	switch {
	case head == "":
		return lockcore.Released{Released: true, Seq: s.next()}
	case req.Next != nil && head == req.Next.Waiter:
		r.dequeue(head)
		token := s.grant(r, now, req.Next.Nonce, req.Next.TTL)
		return lockcore.Released{Released: true, Next: token, First: r.liveHead(now), Seq: s.next()}
	case req.GrantTTL > 0 && !strings.HasPrefix(head, req.Self):
		q := r.queue[0]
		r.dequeue(head)
		ttl := min(q.ttl, req.GrantTTL)
		token := s.grant(r, now, q.nonce, ttl)
		first, seq := r.liveHead(now), s.next()
		s.wakeLocked(req.Name, lockcore.Wake{Waiter: head, Token: token, TTL: ttl, First: first, Seq: seq})
		return lockcore.Released{Released: true, First: first, Seq: seq}
	default:
		s.wakeLocked(req.Name, lockcore.Wake{Waiter: head})
		return lockcore.Released{Released: true, First: head, Seq: s.next()}
	}
}

// ReleaseAll implements lockcore.Store.
func (s *Store) ReleaseAll(ctx context.Context, reqs []lockcore.ReleaseRequest) ([]lockcore.Released, error) {
	if err := ctx.Err(); err != nil {
		return make([]lockcore.Released, len(reqs)), err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]lockcore.Released, len(reqs))
	for i, req := range reqs {
		out[i] = s.release(req)
	}
	return out, nil
}

// Leave implements lockcore.Store.
func (s *Store) Leave(ctx context.Context, name, waiter string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.names[name]
	if r == nil || !r.dequeue(waiter) {
		return nil
	}
	now := s.now()
	if r.held(now) == "" {
		if head := r.liveHead(now); head != "" {
			s.wakeLocked(name, lockcore.Wake{Waiter: head})
		}
	}
	return nil
}

// KeepAlive implements lockcore.Store.
func (s *Store) KeepAlive(ctx context.Context, name string, waiters []string, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.names[name]
	if r == nil {
		return nil
	}
	deadline := s.now().Add(ttl)
	for i := range r.queue {
		if slices.Contains(waiters, r.queue[i].waiter) {
			r.queue[i].deadline = deadline
			r.forget = maxTime(r.forget, deadline)
		}
	}
	return nil
}

// Watch implements lockcore.Store.
func (s *Store) Watch(ctx context.Context, name string, wake func(lockcore.Wake)) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watch{wake: wake}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watchers[name] == nil {
		s.watchers[name] = make(map[*watch]struct{})
	}
	s.watchers[name][w] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.watchers[name], w)
			if len(s.watchers[name]) == 0 {
				delete(s.watchers, name)
			}
		})
	}, nil
}

// Inspect implements lockcore.Store.
func (s *Store) Inspect(ctx context.Context, name string) (lockcore.State, error) {
	if err := ctx.Err(); err != nil {
		return lockcore.State{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.names[name]
	if r == nil || !now.Before(r.forget) {
		return lockcore.State{}, nil
	}
	st := lockcore.State{Fence: r.fence, Queued: len(r.queue)}
	if cur := r.held(now); cur != "" {
		st.Held, st.Token, st.TTL = true, cur, r.expires.Sub(now)
		st.Fence, _, _ = lockcore.ParseToken(cur)
	}
	return st, nil
}

// Health implements lockcore.Store: the embedded store lives and dies with
// its process, so it never restarts under a running sidecar.
func (s *Store) Health(ctx context.Context) (lockcore.Health, error) {
	return lockcore.Health{ID: "embedded"}, ctx.Err()
}

// Accept implements lockcore.Store; the embedded store is always the same.
func (s *Store) Accept(string) {}

// AnnounceQuiet implements lockcore.Store; there is nobody to tell.
func (s *Store) AnnounceQuiet(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// Risks implements lockcore.Store: nothing evicts or forgets its locks
// while its process runs.
func (s *Store) Risks(ctx context.Context) ([]lockcore.Risk, error) { return nil, ctx.Err() }

// Close stops the sweeper and the dispatcher. It is safe to call more than once.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.done.Wait()
	return nil
}

// Len reports how many names the store remembers; tests use it to show
// that memory does not grow with names nobody uses any more.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.names)
}

// Sweep drops every record that has outlived its lock, its waiters and its
// retention.
func (s *Store) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for name, r := range s.names {
		if r.held(now) == "" && r.liveHead(now) == "" && !now.Before(r.forget) {
			delete(s.names, name)
		}
	}
}

func (s *Store) sweep(every time.Duration) {
	defer s.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

// dispatch runs wakes in order outside the store's lock, as a subscriber
// connection would deliver them.
func (s *Store) dispatch() {
	defer s.done.Done()
	for {
		select {
		case <-s.stop:
			return
		case fn := <-s.wakes:
			fn()
		}
	}
}
