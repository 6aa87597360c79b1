package lockcore_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/clocktest"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
)

// counting wraps a real store and counts calls, and the most Acquire calls
// ever in flight at once for one name.
type counting struct {
	lockcore.Store
	mu         sync.Mutex
	acquires   int
	releases   int
	transfers  int
	inFlight   map[string]int
	maxFlight  int
	acquireLog []string // waiter of each Acquire
	// holdWatch, when set before the first Watch, keeps every Watch from
	// reaching the store until it is closed.
	holdWatch chan struct{}
	// holdAcquire, when set, holds every Acquire until it is closed; and
	// releasedDuring counts the Release calls that came while one was held.
	holdAcquire    chan struct{}
	releasedDuring int
}

func (c *counting) Watch(ctx context.Context, name string, wake func(lockcore.Wake)) (func(), error) {
	if c.holdWatch != nil {
		select {
		case <-c.holdWatch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.Store.Watch(ctx, name, wake)
}

func (c *counting) Acquire(ctx context.Context, req lockcore.AcquireRequest) (lockcore.Grant, error) {
	c.mu.Lock()
	c.acquires++
	c.acquireLog = append(c.acquireLog, req.Waiter)
	c.inFlight[req.Name]++
	c.maxFlight = max(c.maxFlight, c.inFlight[req.Name])
	hold := c.holdAcquire
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight[req.Name]--
		c.mu.Unlock()
	}()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return lockcore.Grant{}, ctx.Err()
		}
	}
	return c.Store.Acquire(ctx, req)
}

func (c *counting) Release(ctx context.Context, req lockcore.ReleaseRequest) (lockcore.Released, error) {
	c.mu.Lock()
	c.releases++
	if c.inFlight[req.Name] > 0 && c.holdAcquire != nil {
		c.releasedDuring++
	}
	c.mu.Unlock()
	return c.Store.Release(ctx, req)
}

func (c *counting) Transfer(ctx context.Context, req lockcore.TransferRequest) (lockcore.Transferred, error) {
	c.mu.Lock()
	c.transfers++
	c.mu.Unlock()
	return c.Store.Transfer(ctx, req)
}

func (c *counting) counts() (acquires, releases, maxFlight int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acquires, c.releases, c.maxFlight
}

