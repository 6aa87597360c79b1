// Package memstore is lockproxy's embedded, in-process lock store: the store
// used when no upstream Redis is configured. Its locks are local to one
// process, so it gives mutual exclusion only among that sidecar's clients.
//
// It follows the Redis store's semantics (the conformance suite in
// lockcore/storetest runs against both): waiters queue in arrival order,
// and wakes go to watchers as Redis pub/sub would. Fences come from one
// counter for the whole store: the wall clock in microseconds, or the last
// fence + 1 when the clock has not moved past it, so they keep increasing
// across a restart of the process too, and nothing needs to be kept for a
// name once its lock is free and nobody waits for it.
package memstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

// Options tune a Store. The zero value is usable.
type Options struct {
	SweepInterval time.Duration    // how often expired names are dropped; default 10s
	Now           func() time.Time // for tests; default time.Now
}

// Store is an in-process lockcore.Store.
type Store struct {
	now func() time.Time

	mu       sync.Mutex
	names    map[string]*record             // guarded by mu; names held or waited for
	fence    int64                          // guarded by mu; the last fence issued, for any name
	seq      int64                          // guarded by mu; orders replies about queues
	watchers map[string]map[*watch]struct{} // guarded by mu; by name
	revokes  map[string]map[*watch]struct{} // guarded by mu; by sidecar id
	wakes    chan func()                    // wake calls, run in order outside mu

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

// record is one name that is held or waited for.
type record struct {
	token   string    // current holder; "" when free
	expires time.Time // when token lapses
	queue   []queued  // waiters in arrival order
	// When held by many (see kinds.go): their permits, by nonce, and what
	// they hold it as.
	permits map[string]*permit
	kind    lockcore.Kind
}

type queued struct {
	waiter   string
	deadline time.Time // presumed dead after this
	nonce    string    // to grant it the lock
	ttl      time.Duration
	kind     lockcore.Kind
}

type watch struct {
	wake   func(lockcore.Wake)
	revoke func(name, token string)
}

var (
	_ lockcore.Store    = (*Store)(nil)
	_ lockcore.Upstream = (*Store)(nil)
)

// New starts a Store, its sweeper and its wake dispatcher. Close stops them.
func New(opt Options) *Store {
	if opt.SweepInterval <= 0 {
		opt.SweepInterval = 10 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Store{
		now:      opt.Now,
		names:    make(map[string]*record),
		watchers: make(map[string]map[*watch]struct{}),
		revokes:  make(map[string]map[*watch]struct{}),
		wakes:    make(chan func(), 1024),
		stop:     make(chan struct{}),
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

// idle reports whether r can be forgotten: free, and nobody waits.
func (r *record) idle(now time.Time) bool {
	r.prune(now)
	return r.held(now) == "" && len(r.permits) == 0 && r.liveHead(now) == ""
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
	r.queue = append(r.queue, queued{waiter: req.Waiter, deadline: deadline, nonce: req.Nonce, ttl: req.TTL, kind: req.Kind})
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

// next returns the next reply sequence number. s.mu is held.
func (s *Store) next() int64 {
	s.seq++
	return s.seq
}

// record returns name's record, creating it. s.mu is held.
func (s *Store) record(name string) *record {
	r := s.names[name]
	if r == nil {
		r = &record{}
		s.names[name] = r
	}
	return r
}

// tidy forgets name if its record is idle. s.mu is held.
func (s *Store) tidy(name string, r *record, now time.Time) {
	if r != nil && r.idle(now) {
		delete(s.names, name)
	}
}

// grant gives r to nonce with a fresh fence. s.mu is held.
func (s *Store) grant(r *record, now time.Time, nonce string, ttl time.Duration) string {
	s.fence = max(now.UnixMicro(), s.fence+1)
	r.token = lockcore.FormatToken(s.fence, nonce)
	r.expires = now.Add(ttl)
	return r.token
}

// wakeLocked queues a wake for name's watchers. s.mu is held.
func (s *Store) wakeLocked(name string, wake lockcore.Wake) {
	for w := range s.watchers[name] {
		s.post(func() { w.wake(wake) })
	}
}

// post queues fn for the dispatcher. s.mu is held.
func (s *Store) post(fn func()) {
	select {
	case s.wakes <- fn:
	default:
		// The dispatcher is far behind; as with a lost pub/sub message,
		// the waiters' polling (and the holders' renewals) cover it.
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
	r.prune(now)
	if p := r.permits[req.Nonce]; p != nil && !p.revoked {
		// Its own permit, as it is (see below).
		r.dequeue(req.Waiter)
		return lockcore.Grant{Acquired: true, Token: p.token(req.Nonce), TTL: p.expires.Sub(now), First: r.liveHead(now), Seq: s.next()}, nil
	}
	if cur := r.held(now); cur != "" {
		if lockcore.TokenMatches(cur, ":"+req.Nonce) {
			// Its own grant, as it is: not extended, since its sidecar may
			// never have learned of it.
			r.dequeue(req.Waiter)
			return lockcore.Grant{Acquired: true, Token: cur, TTL: r.expires.Sub(now), First: r.liveHead(now), Seq: s.next()}, nil
		}
		if !req.Kind.Family(lockcore.Kind{}) {
			return lockcore.Grant{Mismatch: true, Seq: s.next()}, nil
		}
		r.enqueue(req, now)
		return lockcore.Grant{HolderTTL: r.expires.Sub(now), First: r.liveHead(now), Seq: s.next()}, nil
	}
	if !req.Kind.Exclusive() || len(r.permits) > 0 {
		return s.acquireMany(r, req, now), nil
	}
	if k, ok := r.firstKind(now, req.Waiter); ok && !k.Family(req.Kind) {
		return lockcore.Grant{Mismatch: true, HeldAs: k, Seq: s.next()}, nil
	}
	if head := r.liveHead(now); head != "" && head != req.Waiter {
		r.enqueue(req, now)
		s.wakeLocked(req.Name, lockcore.Wake{Waiter: head})
		return lockcore.Grant{Head: head, First: head, Seq: s.next()}, nil
	}
	r.dequeue(req.Waiter)
	token := s.grant(r, now, req.Nonce, req.TTL)
	return lockcore.Grant{Acquired: true, Token: token, TTL: req.TTL, First: r.liveHead(now), Seq: s.next()}, nil
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
	// To's fence is From's + 1: above every fence this name had, since
	// From holds it. The counter may be past it, for other names.
	fence, _, ok := lockcore.ParseToken(req.To)
	if cur == "" || cur != req.From || !ok {
		return lockcore.Transferred{Seq: s.next()}, nil
	}
	s.fence, r.token, r.expires = max(s.fence, fence), req.To, now.Add(req.TTL)
	r.dequeue(req.Waiter)
	return lockcore.Transferred{OK: true, First: r.liveHead(now), Seq: s.next()}, nil
}

// Renew implements lockcore.Store.
func (s *Store) Renew(ctx context.Context, req lockcore.RenewRequest) (lockcore.Renewed, error) {
	if err := ctx.Err(); err != nil {
		return lockcore.Renewed{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.names[req.Name]
	if r != nil && len(r.permits) > 0 {
		r.prune(now)
		return s.renewPermit(r, req, now), nil
	}
	cur := r.held(now)
	switch {
	case cur == "":
		return lockcore.Renewed{}, nil
	case cur == lockcore.RevokedToken(req.Token):
		return lockcore.Renewed{Revoked: true}, nil
	case !lockcore.TokenMatches(cur, req.Token):
		return lockcore.Renewed{}, nil
	}
	if expires := now.Add(req.TTL); !req.Foreign || expires.After(r.expires) {
		r.expires = expires
	}
	return lockcore.Renewed{OK: true}, nil
}

// Revoke implements lockcore.Store. The embedded store has one sidecar, so
// lockcore never revokes through it; it is here for the conformance suite.
func (s *Store) Revoke(ctx context.Context, req lockcore.RevokeRequest) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.names[req.Name]
	if r != nil && len(r.permits) > 0 {
		r.prune(s.now())
		return s.revokePermit(r, req), nil
	}
	if cur := r.held(s.now()); cur == "" || cur != req.Token {
		return false, nil
	}
	r.token = lockcore.RevokedToken(req.Token)
	for w := range s.revokes[req.Holder] {
		s.post(func() { w.revoke(req.Name, req.Token) })
	}
	return true, nil
}

// Notify implements lockcore.Store.
func (s *Store) Notify(ctx context.Context, sidecar, name, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.revokes[sidecar] {
		s.post(func() { w.revoke(name, token) })
	}
	return nil
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
	if r != nil && len(r.permits) > 0 {
		r.prune(now)
		return s.releasePermit(r, req, now)
	}
	cur := r.held(now)
	if cur == "" || !lockcore.TokenMatches(cur, req.Token) {
		return lockcore.Released{}
	}
	r.token = ""
	head := r.liveHead(now)
	switch {
	case head == "":
		delete(s.names, req.Name)
		return lockcore.Released{Released: true, Seq: s.next()}
	case !r.queue[0].kind.Exclusive():
		// Readers, or a semaphore's waiters: granted together, told by wakes.
		s.grantAdmitted(req.Name, r, now, req.GrantTTL)
		return lockcore.Released{Released: true, First: r.liveHead(now), Seq: s.next()}
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
		// One wake carries both: who is first, learned before the grant is
		// taken, as the Redis store's two messages arrive in that order.
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
	if r == nil || !slices.ContainsFunc(r.queue, func(q queued) bool { return q.waiter == waiter }) {
		return nil
	}
	wasFirst := r.dequeue(waiter)
	now := s.now()
	r.prune(now)
	if wasFirst || len(r.permits) > 0 {
		// Those it kept out may come in now.
		s.wakeAdmitted(name, r, now)
	}
	s.tidy(name, r, now)
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
		}
	}
	return nil
}

// Watch implements lockcore.Store.
func (s *Store) Watch(ctx context.Context, name string, wake func(lockcore.Wake)) (func(), error) {
	return s.subscribe(ctx, s.watchers, name, &watch{wake: wake})
}

// WatchRevokes implements lockcore.Store.
func (s *Store) WatchRevokes(ctx context.Context, id string, revoked func(name, token string)) (func(), error) {
	return s.subscribe(ctx, s.revokes, id, &watch{revoke: revoked})
}

// subscribe adds w to subs[key] until the returned stop.
func (s *Store) subscribe(ctx context.Context, subs map[string]map[*watch]struct{}, key string, w *watch) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if subs[key] == nil {
		subs[key] = make(map[*watch]struct{})
	}
	subs[key][w] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(subs[key], w)
			if len(subs[key]) == 0 {
				delete(subs, key)
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
	if r == nil {
		return lockcore.State{}, nil
	}
	st := lockcore.State{Queued: len(r.queue)}
	if r.prune(now); len(r.permits) > 0 {
		r.inspectMany(&st, now)
	}
	if cur := r.held(now); cur != "" {
		st.Held, st.Token, st.TTL = true, cur, r.expires.Sub(now)
		if token, ok := strings.CutSuffix(cur, "!"); ok && lockcore.RevokedToken(token) == cur {
			st.Token, st.Revoked = token, true
		}
		st.Fence, _, _ = lockcore.ParseToken(st.Token)
	}
	return st, nil
}

// List implements lockcore.Store: the names in order, as Inspect reports
// them.
func (s *Store) List(ctx context.Context, match func(string) bool, count int) ([]lockcore.Listed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.names))
	for name := range s.names {
		if match(name) {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	slices.Sort(names)
	var out []lockcore.Listed
	for _, name := range names {
		if len(out) >= count {
			break
		}
		st, err := s.Inspect(ctx, name)
		if err != nil {
			return out, err
		}
		if st.Held || st.Queued > 0 {
			out = append(out, lockcore.Listed{Name: name, State: st})
		}
	}
	return out, nil
}

// Health implements lockcore.Upstream: the embedded store lives and dies
// with its process, so it never restarts under a running sidecar.
func (s *Store) Health(ctx context.Context) (lockcore.Health, error) {
	return lockcore.Health{ID: "embedded", Data: "embedded", Outstanding: -1}, ctx.Err()
}

// Accept implements lockcore.Upstream; the embedded store is always the same.
func (s *Store) Accept(lockcore.Health) {}

// Invalidate implements lockcore.Upstream; the embedded store never loses
// its data while its process runs.
func (s *Store) Invalidate(ctx context.Context, _ string) error { return ctx.Err() }

// AnnounceQuiet implements lockcore.Upstream; there is nobody to tell.
func (s *Store) AnnounceQuiet(ctx context.Context, _ string, _ time.Duration) error { return ctx.Err() }

// Risks implements lockcore.Upstream: nothing evicts or forgets its locks
// while its process runs.
func (s *Store) Risks(ctx context.Context) ([]lockcore.Risk, error) { return nil, ctx.Err() }

// Persistence implements lockcore.Upstream: the store is the process.
func (s *Store) Persistence(ctx context.Context) (string, error) { return "embedded", ctx.Err() }

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

// Sweep drops every name whose lock has expired and for which nobody waits.
func (s *Store) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for name, r := range s.names {
		s.tidy(name, r, now)
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
