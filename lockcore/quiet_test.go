package lockcore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/clocktest"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
)

// resettable is a real embedded store whose Health ID the test changes, as
// a restarted upstream's would, and which records what it is told.
type resettable struct {
	lockcore.Store
	mu        sync.Mutex
	id        string
	data      string // the data set's identity; "" follows id (a restart that lost everything)
	invalid   int    // Invalidate calls
	outstand  time.Duration
	announced time.Duration
	accepted  string
	quiet     time.Duration // announced by "another sidecar"
	announce  error
}

func (r *resettable) Health(ctx context.Context) (lockcore.Health, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := r.data
	if data == "" {
		data = r.id
	}
	return lockcore.Health{ID: r.id, Data: data, Quiet: r.quiet, Outstanding: r.outstand}, nil
}

func (r *resettable) AnnounceQuiet(ctx context.Context, _ string, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.announce != nil {
		return r.announce
	}
	r.announced = d
	return nil
}

func (r *resettable) Accept(h lockcore.Health) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted = h.ID
}

func (r *resettable) Invalidate(context.Context, string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.invalid++
	r.data = "invalidated"
	return nil
}

func (r *resettable) Risks(context.Context) ([]lockcore.Risk, error) { return nil, nil }

func (r *resettable) Persistence(context.Context) (string, error) { return "none", nil }

func (r *resettable) set(fn func(r *resettable)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r)
}

func newResettable(t *testing.T, cfg lockcore.Config) (*lockcore.Locks, *resettable) {
	t.Helper()
	mem := memstore.New(memstore.Options{})
	r := &resettable{Store: mem, id: "one", outstand: -1}
	l := mustNew(t, r, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Shutdown(ctx)
		mem.Close()
	})
	return l, r
}