// stores runs fn on the embedded store and on a real Redis. fn gets a
// function making sidecars (Locks) that share the one store.
func stores(t *testing.T, fn func(t *testing.T, sidecar func(cfg lockcore.Config) (*lockcore.Locks, *counting))) {
	t.Run("embedded", func(t *testing.T) {
		mem := memstore.New(memstore.Options{})
		withStore(t, func() lockcore.Store { return sharedStore{mem} }, fn)
		t.Cleanup(func() { mem.Close() })
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		withStore(t, func() lockcore.Store {
			rdb, err := redisstore.NewClient(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			s, err := redisstore.New(rdb, redisstore.Options{Prefix: "lock:"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, fn)
	})
}

// withStore runs fn with sidecars on stores that newStore makes, one per
// sidecar, all on the same data.
func withStore(t *testing.T, newStore func() lockcore.Store,
	fn func(t *testing.T, sidecar func(cfg lockcore.Config) (*lockcore.Locks, *counting))) {
	fn(t, func(cfg lockcore.Config) (*lockcore.Locks, *counting) {
		c := &counting{Store: newStore(), inFlight: map[string]int{}}
		l := mustNew(t, c, cfg)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := l.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			c.Close()
		})
		return l, c
	})
}

// sharedStore lets several sidecars share one in-process store, which only
// the test closes.
type sharedStore struct{ lockcore.Store }

func (sharedStore) Close() error { return nil }

// waitUntil polls cond, for state only visible from outside.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// queued waits until the store has queued n waiters for name.
func queuedIs(t *testing.T, s lockcore.Store, name string, n int) {
	t.Helper()
	waitUntil(t, func() bool {
		st, err := s.Inspect(context.Background(), name)
		return err == nil && st.Queued == n
	})
}

// fifo makes waiters join in a known order, over the given sidecars in
// turn, then releases the lock and checks that they got it in that order,
// each releasing it to the next.
func fifo(t *testing.T, sidecars []*lockcore.Locks, store lockcore.Store, waiters int) {
	on := make([]*lockcore.Locks, waiters)
	for i := range on {
		on[i] = sidecars[i%len(sidecars)]
	}
	order := serveOrder(t, sidecars[0], on, map[*lockcore.Locks]*counting{}, store, nil)
	want := make([]int, waiters)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(order, want) {
		t.Errorf("served in order %v, want arrival order %v", order, want)
	}
}

// serveOrder has a client of holder take a lock, then one waiter on each of
// on join in turn (each queued in the store, and its queueing reply taken
// in by its sidecar if that sidecar is in calls, before the next); then it
// releases the lock, each waiter releasing it in turn when served (after
// between(i), when given), and returns the order in which the waiters were
// served.
func serveOrder(t *testing.T, holder *lockcore.Locks, on []*lockcore.Locks, calls map[*lockcore.Locks]*counting,
	store lockcore.Store, between func(i int)) []int {
	t.Helper()
	name := "order"
	hs := holder.NewSession(nil)
	acquire(t, hs, name, lockcore.AcquireOptions{TTL: time.Minute})
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i, l := range on {
		s := l.NewSession(nil)
		wg.Go(func() {
			tok, err := s.Acquire(context.Background(), name, lockcore.AcquireOptions{TTL: time.Minute, Wait: time.Minute})
			if err != nil || tok == "" {
				t.Errorf("waiter %d: %q, %v", i, tok, err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			if between != nil {
				between(i)
			}
			if ok, err := s.Release(context.Background(), name, ""); !ok || err != nil {
				t.Errorf("waiter %d release: %v %v", i, ok, err)
			}
		})
		queuedIs(t, store, name, i+1) // its place in the store's queue is taken
		if calls[l] != nil {
			// And its sidecar has taken in the reply: only then can it hand
			// the lock on.
			mine := 0
			for _, o := range on[:i+1] {
				if o == l {
					mine++
				}
			}
			waitUntil(t, func() bool { return l.ReadyWaiters(name) == mine })
		}
	}
	if ok, err := hs.Release(context.Background(), name, ""); !ok || err != nil {
		t.Fatal(ok, err)
	}
	wg.Wait()
	return order
}

func TestFIFOOneSidecar(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		l, c := sidecar(lockcore.Config{})
		fifo(t, []*lockcore.Locks{l}, c, 8)
		if _, _, maxFlight := c.counts(); maxFlight != 1 {
			t.Errorf("up to %d acquire calls in flight for one name, want 1", maxFlight)
		}
	})
}

func TestFIFOTwoSidecars(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		a, c := sidecar(lockcore.Config{})
		b, _ := sidecar(lockcore.Config{})
		fifo(t, []*lockcore.Locks{a, b}, c, 8)
	})
}

// The same on a Redis Cluster of three masters, where releases reach the
// other sidecar by sharded pub/sub.
func TestFIFOTwoSidecarsCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	withStore(t, func() lockcore.Store {
		s, err := redisstore.New(redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()}), redisstore.Options{Prefix: "lock:"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		a, c := sidecar(lockcore.Config{})
		b, _ := sidecar(lockcore.Config{})
		fifo(t, []*lockcore.Locks{a, b}, c, 8)
	})
}

// With LocalHandoffs, a release hands the lock to a waiter on its own
// sidecar ahead of an earlier waiter on another, at most that many times in
// a row; then the earlier waiter is served. Without it, arrival order holds.
func TestLocalHandoffsBounded(t *testing.T) {
	for _, tc := range []struct {
		handoffs int
		want     []int // waiter 0 is on sidecar b, 1..4 on a, where the holder is
	}{
		{0, []int{0, 1, 2, 3, 4}},
		{1, []int{1, 0, 2, 3, 4}},
		{2, []int{1, 2, 0, 3, 4}},
	} {
		t.Run(strconv.Itoa(tc.handoffs), func(t *testing.T) {
			stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
				obs := &handOffs{}
				a, ca := sidecar(lockcore.Config{LocalHandoffs: tc.handoffs, Observer: obs})
				b, cb := sidecar(lockcore.Config{LocalHandoffs: tc.handoffs})
				calls := map[*lockcore.Locks]*counting{a: ca, b: cb}
				order := serveOrder(t, a, []*lockcore.Locks{b, a, a, a, a}, calls, ca, nil)
				if !slices.Equal(order, tc.want) {
					t.Errorf("served in order %v, want %v", order, tc.want)
				}
				if n := obs.count("local_ahead"); n != tc.handoffs {
					t.Errorf("%d hand-offs counted as local_ahead, want %d", n, tc.handoffs)
				}
			})
		})
	}
}

