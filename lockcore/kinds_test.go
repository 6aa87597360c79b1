package lockcore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

var (
	readers = lockcore.AcquireOptions{TTL: time.Minute, Kind: lockcore.Kind{Shared: true}}
	writer  = lockcore.AcquireOptions{TTL: time.Minute}
)

func limit(n int) lockcore.AcquireOptions {
	return lockcore.AcquireOptions{TTL: time.Minute, Kind: lockcore.Kind{Limit: n}}
}

func waiting(o lockcore.AcquireOptions) lockcore.AcquireOptions {
	o.Wait = time.Minute
	return o
}

// acquiring has s acquire name with o in the background; the channel gives
// its token ("" if it got none).
func acquiring(s *lockcore.Session, name string, o lockcore.AcquireOptions) <-chan string {
	got := make(chan string, 1)
	go func() {
		tok, _ := s.Acquire(context.Background(), name, o)
		got <- tok
	}()
	return got
}

func gets(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case tok := <-got:
		if tok == "" {
			t.Fatal("the waiter got nothing")
		}
		return tok
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter got nothing within 10s")
		return ""
	}
}

func stillWaits(t *testing.T, got <-chan string) {
	t.Helper()
	select {
	case tok := <-got:
		t.Fatalf("the waiter got %q; it should still wait", tok)
	default:
	}
}

// A semaphore over two sidecars: two permits, a third waits, and a holder's
// connection closing hands its permit on; fences rise.
func TestSemaphoreAcrossSidecars(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(cfg lockcore.Config) (*lockcore.Locks, *counting)) {
		a, _ := sidecar(lockcore.Config{})
		b, sb := sidecar(lockcore.Config{})
		a1, b1, a2, b2 := a.NewSession(nil), b.NewSession(nil), a.NewSession(nil), b.NewSession(nil)
		t1 := acquire(t, a1, "sem", limit(2))
		t2 := acquire(t, b1, "sem", limit(2))
		if tok, err := a2.Acquire(context.Background(), "sem", limit(2)); tok != "" || err != nil {
			t.Fatalf("a third permit of two = %q, %v; want none", tok, err)
		}
		got := acquiring(b2, "sem", waiting(limit(2)))
		queuedIs(t, sb, "sem", 1)
		stillWaits(t, got)
		a1.Close()
		t3 := gets(t, got)
		if fenceOf(t, t3) <= max(fenceOf(t, t1), fenceOf(t, t2)) {
			t.Errorf("fences %s, %s then %s: want the last above both", t1, t2, t3)
		}
		info, err := b2.Info(context.Background(), "sem")
		if err != nil || info.Owner != lockcore.OwnerSelf || info.Kind.Limit != 2 || info.Holders != 2 || info.Fence != fenceOf(t, t3) {
			t.Errorf("Info = %+v, %v; want b2's own permit of two held", info, err)
		}
	})
}

// Readers on two sidecars hold together; a writer waits for both, a reader
// that comes after the writer waits behind it, and a try-once reader gets
// nothing.
func TestReadersAndWriterAcrossSidecars(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(cfg lockcore.Config) (*lockcore.Locks, *counting)) {
		a, sa := sidecar(lockcore.Config{})
		b, _ := sidecar(lockcore.Config{})
		r1, r2, w, r3, r4 := a.NewSession(nil), b.NewSession(nil), a.NewSession(nil), b.NewSession(nil), b.NewSession(nil)
		acquire(t, r1, "rw", readers)
		acquire(t, r2, "rw", readers)
		wrote := acquiring(w, "rw", waiting(writer))
		queuedIs(t, sa, "rw", 1)
		read := acquiring(r3, "rw", waiting(readers))
		queuedIs(t, sa, "rw", 2)
		if tok, err := r4.Acquire(context.Background(), "rw", readers); tok != "" || err != nil {
			t.Errorf("a try-once reader behind a queued writer = %q, %v; want none", tok, err)
		}
		if ok, err := r1.Release(context.Background(), "rw", ""); !ok || err != nil {
			t.Fatal(ok, err)
		}
		stillWaits(t, wrote)
		r2.Close()
		wt := gets(t, wrote)
		stillWaits(t, read)
		if ok, err := w.Release(context.Background(), "rw", wt); !ok || err != nil {
			t.Fatal(ok, err)
		}
		gets(t, read)
	})
}

