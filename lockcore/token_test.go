package lockcore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/clocktest"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
)

// Never two believers: whatever another connection does with a lock's
// token, nobody is granted the name while the holder's session still lists
// it. These run on sidecars (Locks) sharing one store; cmd/lockproxy's
// believers_test.go runs the same through the wire.

// waitFor is what an acquire with WAIT returned.
type waitFor struct {
	token string
	err   error
}

func startWaiter(s *lockcore.Session, name string, wait time.Duration) <-chan waitFor {
	done := make(chan waitFor, 1)
	go func() {
		tok, err := s.Acquire(context.Background(), name, lockcore.AcquireOptions{TTL: time.Minute, Wait: wait})
		done <- waitFor{tok, err}
	}()
	return done
}

// A foreign RELEASE ends the holder's lease, and tells it, before the lock
// can be granted, on one sidecar and across two (the holder's sidecar,
// told by the store, ends the lease and then releases).
func TestForeignReleaseRevokes(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		a, ca := sidecar(lockcore.Config{})
		b, _ := sidecar(lockcore.Config{})
		for _, tc := range []struct {
			name     string
			releaser *lockcore.Locks
		}{{"same sidecar", a}, {"other sidecar", b}} {
			t.Run(tc.name, func(t *testing.T) {
				name := "revoke/" + tc.name
				ev := newLostEvents(lockcore.SystemClock{})
				holder := a.NewSession(ev.onLost)
				tok := acquire(t, holder, name, lockcore.AcquireOptions{TTL: time.Minute})
				waiter := tc.releaser.NewSession(nil)
				got := startWaiter(waiter, name, 10*time.Second)
				waitUntil(t, func() bool { return tc.releaser.Waiters(name) == 1 })
				if ok, err := tc.releaser.NewSession(nil).Release(context.Background(), name, tok); !ok || err != nil {
					t.Fatalf("foreign Release = %v, %v; want true", ok, err)
				}
				w := <-got
				if w.err != nil || w.token == "" {
					t.Fatalf("waiter = %+v, want the lock", w)
				}
				if held := holder.Held(); len(held) != 0 {
					t.Errorf("the holder still lists %v after the waiter got the lock", held)
				}
				ev.wait(t)
				if st, _ := ca.Inspect(context.Background(), name); st.Token != w.token {
					t.Errorf("store holder %q, want the waiter's %q", st.Token, w.token)
				}
				if ok, _ := tc.releaser.NewSession(nil).Release(context.Background(), name, tok); ok {
					t.Error("a second foreign Release = true; want false")
				}
				if ok, _ := holder.Renew(context.Background(), name, time.Minute, ""); ok {
					t.Error("the holder renewed a lock another connection released")
				}
			})
		}
	})
}

// A foreign RENEW may lengthen a lease, never shorten it: the holder
// keeps its lock, and nobody else gets it.
func TestForeignRenewNeverShortens(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		a, ca := sidecar(lockcore.Config{})
		b, _ := sidecar(lockcore.Config{})
		holder := a.NewSession(nil)
		tok := acquire(t, holder, "renewed", lockcore.AcquireOptions{TTL: time.Minute})
		for _, l := range []*lockcore.Locks{a, b} {
			if ok, err := l.NewSession(nil).Renew(context.Background(), "renewed", 10*time.Millisecond, tok); !ok || err != nil {
				t.Fatalf("foreign Renew = %v, %v; want true", ok, err)
			}
		}
		if st, _ := ca.Inspect(context.Background(), "renewed"); st.TTL < 30*time.Second {
			t.Errorf("ttl %v after foreign renewals of 10ms: shortened", st.TTL)
		}
		if tok, _ := b.NewSession(nil).Acquire(context.Background(), "renewed", lockcore.AcquireOptions{Wait: 50 * time.Millisecond}); tok != "" {
			t.Errorf("another client got the lock the holder still lists")
		}
		if !slices.Equal(holder.Held(), []string{"renewed"}) {
			t.Errorf("holder lists %v", holder.Held())
		}
	})
}

// deafStore never tells its sidecar of revocations: as when the holder's
// sidecar cannot be reached.
type deafStore struct{ lockcore.Store }

func (deafStore) WatchRevokes(context.Context, string, func(name, token string)) (func(), error) {
	return func() {}, nil
}

