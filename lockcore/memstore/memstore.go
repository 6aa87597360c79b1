// Package memstore is lockproxy's embedded, in-process lock store: the store
// used when no upstream Redis is configured. Its locks are local to one
// process, so it gives mutual exclusion only among that sidecar's clients.
//
// It follows the Redis store's semantics exactly (the conformance suite in
// lockcore/storetest runs against both): fences come from the wall clock in
// microseconds, or the last fence + 1 when the clock has not moved past it,
// so they keep increasing across a restart of the process too.
package memstore

import (
	"context"
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

	mu    sync.Mutex
	names map[string]*record // guarded by mu

	stop      chan struct{}
	stopOnce  sync.Once
	sweepDone chan struct{}
}

// record is everything remembered about one name.
type record struct {
	token   string    // current holder; "" when free
	expires time.Time // when token lapses
	fence   int64     // last fence issued
	forget  time.Time // when the record may be dropped
}

var _ lockcore.Store = (*Store)(nil)

// New starts a Store and its sweeper. Close stops the sweeper.
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
		stop:      make(chan struct{}),
		sweepDone: make(chan struct{}),
	}
	go s.sweep(opt.SweepInterval)
	return s
}

// held returns the live holder's token of r at now, or "".
func (r *record) held(now time.Time) string {
	if r == nil || r.token == "" || !now.Before(r.expires) {
		return ""
	}
	return r.token
}

// Acquire implements lockcore.Store.
func (s *Store) Acquire(ctx context.Context, name, nonce string, ttl time.Duration) (lockcore.Grant, error) {
	if err := ctx.Err(); err != nil {
		return lockcore.Grant{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.names[name]
	if cur := r.held(now); cur != "" {
		if !lockcore.TokenMatches(cur, ":"+nonce) {
			return lockcore.Grant{HolderTTL: r.expires.Sub(now)}, nil
		}
		s.extend(r, now, ttl)
		return lockcore.Grant{Acquired: true, Token: cur}, nil
	}
	if r == nil {
		r = &record{}
		s.names[name] = r
	}
	fence := now.UnixMicro()
	if r.fence >= fence {
		fence = r.fence + 1
	}
	r.fence = fence
	r.token = lockcore.FormatToken(fence, nonce)
	s.extend(r, now, ttl)
	return lockcore.Grant{Acquired: true, Token: r.token}, nil
}

func (s *Store) extend(r *record, now time.Time, ttl time.Duration) {
	r.expires = now.Add(ttl)
	r.forget = r.expires.Add(s.retention)
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
// reply, so unlike the Redis store it never needs to recognise a retry.
func (s *Store) Release(ctx context.Context, name, token string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.release(name, token), nil
}

func (s *Store) release(name, token string) bool {
	now := s.now()
	r := s.names[name]
	cur := r.held(now)
	if cur == "" || !lockcore.TokenMatches(cur, token) {
		return false
	}
	r.token = ""
	r.forget = now.Add(s.retention)
	return true
}

// ReleaseAll implements lockcore.Store.
func (s *Store) ReleaseAll(ctx context.Context, locks []lockcore.Held) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range locks {
		s.release(l.Name, l.Token)
	}
	return nil
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
	st := lockcore.State{Fence: r.fence}
	if cur := r.held(now); cur != "" {
		st.Held, st.Token, st.TTL = true, cur, r.expires.Sub(now)
		st.Fence, _, _ = lockcore.ParseToken(cur)
	}
	return st, nil
}

// Ping implements lockcore.Store; the embedded store is always up.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

// Close stops the sweeper. It is safe to call more than once.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.sweepDone
	return nil
}

// Len reports how many names the store remembers; tests use it to show
// that memory does not grow with names nobody uses any more.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.names)
}

// Sweep drops every record that has outlived its lock and its retention.
func (s *Store) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for name, r := range s.names {
		if r.held(now) == "" && !now.Before(r.forget) {
			delete(s.names, name)
		}
	}
}

func (s *Store) sweep(every time.Duration) {
	defer close(s.sweepDone)
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
