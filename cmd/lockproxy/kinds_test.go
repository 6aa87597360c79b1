package main

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/lockcore"
)

// acquiring sends LOCK.ACQUIRE args on c in the background; the channel
// gives the token, or "" for a null or an error.
func acquiring(t *testing.T, c doer, args ...any) <-chan string {
	got := make(chan string, 1)
	go func() {
		tok, _ := do(t, c, append([]any{"LOCK.ACQUIRE"}, args...)...).Text()
		got <- tok
	}()
	return got
}

func granted(t *testing.T, got <-chan string) string {
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

func notYet(t *testing.T, got <-chan string) {
	t.Helper()
	select {
	case tok := <-got:
		t.Fatalf("the waiter got %q; it should still wait", tok)
	default:
	}
}

func fence(t *testing.T, tok string) int64 {
	t.Helper()
	f, _, ok := lockcore.ParseToken(tok)
	if !ok {
		t.Fatalf("token %q is not <fence>:<random>", tok)
	}
	return f
}

// Through a Sentinel upstream too, permits and read locks hold, queue
// and hand over as on one Redis.
func TestKindsThroughSentinel(t *testing.T) {
	sen := redistest.StartSentinel(t, redistest.SentinelOptions{})
	p := startProxy(t, map[string]string{"UPSTREAM": sen.URL()})
	a, b, c := p.conn(t, 2), p.conn(t, 2), p.conn(t, 2)
	mustToken(t, a, "sen:sem", 60000, "LIMIT", 1)
	got := acquiring(t, b, "sen:sem", 60000, "LIMIT", 1, "WAIT", 10000)
	waitFor(t, func() bool { return info(t, c, "sen:sem")["waiters"] == int64(1) })
	mustInt(t, 1, a, "LOCK.RELEASE", "sen:sem")
	granted(t, got)
	mustToken(t, a, "sen:rw", 60000, "SHARED")
	mustToken(t, c, "sen:rw", 60000, "SHARED")
	if in := info(t, a, "sen:rw"); in["kind"] != "shared" || in["holders"] != int64(2) {
		t.Errorf("LOCK.INFO = %v, want 2 readers", in)
	}
}

// A semaphore on the wire: LIMIT 2 lets two in; the third waits, and gets
// the permit of a holder whose connection closes; LOCK.INFO says what it
// is; a wrong kind is -WRONGTYPE and changes nothing.
func TestSemaphoreOnTheWire(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		name := "sem:" + t.Name()
		rdb := redis.NewClient(&redis.Options{Addr: p.Addr().String()})
		a := rdb.Conn()
		b, c, watcher := p.conn(t, 2), p.conn(t, 3), p.conn(t, 2)
		ta := mustToken(t, a, name, 60000, "LIMIT", 2)
		tb := mustToken(t, b, name, 60000, "LIMIT", 2)
		mustNull(t, c, name, 60000, "LIMIT", 2)
		in := info(t, b, name)
		if in["kind"] != "semaphore" || in["holders"] != int64(2) || in["limit"] != int64(2) ||
			in["owner"] != "self" || in["fence"] != fence(t, tb) {
			t.Errorf("LOCK.INFO = %v, want b's own permit of a semaphore of 2 with 2 holders", in)
		}
		for _, args := range [][]any{{"LIMIT", 3}, {}, {"SHARED"}} {
			err := do(t, c, append([]any{"LOCK.ACQUIRE", name, 1000}, args...)...).Err()
			if err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE ") || !strings.Contains(err.Error(), "semaphore of LIMIT 2") {
				t.Errorf("LOCK.ACQUIRE %v on a semaphore of 2: %v; want -WRONGTYPE naming it", args, err)
			}
		}
		got := acquiring(t, c, name, 60000, "LIMIT", 2, "WAIT", 10000)
		waitFor(t, func() bool { return info(t, watcher, name)["waiters"] == int64(1) })
		notYet(t, got)
		a.Close()
		rdb.Close() // closes a's socket: its permit is released
		tc := granted(t, got)
		if fence(t, tc) <= max(fence(t, ta), fence(t, tb)) {
			t.Errorf("fences %s, %s, then %s: want the last above both", ta, tb, tc)
		}
		if hs := held(t, c); len(hs) != 1 || hs[0] != name {
			t.Errorf("LOCK.HELD = %v, want [%s]", hs, name)
		}
	})
}

// A read-write lock on the wire: readers together, a writer alone, a late
// reader behind a queued writer, and a try-once reader refused meanwhile.
func TestReadWriteOnTheWire(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		name := "rw:" + t.Name()
		r1, r2, w, r3, r4, watcher := p.conn(t, 2), p.conn(t, 3), p.conn(t, 2), p.conn(t, 2), p.conn(t, 2), p.conn(t, 2)
		mustToken(t, r1, name, 60000, "SHARED")
		mustToken(t, r2, name, 60000, "SHARED")
		if in := info(t, r1, name); in["kind"] != "shared" || in["holders"] != int64(2) || in["owner"] != "self" {
			t.Errorf("LOCK.INFO = %v, want r1 one of 2 readers", in)
		}
		wrote := acquiring(t, w, name, 60000, "WAIT", 10000)
		waitFor(t, func() bool { return info(t, watcher, name)["waiters"] == int64(1) })
		read := acquiring(t, r3, name, 60000, "SHARED", "WAIT", 10000)
		waitFor(t, func() bool { return info(t, watcher, name)["waiters"] == int64(2) })
		mustNull(t, r4, name, 60000, "SHARED")
		mustInt(t, 1, r1, "LOCK.RELEASE", name)
		notYet(t, wrote)
		mustInt(t, 1, r2, "LOCK.RELEASE", name)
		wt := granted(t, wrote)
		if in := info(t, w, name); in["kind"] != "exclusive" || in["holders"] != int64(1) || in["owner"] != "self" {
			t.Errorf("LOCK.INFO = %v, want the writer alone", in)
		}
		notYet(t, read)
		mustInt(t, 1, w, "LOCK.RELEASE", name, wt)
		granted(t, read)
	})
}