// When the holder's sidecar is not told, the lock stays taken until the
// holder's next renewal finds it revoked, or its ttl runs out (a
// lock-delay): never while the holder may still list it.
func TestRevokeUnheardIsALockDelay(t *testing.T) {
	clock := clocktest.New(time.Now())
	mem := memstore.New(memstore.Options{Now: clock.Now})
	defer mem.Close()
	a := mustNew(t, deafStore{sharedStore{mem}}, lockcore.Config{Clock: clock})
	b := mustNew(t, sharedStore{mem}, lockcore.Config{Clock: clock})
	defer shutdown(t, a, b)
	ev := newLostEvents(clock)
	holder := a.NewSession(ev.onLost)
	const ttl = time.Second
	tok := acquire(t, holder, "deaf", lockcore.AcquireOptions{TTL: ttl})
	if ok, err := b.NewSession(nil).Release(context.Background(), "deaf", tok); !ok || err != nil {
		t.Fatalf("foreign Release = %v, %v", ok, err)
	}
	other := b.NewSession(nil)
	for range 2 {
		if tok, _ := other.Acquire(context.Background(), "deaf", lockcore.AcquireOptions{}); tok != "" {
			t.Fatal("granted while the holder, never told, still lists it")
		}
		if !slices.Contains(holder.Held(), "deaf") {
			t.Fatal("the holder was told, through a store that tells nothing")
		}
		clock.Advance(ttl / 4)
	}
	// Its renewal, at half the ttl, finds the lock revoked.
	lostAt := ev.advanceUntilLost(t, clock, holder, "deaf", 10*time.Millisecond, ttl)
	if lostAt.Sub(clock.Now()) > 0 {
		t.Fatal("impossible")
	}
	waitUntil(t, func() bool { st, _ := mem.Inspect(context.Background(), "deaf"); return !st.Held })
	if tok, err := other.Acquire(context.Background(), "deaf", lockcore.AcquireOptions{}); tok == "" || err != nil {
		t.Errorf("after the holder let go: %q, %v; want the lock", tok, err)
	}
}

func shutdown(t *testing.T, ls ...*lockcore.Locks) {
	t.Helper()
	for _, l := range ls {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
	}
}

// A holder that never reads its pushes does not hold up a release by its
// token for longer than it takes to give up on the push.
func TestStuckHolderDoesNotHoldUpRelease(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	stuck := make(chan struct{})
	defer close(stuck)
	var pushes sync.WaitGroup
	pushes.Add(1)
	holder := l.NewSession(func(string, string) { pushes.Done(); <-stuck })
	tok := acquire(t, holder, "stuck", lockcore.AcquireOptions{TTL: time.Minute})
	done := make(chan error, 1)
	go func() {
		ok, err := l.NewSession(nil).Release(context.Background(), "stuck", tok)
		if !ok && err == nil {
			err = errors.New("not released")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the release waited on a holder that does not read its pushes")
	}
	pushes.Wait() // it was told all the same
	if st, _ := f.Store.Inspect(context.Background(), "stuck"); st.Held {
		t.Error("still held")
	}
}

// Detached locks count against MaxDetached until they are released here or
// their ttl runs out, whether or not their connection is still open.
func TestMaxDetached(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{MaxDetached: 2})
	s := l.NewSession(nil)
	d1 := acquire(t, s, "d1", lockcore.AcquireOptions{TTL: time.Minute, Detached: true})
	acquire(t, s, "d2", lockcore.AcquireOptions{TTL: time.Second, Detached: true})
	acquire(t, s, "owned", lockcore.AcquireOptions{TTL: time.Minute}) // owned locks do not count
	if _, err := s.Acquire(context.Background(), "d3", lockcore.AcquireOptions{Detached: true}); !errors.Is(err, lockcore.ErrTooManyDetached) {
		t.Fatalf("third detached lock: %v, want ErrTooManyDetached", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := l.NewSession(nil)
	if _, err := s2.Acquire(context.Background(), "d3", lockcore.AcquireOptions{Detached: true}); !errors.Is(err, lockcore.ErrTooManyDetached) {
		t.Fatalf("after their connection closed: %v, want ErrTooManyDetached: the locks are still held", err)
	}
	if n := l.Stats().Detached; n != 2 {
		t.Errorf("Stats.Detached = %d, want 2", n)
	}
	if ok, err := s2.Release(context.Background(), "d1", d1); !ok || err != nil {
		t.Fatal(ok, err)
	}
	acquire(t, s2, "d3", lockcore.AcquireOptions{TTL: time.Minute, Detached: true})
	f.clock.Advance(time.Second) // d2's ttl runs out
	if n := l.Stats().Detached; n != 1 {
		t.Errorf("Stats.Detached = %d after d2 expired, want 1", n)
	}
	acquire(t, s2, "d4", lockcore.AcquireOptions{TTL: time.Minute, Detached: true})
}
