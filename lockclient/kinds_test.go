package lockclient_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockclient"
	"github.com/lockproxy/lockproxy/lockproxytest"
)

// infoErr says how LOCK.INFO differs from name held as kind by holders,
// with limit; nil if it does not.
func infoErr(ctx context.Context, c *lockclient.Client, name, kind string, holders, limit int) error {
	info, err := c.Info(ctx, name)
	if err != nil {
		return err
	}
	if info.Held != (holders > 0) || info.Kind != kind || info.Holders != holders || info.Limit != limit {
		return fmt.Errorf("info of %q: %+v, want kind %s, %d holders, limit %d", name, info, kind, holders, limit)
	}
	return nil
}

func wantInfo(t *testing.T, c *lockclient.Client, name, kind string, holders, limit int) {
	t.Helper()
	if err := infoErr(t.Context(), c, name, kind, holders, limit); err != nil {
		t.Fatal(err)
	}
}

func acquire(t *testing.T, c *lockclient.Client, name string, opts ...lockclient.Option) *lockclient.Lock {
	t.Helper()
	l, err := c.Acquire(t.Context(), name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// acquireAsync starts an Acquire that is expected to wait, and returns
// where its outcome arrives.
func acquireAsync(ctx context.Context, c *lockclient.Client, name string, opts ...lockclient.Option) (<-chan *lockclient.Lock, <-chan error) {
	got, errc := make(chan *lockclient.Lock, 1), make(chan error, 1)
	go func() {
		l, err := c.Acquire(ctx, name, opts...)
		got <- l
		errc <- err
	}()
	return got, errc
}

// Limit(2) lets two clients in, each with a permit of its own; a third
// trying once is refused, and waiting gets the permit a holder gives back.
func TestSemaphore(t *testing.T) {
	ctx := t.Context()
	addr := lockproxytest.Start(t)
	c1, c2, c3 := dial(t, addr), dial(t, addr), dial(t, addr)

	a := acquire(t, c1, "jobs", lockclient.Limit(2))
	b := acquire(t, c2, "jobs", lockclient.Limit(2))
	if a.Token() == b.Token() || a.Fence() == b.Fence() {
		t.Fatalf("two permits share token or fence: %q, %q", a.Token(), b.Token())
	}
	wantInfo(t, c3, "jobs", "semaphore", 2, 2)

	if _, err := c3.Acquire(ctx, "jobs", lockclient.Limit(2)); !errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("third permit of 2, trying once: %v, want ErrNotAcquired", err)
	}

	got, errc := acquireAsync(ctx, c3, "jobs", lockclient.Limit(2), lockclient.Wait(time.Minute))
	waitFor(t, "the third client to queue", waiters(t, c3, "jobs"))
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := <-got, <-errc
	if err != nil {
		t.Fatal(err)
	}
	if w.Fence() <= max(a.Fence(), b.Fence()) {
		t.Fatalf("the waiter's fence %d is not above %d and %d", w.Fence(), a.Fence(), b.Fence())
	}
	// Giving back a's permit left b's alone.
	if isClosed(b.Lost()) {
		t.Fatal("b lost its permit when a released")
	}
	if err := b.Renew(ctx, time.Minute); err != nil {
		t.Fatalf("b renews its permit: %v", err)
	}
	wantInfo(t, c1, "jobs", "semaphore", 2, 2)

	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wantInfo(t, c1, "jobs", "none", 0, 0)
}

// A permit is lost alone: MAXHOLD ends one holder's, the other keeps its
// own, and the freed permit can be taken again.
func TestSemaphorePermitLost(t *testing.T) {
	ctx := t.Context()
	addr := lockproxytest.Start(t)
	c1, c2 := dial(t, addr), dial(t, addr)
	a := acquire(t, c1, "jobs", lockclient.Limit(2), lockclient.MaxHold(30*time.Millisecond))
	b := acquire(t, c2, "jobs", lockclient.Limit(2))
	select {
	case <-a.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("no lock.lost push for the permit past its MaxHold")
	}
	if isClosed(b.Lost()) {
		t.Fatal("the other permit was lost too")
	}
	if err := b.Renew(ctx, time.Minute); err != nil {
		t.Fatalf("the other permit: %v", err)
	}
	if err := a.Release(ctx); !errors.Is(err, lockclient.ErrNotHeld) {
		t.Fatalf("release of the lost permit: %v, want ErrNotHeld", err)
	}
	wantInfo(t, c1, "jobs", "semaphore", 1, 2)
	a2 := acquire(t, c1, "jobs", lockclient.Limit(2))
	wantInfo(t, c1, "jobs", "semaphore", 2, 2)
	if err := errors.Join(a2.Release(ctx), b.Release(ctx)); err != nil {
		t.Fatal(err)
	}
}

// Shared readers hold together; a writer waits for both to leave, and a
// reader that comes after the queued writer does not get ahead of it.
func TestReadersAndWriter(t *testing.T) {
	ctx := t.Context()
	addr := lockproxytest.Start(t)
	c1, c2, c3 := dial(t, addr), dial(t, addr), dial(t, addr)

	r1 := acquire(t, c1, "catalog", lockclient.Shared())
	r2 := acquire(t, c2, "catalog", lockclient.Shared())
	wantInfo(t, c3, "catalog", "shared", 2, 0)
	if _, err := c3.Acquire(ctx, "catalog"); !errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("writer trying once while read: %v, want ErrNotAcquired", err)
	}

	got, errc := acquireAsync(ctx, c3, "catalog", lockclient.Wait(time.Minute))
	waitFor(t, "the writer to queue", waiters(t, c3, "catalog"))
	if _, err := c1.Acquire(ctx, "catalog", lockclient.Shared()); !errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("reader behind a queued writer, trying once: %v, want ErrNotAcquired", err)
	}

	if err := r1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// One reader left: the writer is still queued, not holding.
	if info, err := c1.Info(ctx, "catalog"); err != nil || info.Kind != "shared" || info.Holders != 1 || info.Waiters != 1 {
		t.Fatalf("after one reader left: %+v, %v: want 1 reader and the writer waiting", info, err)
	}
	select {
	case <-got:
		t.Fatal("the writer got in while a reader held the lock")
	default:
	}

	if err := r2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := <-got, <-errc
	if err != nil {
		t.Fatal(err)
	}
	if w.Fence() <= max(r1.Fence(), r2.Fence()) {
		t.Fatalf("writer's fence %d is not above the readers' %d and %d", w.Fence(), r1.Fence(), r2.Fence())
	}
	wantInfo(t, c1, "catalog", "exclusive", 1, 0)
	if _, err := c1.Acquire(ctx, "catalog", lockclient.Shared()); !errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("reader while written: %v, want ErrNotAcquired", err)
	}
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wantInfo(t, c1, "catalog", "none", 0, 0)
}