// A changed store identity loses every lease (owned ones pushed), answers
// the blocked, refuses grants for the quiet period, announces it, and only
// then accepts the new store.
func TestCheckUpstreamReset(t *testing.T) {
	const quiet = 300 * time.Millisecond
	l, r := newResettable(t, lockcore.Config{QuietPeriod: quiet})
	ctx := context.Background()
	if err := l.CheckUpstream(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.accepted != "one" {
		t.Fatalf("accepted %q after the first check", r.accepted)
	}
	ev := newLostEvents(lockcore.SystemClock{})
	s := l.NewSession(ev.onLost)
	acquire(t, s, "owned", lockcore.AcquireOptions{TTL: time.Minute})
	acquire(t, s, "detached", lockcore.AcquireOptions{TTL: time.Minute, Detached: true})
	other := l.NewSession(nil)
	waited := make(chan error, 1)
	go func() {
		_, err := other.Acquire(ctx, "owned", lockcore.AcquireOptions{TTL: time.Minute, Wait: time.Minute})
		waited <- err
	}()
	for l.Waiters("owned") == 0 {
		time.Sleep(time.Millisecond) // the waiter's queueing has no event to await
	}

	// The same identity again changes nothing.
	if err := l.CheckUpstream(ctx, r); err != nil || len(s.Held()) != 2 || l.QuietLeft() != 0 {
		t.Fatalf("unchanged store: err %v, held %v, quiet %v", err, s.Held(), l.QuietLeft())
	}

	r.set(func(r *resettable) { r.id = "two" })
	if err := l.CheckUpstream(ctx, r); err != nil {
		t.Fatal(err)
	}
	ev.wait(t) // the owned lease was pushed as lost
	if h := s.Held(); len(h) != 0 {
		t.Errorf("held after the reset: %v", h)
	}
	if err := <-waited; !errors.Is(err, lockcore.ErrQuietPeriod) {
		t.Errorf("the waiter got %v, want ErrQuietPeriod", err)
	}
	if l.Stats().Lost != 1 {
		t.Errorf("lost %d, want 1 (the detached lease is not counted)", l.Stats().Lost)
	}
	if r.announced != quiet || r.accepted != "two" {
		t.Errorf("announced %v, accepted %q", r.announced, r.accepted)
	}
	_, err := s.Acquire(ctx, "new", lockcore.AcquireOptions{TTL: time.Minute})
	var qe *lockcore.QuietError
	if !errors.As(err, &qe) || qe.Left <= 0 || qe.Left > quiet {
		t.Fatalf("acquire during the quiet period: %v", err)
	}
	time.Sleep(qe.Left) // the quiet period is a span of time: nothing to await
	acquire(t, s, "new", lockcore.AcquireOptions{TTL: time.Minute})
}

// A failed announcement leaves the new store unaccepted, so the next check
// finds the change again; a period announced by another sidecar is adopted
// by one that saw no change itself, and never shortened.
func TestCheckUpstreamAnnouncement(t *testing.T) {
	l, r := newResettable(t, lockcore.Config{QuietPeriod: time.Minute})
	ctx := context.Background()
	if err := l.CheckUpstream(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.set(func(r *resettable) { r.id, r.announce = "two", errors.New("injected: announce failed") })
	if err := l.CheckUpstream(ctx, r); err == nil {
		t.Fatal("CheckUpstream hid the failed announcement")
	}
	if r.accepted != "one" {
		t.Errorf("accepted %q although the announcement failed", r.accepted)
	}
	r.set(func(r *resettable) { r.announce = nil })
	if err := l.CheckUpstream(ctx, r); err != nil || r.announced != time.Minute || r.accepted != "two" {
		t.Fatalf("second check: err %v, announced %v, accepted %q", err, r.announced, r.accepted)
	}

	l2, r2 := newResettable(t, lockcore.Config{})
	r2.set(func(r *resettable) { r.quiet = 10 * time.Second })
	if err := l2.CheckUpstream(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if left := l2.QuietLeft(); left <= 9*time.Second || left > 10*time.Second {
		t.Errorf("adopted quiet left %v, want about 10s", left)
	}
	r2.set(func(r *resettable) { r.quiet = time.Second })
	if err := l2.CheckUpstream(ctx, r2); err != nil {
		t.Fatal(err)
	}
	if left := l2.QuietLeft(); left <= 9*time.Second {
		t.Errorf("a shorter announcement shortened the period to %v", left)
	}
}

// An acquire in flight when the reset lands never hands out a lease from
// the old store: it sees the quiet period and gives the grant back.
func TestResetDuringAcquire(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	defer mem.Close()
	gate := &gatedStore{Store: mem, ran: make(chan struct{}), release: make(chan struct{})}
	l := mustNew(t, gate, lockcore.Config{})
	defer l.Shutdown(context.Background())
	s := l.NewSession(nil)
	res := make(chan error, 1)
	go func() {
		_, err := s.Acquire(context.Background(), "a", lockcore.AcquireOptions{TTL: time.Minute})
		res <- err
	}()
	<-gate.ran // the store granted; the reply is held back
	l.UpstreamReset(time.Minute, "test")
	close(gate.release)
	if err := <-res; !errors.Is(err, lockcore.ErrQuietPeriod) {
		t.Fatalf("Acquire = %v, want ErrQuietPeriod", err)
	}
	if len(s.Held()) != 0 {
		t.Errorf("held %v", s.Held())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := mem.Inspect(context.Background(), "a")
		if !st.Held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the grant was not given back within 5s")
		}
		time.Sleep(time.Millisecond) // the give-back runs in the background
	}
}

// gatedStore holds Acquire's reply back until released.
type gatedStore struct {
	lockcore.Store
	ran, release chan struct{}
	once         sync.Once
}

func (g *gatedStore) Acquire(ctx context.Context, req lockcore.AcquireRequest) (lockcore.Grant, error) {
	gr, err := g.Store.Acquire(ctx, req)
	g.once.Do(func() { close(g.ran) })
	<-g.release
	return gr, err
}

// A server that changed but kept its data (a restart from its files, a
// failover to an up-to-date replica) keeps every lease: nothing is lost or
// pushed, and grants stop only for a check interval and a margin, the time
// every other sidecar is given to find a lock of its own missing.
func TestCheckUpstreamKeptData(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	const interval = 200 * time.Millisecond
	l, r := newResettable(t, lockcore.Config{QuietPeriod: time.Hour, QuietAuto: true, CheckInterval: interval, Clock: clock})
	ctx := context.Background()
	r.set(func(r *resettable) { r.data = "files" })
	if err := l.CheckUpstream(ctx, r); err != nil {
		t.Fatal(err)
	}
	ev := newLostEvents(clock)
	s := l.NewSession(ev.onLost)
	acquire(t, s, "owned", lockcore.AcquireOptions{TTL: time.Minute})
	acquire(t, s, "detached", lockcore.AcquireOptions{TTL: time.Minute, Detached: true})

	r.set(func(r *resettable) { r.id = "two" })
	if err := l.CheckUpstream(ctx, r); err != nil {
		t.Fatal(err)
	}
	if h := s.Held(); len(h) != 2 || r.invalid != 0 || r.announced != 0 || l.Stats().Lost != 0 {
		t.Fatalf("after a change that kept the data: held %v, invalidated %d, announced %v, lost %d",
			h, r.invalid, r.announced, l.Stats().Lost)
	}
	if r.accepted != "two" {
		t.Errorf("accepted %q, want two", r.accepted)
	}
	_, err := s.Acquire(ctx, "new", lockcore.AcquireOptions{TTL: time.Minute})
	var qe *lockcore.QuietError
	if !errors.As(err, &qe) || qe.Left <= interval || qe.Left > interval+time.Second {
		t.Fatalf("acquire right after the change = %v, want a refusal for the check interval and a margin", err)
	}
	clock.Advance(qe.Left)
	acquire(t, s, "new", lockcore.AcquireOptions{TTL: time.Minute})
	select {
	case <-ev.ch:
		t.Fatalf("a lease was pushed as lost: %v", ev.names)
	default:
	}
}

// A server that changed, said it kept its data, but no longer has a lock
// this sidecar granted (a failover to a replica that had not received it)
// is treated as a loss: the store is invalidated, so that every other
// sidecar stops granting too, and the quiet period is bounded by the
// longest lease that may be outstanding, not by the maximum ttl.
func TestCheckUpstreamLockMissing(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	const interval = 200 * time.Millisecond
	mem := memstore.New(memstore.Options{})
	t.Cleanup(func() { mem.Close() })
	r := &resettable{Store: mem, id: "one", data: "files", outstand: 2 * time.Second}
	l := mustNew(t, r, lockcore.Config{QuietPeriod: time.Hour, QuietAuto: true, CheckInterval: interval, Clock: clock})
	t.Cleanup(func() { l.Shutdown(context.Background()) })
	ctx := context.Background()
	if err := l.CheckUpstream(ctx, r); err != nil {
		t.Fatal(err)
	}
	ev := newLostEvents(clock)
	s := l.NewSession(ev.onLost)
	acquire(t, s, "kept", lockcore.AcquireOptions{TTL: 5 * time.Second})
	tok := acquire(t, s, "gone", lockcore.AcquireOptions{TTL: 5 * time.Second})
	// What a failover to a replica that missed the grant leaves.
	if _, err := mem.Release(ctx, lockcore.ReleaseRequest{Name: "gone", Token: tok}); err != nil {
		t.Fatal(err)
	}
	r.set(func(r *resettable) { r.id = "two" })
	if err := l.CheckUpstream(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.invalid != 1 {
		t.Fatalf("invalidated %d times, want 1", r.invalid)
	}
	ev.wait(t)
	ev.wait(t) // both owned leases are lost: the store may have lost others
	if h := s.Held(); len(h) != 0 {
		t.Errorf("held %v after the loss", h)
	}
	// The longest lease known is this sidecar's own, 5s from the fake
	// clock's start, against the store's 2s.
	want := 5*time.Second + lockcore.Drift(5*time.Second) + interval
	if r.announced < 5*time.Second || r.announced > want {
		t.Errorf("announced a quiet period of %v, want at most %v (the longest lease, not the hour of QuietPeriod)", r.announced, want)
	}
	if r.accepted != "two" {
		t.Errorf("accepted %q, want two", r.accepted)
	}
}

// With QuietAuto, a lost data set stops grants only as long as the store
// says a lease may still run; with nothing known, for the whole
// QuietPeriod.
func TestQuietBoundedByOutstanding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outstand time.Duration
		want     time.Duration
	}{
		{"store knows", 2 * time.Second, 2*time.Second + lockcore.Drift(2*time.Second) + 100*time.Millisecond},
		{"nothing outstanding", 0, lockcore.Drift(0) + 100*time.Millisecond},
		{"unknown", -1, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := clocktest.New(time.Unix(1000, 0))
			l, r := newResettable(t, lockcore.Config{QuietPeriod: time.Hour, QuietAuto: true, CheckInterval: 100 * time.Millisecond, Clock: clock})
			r.set(func(r *resettable) { r.outstand = tc.outstand })
			ctx := context.Background()
			if err := l.CheckUpstream(ctx, r); err != nil {
				t.Fatal(err)
			}
			r.set(func(r *resettable) { r.id = "restarted empty" })
			if err := l.CheckUpstream(ctx, r); err != nil {
				t.Fatal(err)
			}
			if r.announced != tc.want || l.QuietLeft() != tc.want {
				t.Errorf("announced %v, quiet left %v; want %v", r.announced, l.QuietLeft(), tc.want)
			}
		})
	}
}
