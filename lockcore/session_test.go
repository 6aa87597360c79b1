package lockcore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/clocktest"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
)

// faulty wraps a real store and injects failures into it.
type faulty struct {
	lockcore.Store
	mu sync.Mutex
	// renewErr, when set, makes Renew fail without reaching the store.
	renewErr error
	// acquireErr, when set, makes Acquire fail after the store ran it: a
	// lost reply.
	acquireErr error
	// acquireDelay holds Acquire's reply back after the store ran it.
	acquireDelay time.Duration
	renews       int
	renewedAt    []time.Time // the clock at each Renew call
	// releaseFails is how many of the next Release calls fail without
	// reaching the store.
	releaseFails int
	// released receives each token Release was called with, after the call.
	released chan string
	// clock is the fake clock of the store and of the Locks over it.
	clock *clocktest.Fake
}

func (f *faulty) Release(ctx context.Context, req lockcore.ReleaseRequest) (lockcore.Released, error) {
	f.mu.Lock()
	fail := f.releaseFails > 0
	if fail {
		f.releaseFails--
	}
	f.mu.Unlock()
	if fail {
		return lockcore.Released{}, errors.New("injected: upstream down")
	}
	r, err := f.Store.Release(ctx, req)
	select {
	case f.released <- req.Token:
	default:
	}
	return r, err
}

// waitRelease waits for the next Release call to complete.
func (f *faulty) waitRelease(t *testing.T) string {
	t.Helper()
	select {
	case tok := <-f.released:
		return tok
	case <-time.After(10 * time.Second):
		t.Fatal("no release within 10s")
		return ""
	}
}

func (f *faulty) Acquire(ctx context.Context, req lockcore.AcquireRequest) (lockcore.Grant, error) {
	g, err := f.Store.Acquire(ctx, req)
	f.mu.Lock()
	aerr, delay := f.acquireErr, f.acquireDelay
	f.mu.Unlock()
	f.clock.Advance(delay)
	if aerr != nil {
		return lockcore.Grant{}, aerr
	}
	return g, err
}

func (f *faulty) Renew(ctx context.Context, req lockcore.RenewRequest) (lockcore.Renewed, error) {
	f.mu.Lock()
	f.renews++
	f.renewedAt = append(f.renewedAt, f.clock.Now())
	err := f.renewErr
	f.mu.Unlock()
	if err != nil {
		return lockcore.Renewed{}, err
	}
	return f.Store.Renew(ctx, req)
}