// WithLock passes Limit and Shared through: fn holds a permit, or reads,
// and a second WithLock of the same kind gets in beside it while a third
// caller, of a kind it excludes, does not.
func TestWithLockKinds(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))

	inner := false
	err := c.WithLock(ctx, "pool", func(ctx context.Context) error {
		if err := infoErr(ctx, c, "pool", "semaphore", 1, 2); err != nil {
			return err
		}
		return c.WithLock(ctx, "pool", func(ctx context.Context) error {
			inner = true
			if err := infoErr(ctx, c, "pool", "semaphore", 2, 2); err != nil {
				return err
			}
			if _, err := c.Acquire(ctx, "pool", lockclient.Limit(2)); !errors.Is(err, lockclient.ErrNotAcquired) {
				return fmt.Errorf("third permit of 2: %v, want ErrNotAcquired", err)
			}
			return nil
		}, lockclient.Limit(2))
	}, lockclient.Limit(2))
	if err != nil || !inner {
		t.Fatalf("WithLock(Limit(2)): %v, inner fn ran %v", err, inner)
	}
	wantInfo(t, c, "pool", "none", 0, 0)

	inner = false
	err = c.WithLock(ctx, "catalog", func(ctx context.Context) error {
		if err := infoErr(ctx, c, "catalog", "shared", 1, 0); err != nil {
			return err
		}
		return c.WithLock(ctx, "catalog", func(ctx context.Context) error {
			inner = true
			if err := infoErr(ctx, c, "catalog", "shared", 2, 0); err != nil {
				return err
			}
			if _, err := c.Acquire(ctx, "catalog"); !errors.Is(err, lockclient.ErrNotAcquired) {
				return fmt.Errorf("writer while two read: %v, want ErrNotAcquired", err)
			}
			return nil
		}, lockclient.Shared())
	}, lockclient.Shared())
	if err != nil || !inner {
		t.Fatalf("WithLock(Shared()): %v, inner fn ran %v", err, inner)
	}
	wantInfo(t, c, "catalog", "none", 0, 0)
}