// Releases that free nothing, between hand-offs, do not restart the count
// of local hand-offs ahead: a release with a stale token, and a local
// waiter giving up (it gives back, by its nonce, a grant it may have had).
func TestLocalHandoffsNotResetByReleasesThatFreeNothing(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		a, ca := sidecar(lockcore.Config{LocalHandoffs: 1})
		b, cb := sidecar(lockcore.Config{LocalHandoffs: 1})
		calls := map[*lockcore.Locks]*counting{a: ca, b: cb}
		stray := func(int) {
			if ok, err := a.NewSession(nil).Release(context.Background(), "order", "1:stale"); ok || err != nil {
				t.Errorf("release with a stale token = %v, %v", ok, err)
			}
			tok, err := a.NewSession(nil).Acquire(context.Background(), "order", lockcore.AcquireOptions{TTL: time.Minute, Wait: 20 * time.Millisecond})
			if tok != "" || err != nil {
				t.Errorf("a short wait on the held lock = %q, %v", tok, err)
			}
		}
		order := serveOrder(t, a, []*lockcore.Locks{b, a, a, a, a}, calls, ca, stray)
		if want := []int{1, 0, 2, 3, 4}; !slices.Equal(order, want) {
			t.Errorf("served in order %v, want %v: the waiter on b was passed over more than once", order, want)
		}
	})
}

// handOffs counts hand-offs by how, and ignores the rest.
type handOffs struct {
	mu  sync.Mutex
	how map[string]int
}

func (*handOffs) LeaseStarted(string)                    {}
func (*handOffs) LeaseEnded(string, time.Duration, bool) {}
func (*handOffs) AutoRenewed(string)                     {}
func (*handOffs) WaitersChanged(int)                     {}
func (*handOffs) DetachedChanged(int)                    {}
func (h *handOffs) HandedOff(how string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.how == nil {
		h.how = map[string]int{}
	}
	h.how[how]++
}

func (h *handOffs) count(how string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.how[how]
}

// waitBehind has waiter acquire name, waiting up to a minute, in the
// background; the channel gives its token ("" if it got none).
func waitBehind(waiter *lockcore.Session, name string) <-chan string {
	got := make(chan string, 1)
	go func() {
		tok, _ := waiter.Acquire(context.Background(), name, lockcore.AcquireOptions{TTL: time.Minute, Wait: time.Minute})
		got <- tok
	}()
	return got
}

// releaseTo releases holder's lock on name and returns the token the
// waiter behind it got.
func releaseTo(t *testing.T, holder *lockcore.Session, name string, got <-chan string) string {
	t.Helper()
	if ok, err := holder.Release(context.Background(), name, ""); !ok || err != nil {
		t.Fatal(ok, err)
	}
	tok := <-got
	if tok == "" {
		t.Fatal("waiter did not get the lock")
	}
	return tok
}

// A release on this sidecar gives the lock to the first local waiter with
// one store call, a transfer, which the waiter does not wait for: it makes
// no acquire call of its own.
func TestHandOffInOneCall(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		l, c := sidecar(lockcore.Config{Retry: lockcore.Backoff{Base: time.Hour, Max: time.Hour}})
		// Once the queue's watch is active, a queued waiter tries again in
		// case it missed a wake, and that try may land in the hand-off.
		// A local hand-off needs no watch: hold it until the count is done.
		c.holdWatch = make(chan struct{})
		defer close(c.holdWatch)
		holder, waiter := l.NewSession(nil), l.NewSession(nil)
		holderTok := acquire(t, holder, "h", lockcore.AcquireOptions{TTL: time.Minute})
		got := waitBehind(waiter, "h")
		queuedIs(t, c, "h", 1)
		// And the sidecar has taken in its queueing reply: under load that
		// comes after the store queued it, and a release before that is not
		// the case this test is about.
		waitUntil(t, func() bool { return l.ReadyWaiters("h") == 1 })
		acquiresBefore, releasesBefore, _ := c.counts()
		tok := releaseTo(t, holder, "h", got)
		// Its lease is confirmed once the transfer lands.
		waitUntil(t, func() bool { st, _ := c.Inspect(context.Background(), "h"); return st.Token == tok })
		acquires, releases, _ := c.counts()
		c.mu.Lock()
		transfers := c.transfers
		c.mu.Unlock()
		if acquires != acquiresBefore || releases != releasesBefore || transfers != 1 {
			t.Errorf("hand-off took %d acquire, %d release and %d transfer calls; want 0, 0, 1",
				acquires-acquiresBefore, releases-releasesBefore, transfers)
		}
		f0, _, _ := lockcore.ParseToken(holderTok)
		if f1, _, _ := lockcore.ParseToken(tok); f1 != f0+1 {
			t.Errorf("handed-over fence %d, want the holder's %d + 1", f1, f0)
		}
	})
}