func (f *faulty) set(fn func(f *faulty)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// mustNew is lockcore.New for a config the test knows is good.
func mustNew(t testing.TB, store lockcore.Store, cfg lockcore.Config) *lockcore.Locks {
	t.Helper()
	l, err := lockcore.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newLocks makes Locks over an embedded store wrapped in faulty, both on
// one fake clock: time moves only when the test advances f.clock.
func newLocks(t *testing.T, cfg lockcore.Config) (*lockcore.Locks, *faulty) {
	t.Helper()
	clock := clocktest.New(time.Now())
	mem := memstore.New(memstore.Options{Now: clock.Now})
	f := &faulty{Store: mem, released: make(chan string, 100), clock: clock}
	cfg.Clock = clock
	l := mustNew(t, f, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		mem.Close()
	})
	return l, f
}

// lostEvents records onLost calls, and when they came by clock.
type lostEvents struct {
	clock lockcore.Clock
	mu    sync.Mutex
	names []string
	at    []time.Time
	ch    chan struct{}
}

func newLostEvents(clock lockcore.Clock) *lostEvents {
	return &lostEvents{clock: clock, ch: make(chan struct{}, 100)}
}

func (e *lostEvents) onLost(name, _ string) {
	e.mu.Lock()
	e.names = append(e.names, name)
	e.at = append(e.at, e.clock.Now())
	e.mu.Unlock()
	e.ch <- struct{}{}
}

// advanceUntilLost moves clock on in steps of step until s no longer holds
// name, for at most limit, and returns the clock then; then it waits for
// the loss to be told (a push goes out from a goroutine of its own).
func (e *lostEvents) advanceUntilLost(t *testing.T, clock *clocktest.Fake, s *lockcore.Session, name string, step, limit time.Duration) time.Time {
	t.Helper()
	end := clock.Now().Add(limit)
	for slices.Contains(s.Held(), name) {
		if clock.Now().After(end) {
			t.Fatalf("%s still held after %v", name, limit)
		}
		clock.Advance(step)
	}
	at := clock.Now()
	e.wait(t)
	return at
}

func (e *lostEvents) wait(t *testing.T) time.Time {
	t.Helper()
	select {
	case <-e.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no lock.lost within 10s")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.at[len(e.at)-1]
}

func acquire(t *testing.T, s *lockcore.Session, name string, o lockcore.AcquireOptions) string {
	t.Helper()
	tok, err := s.Acquire(context.Background(), name, o)
	if err != nil || tok == "" {
		t.Fatalf("Acquire(%q) = %q, %v", name, tok, err)
	}
	return tok
}

// With renewals failing, the lease is lost when its validity ends, not
// later, and Held never lists it past that moment.
func TestLostAtValidityDeadline(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	ev := newLostEvents(f.clock)
	s := l.NewSession(ev.onLost)
	const ttl = 300 * time.Millisecond
	sent := f.clock.Now()
	acquire(t, s, "a", lockcore.AcquireOptions{TTL: ttl})
	f.set(func(f *faulty) { f.renewErr = errors.New("injected: upstream down") })
	deadline := sent.Add(ttl) // the store's expiry is no earlier than this
	for slices.Contains(s.Held(), "a") {
		if asked := f.clock.Now(); asked.After(deadline) {
			t.Fatalf("Held lists the lease %v after its ttl ran out", asked.Sub(deadline))
		}
		f.clock.Advance(time.Millisecond)
	}
	lostAt := ev.wait(t)
	if lostAt.After(deadline) {
		t.Errorf("lock.lost came %v after the deadline", lostAt.Sub(deadline))
	}
	f.mu.Lock()
	renews := f.renews
	f.mu.Unlock()
	if renews < 2 {
		t.Errorf("%d renewal attempts before giving up, want retries", renews)
	}
	if st := l.Stats(); st.Held != 0 || st.Lost != 1 {
		t.Errorf("Stats = %+v, want 0 held, 1 lost", st)
	}
}

// A RELEASE the store does not answer still ends the lease: the sidecar
// stops renewing the lock its client let go, and releases it in the
// background. A later acquire on the same connection gets a new grant, not
// the old token again.
func TestFailedReleaseStillLetsGo(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	s := l.NewSession(nil)
	tok := acquire(t, s, "a", lockcore.AcquireOptions{TTL: 200 * time.Millisecond})
	f.set(func(f *faulty) { f.releaseFails = 1 })
	if ok, err := s.Release(context.Background(), "a", ""); ok || err == nil {
		t.Fatalf("Release with the upstream down = %v, %v; want an error", ok, err)
	}
	if held := s.Held(); len(held) != 0 {
		t.Errorf("Held = %v after the release failed, want nothing", held)
	}
	if got := f.waitRelease(t); got != tok {
		t.Errorf("background release of %q, want the lease's token %q", got, tok)
	}
	f.mu.Lock()
	renews := f.renews
	f.mu.Unlock()
	f.clock.Advance(time.Second) // five times the ttl: renewals would have come
	again := acquire(t, s, "a", lockcore.AcquireOptions{TTL: time.Minute})
	if again == tok {
		t.Errorf("acquire after a failed release returned the released token %q", tok)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.renews != renews {
		t.Errorf("the released lease was renewed %d times after its release", f.renews-renews)
	}
}

// A renewal that finds the lock gone (released elsewhere, or expired)
// declares it lost at once.
func TestLostWhenStoreForgets(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	ev := newLostEvents(f.clock)
	s := l.NewSession(ev.onLost)
	tok := acquire(t, s, "a", lockcore.AcquireOptions{TTL: 100 * time.Millisecond})
	if r, _ := f.Store.Release(context.Background(), lockcore.ReleaseRequest{Name: "a", Token: tok}); !r.Released {
		t.Fatal("direct release failed")
	}
	// Its first renewal, at half the ttl, finds it gone.
	start := f.clock.Now()
	if at := ev.advanceUntilLost(t, f.clock, s, "a", time.Millisecond, time.Second); at.Sub(start) > 60*time.Millisecond {
		t.Errorf("lost %v after the release, want at its first renewal, at half the 100ms ttl", at.Sub(start))
	}
	if ok, err := s.Renew(context.Background(), "a", time.Second, ""); ok || err != nil {
		t.Errorf("Renew after loss = %v, %v; want false", ok, err)
	}
}

// An acquire whose reply is lost is given back: the lock is not left held
// by a grant nobody knows of.
func TestAmbiguousAcquireIsReleased(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	s := l.NewSession(nil)
	f.set(func(f *faulty) { f.acquireErr = errors.New("injected: connection reset after the script ran") })
	if tok, err := s.Acquire(context.Background(), "a", lockcore.AcquireOptions{TTL: time.Minute}); err == nil || tok != "" {
		t.Fatalf("Acquire = %q, %v; want the error", tok, err)
	}
	if tok := f.waitRelease(t); !strings.HasPrefix(tok, ":") {
		t.Errorf("released %q, want the nonce-only token: the fence was never learned", tok)
	}
	if st, _ := f.Store.Inspect(context.Background(), "a"); st.Held {
		t.Errorf("the lost grant is still held: %+v", st)
	}
}

// A grant whose reply came after its validity is useless: given back, and
// the caller gets ErrTooSlow, never a token.
func TestGrantTooLate(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	s := l.NewSession(nil)
	f.set(func(f *faulty) { f.acquireDelay = 60 * time.Millisecond })
	tok, err := s.Acquire(context.Background(), "a", lockcore.AcquireOptions{TTL: 50 * time.Millisecond})
	if !errors.Is(err, lockcore.ErrTooSlow) || tok != "" {
		t.Fatalf("Acquire = %q, %v; want ErrTooSlow", tok, err)
	}
	f.waitRelease(t)
	if st, _ := f.Store.Inspect(context.Background(), "a"); st.Held {
		t.Errorf("the late grant is still held: %+v", st)
	}
}

// A failed renewal with a shorter ttl may have been applied, so the
// lease's validity shrinks to what that ttl allows.
func TestFailedShorterRenewShrinksValidity(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	s := l.NewSession(nil)
	acquire(t, s, "a", lockcore.AcquireOptions{TTL: time.Minute})
	f.set(func(f *faulty) { f.renewErr = errors.New("injected: timeout") })
	if _, err := s.Renew(context.Background(), "a", 20*time.Millisecond, ""); err == nil {
		t.Fatal("Renew did not fail")
	}
	f.clock.Advance(30 * time.Millisecond)
	if got := s.Held(); len(got) != 0 {
		t.Errorf("Held = %v: the 20ms ttl may have been applied, so the lease can't be vouched for", got)
	}
}

func TestCloseReleasesOwnedOnly(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	s := l.NewSession(nil)
	acquire(t, s, "owned", lockcore.AcquireOptions{TTL: time.Minute})
	acquire(t, s, "detached", lockcore.AcquireOptions{TTL: time.Minute, Detached: true})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if st, _ := f.Store.Inspect(ctx, "owned"); st.Held {
		t.Error("owned lock still held after Close")
	}
	if st, _ := f.Store.Inspect(ctx, "detached"); !st.Held {
		t.Error("detached lock released by Close")
	}
	if tok, err := s.Acquire(ctx, "x", lockcore.AcquireOptions{}); err == nil || tok != "" {
		t.Errorf("Acquire on a closed session = %q, %v", tok, err)
	}
}

// A waiter whose context ends (its client hung up) never acquires, even
// when the lock frees at that moment.
func TestCancelledWaiterNeverAcquires(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	holder, waiter := l.NewSession(nil), l.NewSession(nil)
	acquire(t, holder, "a", lockcore.AcquireOptions{TTL: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		tok, err := waiter.Acquire(ctx, "a", lockcore.AcquireOptions{TTL: time.Minute, Wait: time.Minute})
		if tok != "" {
			err = errors.New("acquired: " + tok)
		}
		done <- err
	}()
	for l.Waiters("a") != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Store.Inspect(context.Background(), "a"); st.Held {
		t.Error("the departed waiter took the lock")
	}
}

// A local release wakes a local waiter at once, without waiting for its
// next poll.
func TestReleaseWakesWaiter(t *testing.T) {
	l, _ := newLocks(t, lockcore.Config{Retry: lockcore.Backoff{Base: time.Hour, Max: time.Hour}})
	holder, waiter := l.NewSession(nil), l.NewSession(nil)
	acquire(t, holder, "a", lockcore.AcquireOptions{TTL: time.Minute})
	got := make(chan string, 1)
	go func() {
		tok, _ := waiter.Acquire(context.Background(), "a", lockcore.AcquireOptions{TTL: time.Minute, Wait: time.Minute})
		got <- tok
	}()
	for l.Waiters("a") != 1 {
		time.Sleep(time.Millisecond)
	}
	if ok, err := holder.Release(context.Background(), "a", ""); !ok || err != nil {
		t.Fatal(ok, err)
	}
	select {
	case tok := <-got:
		if tok == "" {
			t.Error("waiter did not acquire")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter still asleep: with a 1h poll, only the release could wake it")
	}
}

func TestShutdownEndsWaitsAndReleases(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	defer mem.Close()
	l := mustNew(t, mem, lockcore.Config{})
	holder, waiter := l.NewSession(nil), l.NewSession(nil)
	acquire(t, holder, "a", lockcore.AcquireOptions{TTL: time.Minute})
	acquire(t, holder, "d", lockcore.AcquireOptions{TTL: time.Minute, Detached: true})
	done := make(chan error, 1)
	go func() {
		_, err := waiter.Acquire(context.Background(), "a", lockcore.AcquireOptions{Wait: time.Minute})
		done <- err
	}()
	for l.Waiters("a") != 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, lockcore.ErrShuttingDown) {
		t.Errorf("waiter got %v, want ErrShuttingDown", err)
	}
	if st, _ := mem.Inspect(ctx, "a"); st.Held {
		t.Error("owned lock still held after Shutdown")
	}
	if st, _ := mem.Inspect(ctx, "d"); !st.Held {
		t.Error("Shutdown released a detached lock, which belongs to no connection")
	}
	if _, err := l.NewSession(nil).Acquire(ctx, "b", lockcore.AcquireOptions{}); !errors.Is(err, lockcore.ErrShuttingDown) {
		t.Errorf("Acquire after Shutdown: %v", err)
	}
}

func TestMaxLocksPerSession(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{MaxLocksPerSession: 2})
	s := l.NewSession(nil)
	acquire(t, s, "a", lockcore.AcquireOptions{})
	acquire(t, s, "b", lockcore.AcquireOptions{TTL: 20 * time.Millisecond, Detached: true})
	if _, err := s.Acquire(context.Background(), "c", lockcore.AcquireOptions{}); !errors.Is(err, lockcore.ErrTooManyLocks) {
		t.Fatalf("third lock: %v, want ErrTooManyLocks", err)
	}
	acquire(t, s, "a", lockcore.AcquireOptions{}) // re-acquiring a held one is fine
	f.clock.Advance(30 * time.Millisecond)        // the detached lease's ttl runs out
	acquire(t, s, "c", lockcore.AcquireOptions{})
}

func TestTokens(t *testing.T) {
	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{"1:a", true}, {"1795738583898379:4996f7a0e63318c46cb1f0a70bb9fd4e", true},
		{"0:a", false}, {"-1:a", false}, {"+1:a", false}, {"1:", false}, {":a", false}, {"a:b", false},
		{"99999999999999999999:a", false}, {"1", false}, {"", false},
	} {
		if _, _, ok := lockcore.ParseToken(tc.token); ok != tc.ok {
			t.Errorf("ParseToken(%q) ok = %v, want %v", tc.token, ok, tc.ok)
		}
	}
	if !lockcore.TokenMatches("5:abc", ":abc") || lockcore.TokenMatches("5:xabc", ":abc") || lockcore.TokenMatches("5:abc", "6:abc") {
		t.Error("TokenMatches")
	}
}

// MAXHOLD ends a lease even while it is being renewed: released, and its
// holder told, so a client that hangs with its connection open cannot
// block others for ever.
func TestMaxHold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    time.Duration // Config.MaxHold
		opt    time.Duration // AcquireOptions.MaxHold
		capped time.Duration // the cap in effect
	}{
		{"per lock", 0, 300 * time.Millisecond, 300 * time.Millisecond},
		{"configured", 300 * time.Millisecond, 0, 300 * time.Millisecond},
		{"the lower wins", 300 * time.Millisecond, time.Hour, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, f := newLocks(t, lockcore.Config{MaxHold: tc.cfg})
			ev := newLostEvents(f.clock)
			s := l.NewSession(ev.onLost)
			start := f.clock.Now()
			acquire(t, s, "m", lockcore.AcquireOptions{TTL: 100 * time.Millisecond, MaxHold: tc.opt})
			if st, _ := f.Store.Inspect(context.Background(), "m"); st.TTL > tc.capped {
				t.Errorf("store ttl %v exceeds the cap %v", st.TTL, tc.capped)
			}
			// Renewals keep it well past its 100 ms ttl, until the cap (less
			// the drift margin: the store's ttl never runs past the cap).
			lostAt := ev.advanceUntilLost(t, f.clock, s, "m", 5*time.Millisecond, 10*tc.capped)
			// Ended by the cap, less the drift margin and the lead with which
			// a loss is told (a tenth of the cap).
			if held := lostAt.Sub(start); held < tc.capped-lockcore.Drift(tc.capped)-tc.capped/10 || held > tc.capped {
				t.Errorf("ended after %v, want at the %v cap", held, tc.capped)
			}
			if n := l.Stats().Lost; n != 0 {
				t.Errorf("the cap counted %d lost lock(s): nothing failed", n)
			}
			f.waitRelease(t)
			if st, _ := f.Store.Inspect(context.Background(), "m"); st.Held {
				t.Errorf("still held in the store after the cap: %+v", st)
			}
			if ok, _ := s.Renew(context.Background(), "m", time.Minute, ""); ok {
				t.Error("renewed after the cap")
			}
		})
	}
}