// LIMIT and SHARED are checked like any option: bad values and clashes are
// errors that change nothing.
func TestKindOptionErrors(t *testing.T) {
	p := startProxy(t, nil)
	c := p.conn(t, 2)
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"k", "LIMIT", 0}, "ERR invalid LIMIT in 'lock.acquire' command: it must be 1..10000 (LOCKPROXY_MAX_LIMIT)"},
		{[]any{"k", "LIMIT", 10001}, "ERR invalid LIMIT in 'lock.acquire' command: it must be 1..10000 (LOCKPROXY_MAX_LIMIT)"},
		{[]any{"k", "LIMIT", "two"}, "ERR invalid LIMIT in 'lock.acquire' command: it must be 1..10000 (LOCKPROXY_MAX_LIMIT)"},
		{[]any{"k", "LIMIT"}, "ERR syntax error"},
		{[]any{"k", "LIMIT", 2, "SHARED"}, "ERR syntax error"},
		{[]any{"k", "SHARED", "SHARED"}, "ERR syntax error"},
		{[]any{"k", "LIMIT", 2, "LIMIT", 2}, "ERR syntax error"},
	} {
		err := do(t, c, append([]any{"LOCK.ACQUIRE"}, tc.args...)...).Err()
		if err == nil || err.Error() != tc.want {
			t.Errorf("LOCK.ACQUIRE %v: %v; want %q", tc.args, err, tc.want)
		}
	}
	mustToken(t, c, "k", 1000, "SHARED")
	err := do(t, c, "LOCK.ACQUIRE", "k", 1000).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE this connection holds") {
		t.Errorf("the reader asking for the writer's lock: %v; want -WRONGTYPE", err)
	}
	if in := info(t, c, "k"); in["kind"] != "shared" || in["owner"] != "self" {
		t.Errorf("LOCK.INFO after the refusal = %v, want still its reader", in)
	}
}

// At most LIMIT clients over two sidecars believe they hold a permit at
// once, however they churn.
func TestSemaphoreChurnAcrossSidecars(t *testing.T) {
	srv := redistest.Start(t)
	settings := map[string]string{"UPSTREAM": srv.URL(), "RETRY_BASE": "1ms", "RETRY_MAX": "5ms"}
	proxies := []*proxy{startProxy(t, settings), startProxy(t, settings)}
	const limit, workers, rounds = 3, 8, 25
	var holding, most, served atomic.Int64
	var wg sync.WaitGroup
	for i := range workers {
		c := proxies[i%2].conn(t, 2)
		wg.Go(func() {
			for range rounds {
				tok, err := do(t, c, "LOCK.ACQUIRE", "churn", 5000, "LIMIT", limit, "WAIT", 10000).Text()
				if err != nil {
					t.Error(err)
					return
				}
				h := holding.Add(1)
				for m := most.Load(); h > m && !most.CompareAndSwap(m, h); m = most.Load() {
				}
				time.Sleep(200 * time.Microsecond) // widen the window an extra holder would use
				holding.Add(-1)
				served.Add(1)
				if r, _ := do(t, c, "LOCK.RELEASE", "churn", tok).Int64(); r != 1 {
					t.Error("release of a held permit returned", r)
				}
			}
		})
	}
	wg.Wait()
	if most.Load() > limit || served.Load() != workers*rounds {
		t.Errorf("%d held at once (limit %d), %d served of %d", most.Load(), limit, served.Load(), workers*rounds)
	}
	t.Logf("at most %d of %d at once", most.Load(), limit)
}

// A permit capped by MAXHOLD is lost at the cap: its holder is told by a
// lock.lost push, and the permit goes to a waiter.
func TestPermitMaxHoldPush(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		name := "cap:" + t.Name()
		pushes := make(chan pushed, 4)
		a := timedConn(t, p, pushes)
		timedDo(t, a, "HELLO", "3")
		tok, sent := timedAcquire(t, a, name, "60000", "LIMIT", "1", "MAXHOLD", "300")
		b := p.conn(t, 2)
		got := acquiring(t, b, name, 60000, "LIMIT", 1, "WAIT", 10000)
		push, ok := nextPush(pushes, time.Now().Add(10*time.Second))
		if !ok || !isLost(push, name, tok) {
			t.Fatalf("push %v, %v; want lock.lost %s %s", push.v, ok, name, tok)
		}
		// Told at the cap less the drift margin (4ms) and the lead a loss
		// is told with (a tenth of the cap): 266ms after the grant.
		if d := push.at.Sub(sent); d < 266*time.Millisecond {
			t.Errorf("lost after %v, before its MAXHOLD of 300ms (less 34ms)", d)
		}
		granted(t, got)
	})
}
