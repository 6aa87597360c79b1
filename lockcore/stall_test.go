package lockcore_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
)

// stalling fails every Acquire while stalled, without reaching the store,
// as a Redis in DEBUG SLEEP or out of memory would, and counts the calls
// it failed.
type stalling struct {
	lockcore.Store
	stalled atomic.Bool
	failed  atomic.Int64
}

func (s *stalling) Acquire(ctx context.Context, req lockcore.AcquireRequest) (lockcore.Grant, error) {
	if s.stalled.Load() {
		s.failed.Add(1)
		return lockcore.Grant{}, errors.New("injected: upstream stalled")
	}
	return s.Store.Acquire(ctx, req)
}

// An upstream stall ends no WAIT: the waiters keep their places, the
// earliest is served first once it answers again, and a WAIT that runs out
// during the stall gets the upstream's error, not a null.
func TestWaitSurvivesUpstreamStall(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	defer mem.Close()
	store := &stalling{Store: mem}
	l := mustNew(t, store, lockcore.Config{Retry: lockcore.Backoff{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond}})
	defer shutdown(t, l)
	holder := l.NewSession(nil)
	acquire(t, holder, "stall", lockcore.AcquireOptions{TTL: time.Minute})
	first := startWaiter(l.NewSession(nil), "stall", time.Minute)
	queuedIs(t, mem, "stall", 1)

	store.stalled.Store(true)
	second := startWaiter(l.NewSession(nil), "stall", time.Minute) // its first call fails
	waitUntil(t, func() bool { return l.Waiters("stall") == 2 })
	short, err := l.NewSession(nil).Acquire(context.Background(), "stall", lockcore.AcquireOptions{Wait: 100 * time.Millisecond})
	if short != "" || err == nil {
		t.Errorf("a WAIT that ran out during the stall = %q, %v; want the upstream's error", short, err)
	}
	waitUntil(t, func() bool { return store.failed.Load() >= 5 }) // the waiters' calls keep failing
	store.stalled.Store(false)

	var order []int
	tokens := make([]string, 2)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, ch := range []<-chan waitFor{first, second} {
		wg.Go(func() {
			w := <-ch
			if w.err != nil || w.token == "" {
				t.Errorf("waiter %d = %+v; want the lock after the stall", i, w)
				return
			}
			mu.Lock()
			order = append(order, i)
			tokens[i] = w.token
			mu.Unlock()
		})
	}
	held := holder.Held()
	if ok, err := holder.Release(context.Background(), "stall", ""); !ok || err != nil {
		st, ierr := mem.Inspect(context.Background(), "stall")
		t.Fatalf("the holder's release = %v, %v; it held %v before, and the store has %+v (%v)", ok, err, held, st, ierr)
	}
	// The first waiter releases when served; each holds until then.
	waitUntil(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) >= 1 })
	mu.Lock()
	got, tok := slices.Clone(order), tokens[0]
	mu.Unlock()
	if !slices.Equal(got, []int{0}) {
		t.Fatalf("served %v first, want the waiter that came first", got)
	}
	// The earlier waiter's lock goes with its session; then the second.
	// It was handed over locally: the waiter is answered first, and the
	// store learns of its token from the transfer that follows.
	waitUntil(t, func() bool {
		st, err := mem.Inspect(context.Background(), "stall")
		return err == nil && st.Token == tok
	})
	if ok, err := l.NewSession(nil).Release(context.Background(), "stall", tok); !ok || err != nil {
		t.Fatalf("releasing the first waiter's lock by its token = %v, %v", ok, err)
	}
	wg.Wait()
	if tok, err := l.NewSession(nil).Acquire(context.Background(), "busy-after", lockcore.AcquireOptions{Wait: 10 * time.Millisecond}); tok == "" || err != nil {
		t.Errorf("an acquire after the stall = %q, %v", tok, err)
	}
}

// refusing refuses every Transfer without reaching the store, as the
// store's fence check does when it cannot vouch for the new fence.
type refusing struct{ lockcore.Store }

func (refusing) Transfer(context.Context, lockcore.TransferRequest) (lockcore.Transferred, error) {
	return lockcore.Transferred{}, nil
}

// A local hand-over the store refuses loses the new holder's lease and
// gives the lock back: nobody holds it, so nobody may keep it taken.
func TestRefusedTransferGivesTheLockBack(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	defer mem.Close()
	l := mustNew(t, refusing{mem}, lockcore.Config{})
	defer shutdown(t, l)
	holder := l.NewSession(nil)
	acquire(t, holder, "refused", lockcore.AcquireOptions{TTL: time.Minute})
	ev := newLostEvents(lockcore.SystemClock{})
	waiter := l.NewSession(ev.onLost)
	got := startWaiter(waiter, "refused", time.Minute)
	queuedIs(t, mem, "refused", 1)
	waitUntil(t, func() bool { return l.Waiters("refused") == 1 })
	if ok, err := holder.Release(context.Background(), "refused", ""); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if w := <-got; w.token == "" {
		t.Fatalf("waiter = %+v, want the handed-over lock", w)
	}
	ev.wait(t) // the refused hand-over is lost
	waitUntil(t, func() bool { st, _ := mem.Inspect(context.Background(), "refused"); return !st.Held })
	if tok, err := l.NewSession(nil).Acquire(context.Background(), "refused", lockcore.AcquireOptions{}); tok == "" || err != nil {
		t.Errorf("after the refused hand-over: %q, %v; want the lock, free again", tok, err)
	}
}