// An explicit renewal never carries a lock past its MAXHOLD.
func TestRenewStopsAtMaxHold(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	s := l.NewSession(nil)
	acquire(t, s, "m", lockcore.AcquireOptions{TTL: time.Minute, MaxHold: time.Second})
	if ok, err := s.Renew(context.Background(), "m", time.Hour, ""); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if st, _ := f.Store.Inspect(context.Background(), "m"); st.TTL > time.Second {
		t.Errorf("store ttl after RENEW = %v, past the 1s cap", st.TTL)
	}
}

// An owned lease the session still lists when the store grants the name
// anew (it was released by its token elsewhere) is lost, and its holder
// told, not silently replaced.
func TestReplacedOwnedLeaseIsLost(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	ev := newLostEvents(f.clock)
	s := l.NewSession(ev.onLost)
	tok := acquire(t, s, "a", lockcore.AcquireOptions{TTL: time.Minute})
	if r, _ := f.Store.Release(context.Background(), lockcore.ReleaseRequest{Name: "a", Token: tok}); !r.Released {
		t.Fatal("direct release failed")
	}
	acquire(t, s, "a", lockcore.AcquireOptions{TTL: time.Minute, Detached: true})
	ev.wait(t)
	if n := l.Stats().Lost; n != 1 {
		t.Errorf("lost %d, want 1", n)
	}
	if held := l.Stats().Held; held != 1 {
		t.Errorf("held %d, want 1 (the new detached lease)", held)
	}
}