// Many goroutines through WithLock(Limit(3)) reach 3 holders at once and
// never more.
func TestWithLockLimitCaps(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	const n, workers = 3, 12
	var inside, over, runs atomic.Int32
	full := make(chan struct{}) // closed when n hold permits together
	var fullOnce sync.Once
	// One deadline for all: once it has passed, the test has failed, and
	// the rest need not wait for it again.
	fullCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			err := c.WithLock(ctx, "pool", func(context.Context) error {
				k := inside.Add(1)
				if k > n {
					over.Add(1)
				}
				if k == n {
					fullOnce.Do(func() { close(full) })
				}
				// The first n hold on until all n are in: a semaphore that
				// let fewer in at once would never close full.
				select {
				case <-full:
				case <-fullCtx.Done():
					t.Errorf("never %d holders at once", n)
				}
				runs.Add(1)
				inside.Add(-1)
				return nil
			}, lockclient.Limit(n), lockclient.Wait(time.Minute))
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if runs.Load() != workers || over.Load() != 0 {
		t.Fatalf("%d runs, %d with more than %d inside", runs.Load(), over.Load(), n)
	}
}

// Readers and writers through WithLock: a writer never overlaps anyone.
func TestWithLockReadersWriters(t *testing.T) {
	ctx := t.Context()
	c := dial(t, lockproxytest.Start(t))
	var readers, writers, clashes, runs atomic.Int32
	var wg sync.WaitGroup
	for i := range 15 {
		shared := i%3 != 0
		var opts []lockclient.Option
		if shared {
			opts = append(opts, lockclient.Shared())
		}
		wg.Go(func() {
			err := c.WithLock(ctx, "catalog", func(context.Context) error {
				// Each side counts itself in before looking at the other,
				// so of two that overlap at least one sees the other.
				if shared {
					readers.Add(1)
					if writers.Load() > 0 {
						clashes.Add(1)
					}
					readers.Add(-1)
				} else {
					if writers.Add(1) > 1 || readers.Load() > 0 {
						clashes.Add(1)
					}
					writers.Add(-1)
				}
				runs.Add(1)
				return nil
			}, append(opts, lockclient.Wait(time.Minute))...)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if runs.Load() != 15 || clashes.Load() != 0 {
		t.Fatalf("%d runs, %d with a writer beside another holder", runs.Load(), clashes.Load())
	}
}

// A name held as one kind refuses another with ErrWrongKind, at once even
// with Wait, and keeps the server's message; a writer against readers is
// contention, not a mismatch.
func TestWrongKind(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	addr := lockproxytest.Start(t)
	c1, c2 := dial(t, addr), dial(t, addr)

	a := acquire(t, c1, "jobs", lockclient.Limit(3))
	_, err := c2.Acquire(ctx, "jobs", lockclient.Limit(4))
	var se *lockclient.ServerError
	if !errors.Is(err, lockclient.ErrWrongKind) || errors.Is(err, lockclient.ErrNotAcquired) {
		t.Fatalf("Limit(4) of a Limit(3) semaphore: %v, want ErrWrongKind", err)
	}
	if !errors.As(err, &se) || se.Code() != "WRONGTYPE" ||
		!strings.Contains(se.Msg, `"jobs" is held as semaphore of LIMIT 3, not as semaphore of LIMIT 4`) {
		t.Fatalf("got %v, want the server's WRONGTYPE message", err)
	}
	for what, opts := range map[string][]lockclient.Option{
		"Limit(4) with Wait": {lockclient.Limit(4), lockclient.Wait(time.Minute)},
		"exclusive":          nil,
		"Shared":             {lockclient.Shared()},
	} {
		if _, err := c2.Acquire(ctx, "jobs", opts...); !errors.Is(err, lockclient.ErrWrongKind) {
			t.Errorf("%s of a semaphore: %v, want ErrWrongKind", what, err)
		}
	}
	err = c2.WithLock(ctx, "jobs", func(context.Context) error { t.Error("fn ran"); return nil }, lockclient.Limit(4))
	if !errors.Is(err, lockclient.ErrWrongKind) {
		t.Fatalf("WithLock(Limit(4)): %v, want ErrWrongKind", err)
	}

	r := acquire(t, c1, "catalog", lockclient.Shared())
	if _, err := c2.Acquire(ctx, "catalog", lockclient.Limit(2)); !errors.Is(err, lockclient.ErrWrongKind) {
		t.Fatalf("a semaphore of a read-write lock: %v, want ErrWrongKind", err)
	}
	if _, err := c2.Acquire(ctx, "catalog"); !errors.Is(err, lockclient.ErrNotAcquired) || errors.Is(err, lockclient.ErrWrongKind) {
		t.Fatalf("a writer while read: %v, want ErrNotAcquired", err)
	}

	// The refusals changed nothing, and left c2's connections usable.
	wantInfo(t, c2, "jobs", "semaphore", 1, 3)
	b := acquire(t, c2, "jobs", lockclient.Limit(3))
	if err := errors.Join(a.Release(ctx), b.Release(ctx), r.Release(ctx)); err != nil {
		t.Fatal(err)
	}
}

// Only a WRONGTYPE reply is ErrWrongKind.
func TestServerErrorIsWrongKind(t *testing.T) {
	for msg, want := range map[string]bool{
		`WRONGTYPE "jobs" is held as semaphore of LIMIT 3, not as semaphore of LIMIT 4`:                true,
		`WRONGTYPE this connection holds "jobs" as shared already, not as exclusive: release it first`: true,
		"ERR invalid lock name: it is empty":                                                           false,
		"UPSTREAM WRONGTYPE Operation against a key holding the wrong kind of value":                   false,
	} {
		if got := errors.Is(&lockclient.ServerError{Msg: msg}, lockclient.ErrWrongKind); got != want {
			t.Errorf("%q: errors.Is ErrWrongKind = %v, want %v", msg, got, want)
		}
	}
}

// Limit with Shared, and a Limit below 1, are refused by the client: the
// server never sees them.
func TestKindOptionsRefused(t *testing.T) {
	ctx := t.Context()
	addr := lockproxytest.Start(t)
	c, closed := dial(t, addr), dial(t, addr)
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	for what, opts := range map[string][]lockclient.Option{
		"Limit and Shared": {lockclient.Limit(2), lockclient.Shared()},
		"Shared and Limit": {lockclient.Shared(), lockclient.Limit(2)},
		"Limit(0)":         {lockclient.Limit(0)},
		"Limit(-1)":        {lockclient.Limit(-1)},
	} {
		_, err := c.Acquire(ctx, "k", opts...)
		var se *lockclient.ServerError
		if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "Limit") {
			t.Errorf("%s: %v, want the client's own error", what, err)
		}
		err = c.WithLock(ctx, "k", func(context.Context) error { t.Errorf("%s: fn ran", what); return nil }, opts...)
		if err == nil || errors.As(err, &se) {
			t.Errorf("%s, WithLock: %v, want the client's own error", what, err)
		}
		// A closed client sends nothing at all: the refusal comes first.
		if _, err := closed.Acquire(ctx, "k", opts...); err == nil || errors.Is(err, lockclient.ErrClosed) {
			t.Errorf("%s on a closed client: %v, want the option refused before any connection", what, err)
		}
	}
	wantInfo(t, c, "k", "none", 0, 0)
	// Limit(1) is a semaphore of one permit, not a refusal.
	l := acquire(t, c, "k", lockclient.Limit(1))
	wantInfo(t, c, "k", "semaphore", 1, 1)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