// A name asked for as another family than it is held as is an error that
// says so; so is asking again, on the same connection, as another kind.
func TestKindErrors(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(cfg lockcore.Config) (*lockcore.Locks, *counting)) {
		a, _ := sidecar(lockcore.Config{})
		s1, s2 := a.NewSession(nil), a.NewSession(nil)
		acquire(t, s1, "k", limit(2))
		for _, o := range []lockcore.AcquireOptions{limit(3), writer, readers, waiting(limit(1))} {
			_, err := s2.Acquire(context.Background(), "k", o)
			var ke *lockcore.KindError
			if !errors.Is(err, lockcore.ErrWrongKind) || !errors.As(err, &ke) || ke.Held.Limit != 2 || ke.Self {
				t.Errorf("%v on a semaphore of 2: %v; want a KindError naming it", o.Kind, err)
			}
		}
		_, err := s1.Acquire(context.Background(), "k", limit(3))
		var ke *lockcore.KindError
		if !errors.As(err, &ke) || !ke.Self {
			t.Errorf("its holder asking for another kind: %v; want a KindError of its own", err)
		}
		if tok, err := s1.Acquire(context.Background(), "k", limit(2)); tok == "" || err != nil {
			t.Errorf("its holder asking again for the same = %q, %v", tok, err)
		}
	})
}

// Under churn, no more than Limit sessions over two sidecars ever believe
// they hold a permit.
func TestSemaphoreChurn(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(cfg lockcore.Config) (*lockcore.Locks, *counting)) {
		sidecars := []*lockcore.Locks{}
		for range 2 {
			l, _ := sidecar(lockcore.Config{})
			sidecars = append(sidecars, l)
		}
		const n, workers, rounds = 3, 8, 25
		var holding, most, served atomic.Int64
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				s := sidecars[i%2].NewSession(nil)
				defer s.Close()
				for range rounds {
					tok, err := s.Acquire(context.Background(), "churn", waiting(limit(n)))
					if err != nil || tok == "" {
						t.Errorf("Acquire = %q, %v", tok, err)
						return
					}
					h := holding.Add(1)
					for m := most.Load(); h > m && !most.CompareAndSwap(m, h); m = most.Load() {
					}
					time.Sleep(100 * time.Microsecond)
					holding.Add(-1)
					served.Add(1)
					if ok, err := s.Release(context.Background(), "churn", ""); !ok || err != nil {
						t.Errorf("Release = %v, %v", ok, err)
						return
					}
				}
			})
		}
		wg.Wait()
		if most.Load() > n {
			t.Errorf("%d held a semaphore of %d at once", most.Load(), n)
		}
		if served.Load() != workers*rounds {
			t.Errorf("served %d, want %d", served.Load(), workers*rounds)
		}
		t.Logf("at most %d of %d at once, %d acquisitions", most.Load(), n, served.Load())
	})
}

func fenceOf(t *testing.T, token string) int64 {
	t.Helper()
	f, _, ok := lockcore.ParseToken(token)
	if !ok {
		t.Fatalf("token %q is not <fence>:<nonce>", token)
	}
	return f
}

// muteStore drops the questions sidecars ask each other, as a sidecar
// that does not answer would.
type muteStore struct{ lockcore.Store }

func (muteStore) Notify(context.Context, string, string, string) error { return nil }

// An admin's listing on one sidecar names the clients of another's
// holders, which it asks; a sidecar that does not answer leaves them
// unknown, after a bounded wait.
func TestListAsksOtherSidecars(t *testing.T) {
	stores(t, func(t *testing.T, sidecar func(cfg lockcore.Config) (*lockcore.Locks, *counting)) {
		a, _ := sidecar(lockcore.Config{})
		b, cb := sidecar(lockcore.Config{})
		s := a.NewSession(nil)
		s.SetClient(lockcore.Client{Name: "worker-7", Addr: "10.0.0.7:5000"})
		tok := acquire(t, s, "listed", limit(2))
		all := func(string) bool { return true }
		var got []lockcore.ListEntry
		var err error
		// Until a has subscribed to its channel (it does so as it starts),
		// a question to it is lost, and the listing says nothing of its
		// client.
		waitUntil(t, func() bool {
			got, err = b.List(context.Background(), all, 10)
			return err != nil || len(got) != 1 || len(got[0].Holders) != 1 || got[0].Holders[0].Client.Name != ""
		})
		if err != nil || len(got) != 1 || len(got[0].Holders) != 1 {
			t.Fatalf("List = %+v, %v; want one name with one holder", got, err)
		}
		if h := got[0].Holders[0]; h.Client.Name != "worker-7" || h.Client.Addr != "10.0.0.7:5000" ||
			h.Sidecar != a.ID() || h.Fence != fenceOf(t, tok) {
			t.Errorf("holder %+v; want worker-7 at 10.0.0.7:5000 on sidecar %s", h, a.ID())
		}
		// A sidecar that does not answer.
		mute := mustNew(t, muteStore{cb.Store}, lockcore.Config{})
		t.Cleanup(func() { _ = mute.Shutdown(context.Background()) })
		start := time.Now()
		got, err = mute.List(context.Background(), all, 10)
		if err != nil || len(got) != 1 || got[0].Holders[0].Client != (lockcore.Client{}) {
			t.Errorf("List with no answer = %+v, %v; want the holder, its client unknown", got, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("List waited %v for an answer that never came", d)
		}
	})
}