// Holds is true for the token a session holds while it can vouch for it,
// and false, dropping the lease, once its validity has run out: a token
// whose reply was held up past its validity never goes out.
func TestHoldsChecksValidity(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	s := l.NewSession(nil)
	tok := acquire(t, s, "a", lockcore.AcquireOptions{TTL: time.Second, Detached: true})
	if !s.Holds("a", tok) || s.Holds("a", tok+"x") || s.Holds("b", tok) {
		t.Fatal("Holds is wrong for a fresh lease")
	}
	f.clock.Advance(time.Second)
	if s.Holds("a", tok) {
		t.Error("Holds is true after the validity ran out")
	}
	if len(s.Held()) != 0 {
		t.Errorf("Held = %v after Holds found the lease lapsed", s.Held())
	}
}

// Leases taken within a moment of each other are renewed at one moment,
// so that their renewals reach the store together and can share a call;
// none of them later than its own time.
func TestRenewalsFallDueTogether(t *testing.T) {
	l, f := newLocks(t, lockcore.Config{})
	s := l.NewSession(nil)
	const n = 10
	var due []time.Time // each lease's own renewal time: half its validity
	for i := range n {
		start := f.clock.Now()
		acquire(t, s, fmt.Sprint("l", i), lockcore.AcquireOptions{TTL: 10 * time.Second})
		due = append(due, start.Add((10*time.Second-lockcore.Drift(10*time.Second))/2))
		f.clock.Advance(7 * time.Millisecond) // 63ms from the first to the last
	}
	f.clock.Advance(6 * time.Second) // every first renewal, and no second
	f.mu.Lock()
	at := slices.Clone(f.renewedAt)
	f.mu.Unlock()
	if len(at) != n {
		t.Fatalf("%d renewals, want %d", len(at), n)
	}
	moments := map[time.Time]bool{}
	for _, a := range at {
		moments[a] = true
	}
	// 63ms apart at most: on a grid of 100ms, one moment or two.
	if len(moments) > 2 {
		t.Errorf("renewals at %d moments %v; want them together, at 2 at most", len(moments), at)
	}
	for i, a := range at {
		if a.After(due[i]) {
			t.Errorf("lease %d renewed at %v, after its due time %v", i, a, due[i])
		}
		if due[i].Sub(a) > 500*time.Millisecond {
			t.Errorf("lease %d renewed %v early, want less than a tenth of its 5s interval", i, due[i].Sub(a))
		}
	}
}