// A waiter's own try can still be on its way to the store when a local
// hand-off answers the waiter. The hand-off lands only once that try is
// back, so the new holder's release cannot reach the store before it: the
// try, coming after, would take the free lock anew for nobody.
func TestHandOffWaitsForWaitersTry(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		// The held try gives up after the upstream timeout: that is when
		// the hand-off may land.
		l, c := sidecar(lockcore.Config{Retry: lockcore.Backoff{Base: time.Hour, Max: time.Hour}, UpstreamTimeout: 300 * time.Millisecond})
		c.holdWatch = make(chan struct{})
		holder, waiter := l.NewSession(nil), l.NewSession(nil)
		acquire(t, holder, "h", lockcore.AcquireOptions{TTL: time.Minute})
		got := waitBehind(waiter, "h")
		waitUntil(t, func() bool { return l.ReadyWaiters("h") == 1 })
		// Its watch becomes active now, and the queue's catch-up try is held
		// on its way to the store.
		hold := make(chan struct{})
		c.mu.Lock()
		c.holdAcquire = hold
		c.mu.Unlock()
		close(c.holdWatch)
		waitUntil(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.inFlight["h"] == 1 })
		tok := releaseTo(t, holder, "h", got)
		waitUntil(t, func() bool { st, _ := c.Inspect(context.Background(), "h"); return st.Token == tok })
		released := make(chan error, 1)
		go func() {
			ok, err := waiter.Release(context.Background(), "h", "")
			if err == nil && !ok {
				err = errors.New("not held")
			}
			released <- err
		}()
		// Either the release reaches the store while the try is held, or
		// the try gives up first.
		waitUntil(t, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.releasedDuring > 0 || c.inFlight["h"] == 0
		})
		close(hold)
		if err := <-released; err != nil {
			t.Fatalf("the new holder's release: %v", err)
		}
		c.mu.Lock()
		during := c.releasedDuring
		c.mu.Unlock()
		if during != 0 {
			t.Errorf("%d releases reached the store while the waiter's try was on its way", during)
		}
		if st, err := c.Inspect(context.Background(), "h"); err != nil || st.Held {
			t.Errorf("after the release and the try: %+v, %v; want free", st, err)
		}
	})
}

// Expiry publishes nothing: the waiter's poll, capped by the holder's ttl,
// finds the lock free even with an hour of backoff.
func TestWakeAfterExpiry(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		l, _ := sidecar(lockcore.Config{Retry: lockcore.Backoff{Base: time.Hour, Max: time.Hour}})
		other, _ := sidecar(lockcore.Config{})
		holder := other.NewSession(nil)
		acquire(t, holder, "exp", lockcore.AcquireOptions{TTL: 200 * time.Millisecond, Detached: true})
		start := time.Now()
		tok, err := l.NewSession(nil).Acquire(context.Background(), "exp", lockcore.AcquireOptions{TTL: time.Minute, Wait: 10 * time.Second})
		if err != nil || tok == "" {
			t.Fatalf("waiter after expiry: %q, %v", tok, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("acquired %v after the wait began; the holder's ttl was 200ms", d)
		}
	})
}

// WAIT ends with a null close to its deadline.
func TestWaitTimeout(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		// On a fake clock, so that the deadline is the event, whatever the
		// machine's load: nothing else (a poll, a call) ends the wait.
		clock := clocktest.New(time.Now())
		l, _ := sidecar(lockcore.Config{Clock: clock})
		acquire(t, l.NewSession(nil), "busy", lockcore.AcquireOptions{TTL: time.Minute})
		const wait = 100 * time.Millisecond
		got := startWaiter(l.NewSession(nil), "busy", wait)
		waitUntil(t, func() bool { return l.Waiters("busy") == 1 })
		clock.Advance(wait - time.Millisecond)
		select {
		case w := <-got:
			t.Fatalf("WAIT %v returned %+v a millisecond before its deadline", wait, w)
		default:
		}
		clock.Advance(time.Millisecond)
		select {
		case w := <-got:
			if w.token != "" || w.err != nil {
				t.Errorf("WAIT on a held lock = %+v, want a null", w)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("WAIT did not return at its deadline")
		}
	})
}

// Many try-once acquires of one name share one call at a time, and none
// jumps ahead of a queued waiter.
func TestTryOnceSingleFlight(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		l, c := sidecar(lockcore.Config{})
		var wg sync.WaitGroup
		var won atomic.Int32
		for i := range 30 {
			s := l.NewSession(nil)
			wg.Go(func() {
				tok, err := s.Acquire(context.Background(), "once", lockcore.AcquireOptions{TTL: time.Minute})
				if err != nil {
					t.Error(i, err)
				}
				if tok != "" {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		acquires, _, maxFlight := c.counts()
		if won.Load() != 1 || maxFlight != 1 {
			t.Errorf("%d winners, %d calls in flight at most (%d calls); want 1 and 1", won.Load(), maxFlight, acquires)
		}
	})
}

// A waiter that leaves as the lock is handed to it never holds it; the
// next waiter gets it.
func TestLeavingWaiterNeverAcquires(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		l, c := sidecar(lockcore.Config{})
		holder := l.NewSession(nil)
		acquire(t, holder, "leave", lockcore.AcquireOptions{TTL: time.Minute})
		for round := range 20 {
			ctx, cancel := context.WithCancel(context.Background())
			first, second := l.NewSession(nil), l.NewSession(nil)
			firstDone := make(chan string, 1)
			go func() {
				tok, _ := first.Acquire(ctx, "leave", lockcore.AcquireOptions{TTL: time.Minute, Wait: time.Minute})
				firstDone <- tok
			}()
			queuedIs(t, c, "leave", 1)
			secondDone := make(chan string, 1)
			go func() {
				tok, _ := second.Acquire(context.Background(), "leave", lockcore.AcquireOptions{TTL: time.Minute, Wait: time.Minute})
				secondDone <- tok
			}()
			queuedIs(t, c, "leave", 2)
			// The first waiter's client hangs up just as the lock is released:
			// whichever comes first, once its connection has closed it must not
			// hold the lock, and the next waiter must get it.
			go cancel()
			if ok, err := holder.Release(context.Background(), "leave", ""); !ok || err != nil {
				t.Fatal(ok, err)
			}
			<-firstDone
			first.Close() // what the connection's close does
			tok := <-secondDone
			if tok == "" {
				t.Fatalf("round %d: the next waiter did not get the lock", round)
			}
			if held := second.Held(); !slices.Equal(held, []string{"leave"}) {
				t.Fatalf("round %d: second holds %v", round, held)
			}
			// Handed over locally, the lock is in the store under the old
			// token until the transfer behind the reply lands.
			waitUntil(t, func() bool { st, _ := c.Inspect(context.Background(), "leave"); return st.Token == tok })
			holder = second
		}
	})
}

func TestNoGoroutineLeaks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	stores(t, func(t *testing.T, sidecar func(lockcore.Config) (*lockcore.Locks, *counting)) {
		l, c := sidecar(lockcore.Config{})
		acquire(t, l.NewSession(nil), "leak", lockcore.AcquireOptions{TTL: time.Minute})
		var wg sync.WaitGroup
		for i := range 200 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+i%20)*time.Millisecond)
			s := l.NewSession(nil)
			wg.Go(func() {
				defer cancel()
				_, err := s.Acquire(ctx, "leak"+strconv.Itoa(i%3), lockcore.AcquireOptions{Wait: time.Minute})
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Error(err)
				}
				s.Close()
			})
		}
		wg.Wait()
		waitUntil(t, func() bool { return l.Waiters("leak0")+l.Waiters("leak1")+l.Waiters("leak2") == 0 })
		_ = c
	})
}

// lostLeave loses the first Leave, as a dropped connection would, and says
// when it has.
type lostLeave struct {
	lockcore.Store
	once sync.Once
	lost chan struct{}
}

func (s *lostLeave) Leave(ctx context.Context, name, waiter string) error {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.lost)
		return errors.New("injected: connection reset")
	}
	return s.Store.Leave(ctx, name, waiter)
}

// A waiter that left no longer keeps the lock from others, even when its
// leaving never reached the store.
func TestDepartedWaiterDoesNotHoldUpTheLock(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	defer mem.Close()
	store := &lostLeave{Store: mem, lost: make(chan struct{})}
	l := mustNew(t, store, lockcore.Config{})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	}()
	holder := l.NewSession(nil)
	acquire(t, holder, "d", lockcore.AcquireOptions{TTL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.NewSession(nil).Acquire(ctx, "d", lockcore.AcquireOptions{Wait: time.Minute})
	}()
	queuedIs(t, mem, "d", 1)
	cancel()
	<-done
	<-store.lost // its queue entry stays, until it lapses in WaiterTTL
	if ok, err := holder.Release(context.Background(), "d", ""); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if tok, err := l.NewSession(nil).Acquire(context.Background(), "d", lockcore.AcquireOptions{}); tok == "" || err != nil {
		t.Fatalf("try-once after the only waiter left = %q, %v; want the lock", tok, err)
	}
}
