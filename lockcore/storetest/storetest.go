// Package storetest is the conformance suite every lockcore.Store must pass,
// so that the embedded store and the Redis store keep the same semantics.
package storetest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

// Run runs the suite. newStore returns a fresh store whose names do not
// clash with any other test's; it is closed by the caller's cleanup.
func Run(t *testing.T, newStore func(t *testing.T) lockcore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s lockcore.Store)
	}{
		{"AcquireFree", testAcquireFree},
		{"AcquireHeld", testAcquireHeld},
		{"AcquireRetrySameNonce", testAcquireRetry},
		{"RenewRightAndWrongToken", testRenew},
		{"ReleaseRightAndWrongToken", testRelease},
		{"NonceOnlyToken", testNonceOnly},
		{"FencesIncrease", testFencesIncrease},
		{"Expiry", testExpiry},
		{"ReleaseAll", testReleaseAll},
		{"InspectFree", testInspectFree},
		{"AwkwardNames", testAwkwardNames},
		{"MutualExclusion", testMutualExclusion},
		{"CancelledContext", testCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// name returns a lock name unique to the running test.
func name(t *testing.T) string { return "storetest/" + t.Name() }

func mustAcquire(t *testing.T, s lockcore.Store, name, nonce string, ttl time.Duration) string {
	t.Helper()
	g, err := s.Acquire(ctx(t), name, nonce, ttl)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", name, err)
	}
	if !g.Acquired {
		t.Fatalf("Acquire(%q) = not acquired (holder ttl %v), want acquired", name, g.HolderTTL)
	}
	return g.Token
}

func fenceOf(t *testing.T, token string) int64 {
	t.Helper()
	f, _, ok := lockcore.ParseToken(token)
	if !ok {
		t.Fatalf("token %q is not <fence>:<nonce>", token)
	}
	return f
}

func testAcquireFree(t *testing.T, s lockcore.Store) {
	tok := mustAcquire(t, s, name(t), "n1", time.Minute)
	if !strings.HasSuffix(tok, ":n1") {
		t.Errorf("token %q does not end with the nonce", tok)
	}
	if f := fenceOf(t, tok); f <= 0 {
		t.Errorf("fence %d, want > 0", f)
	}
	st, err := s.Inspect(ctx(t), name(t))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Held || st.Token != tok || st.TTL <= 0 || st.TTL > time.Minute || st.Fence != fenceOf(t, tok) {
		t.Errorf("Inspect = %+v, want held by %q with ttl in (0, 1m]", st, tok)
	}
}

func testAcquireHeld(t *testing.T, s lockcore.Store) {
	mustAcquire(t, s, name(t), "n1", time.Minute)
	g, err := s.Acquire(ctx(t), name(t), "n2", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if g.Acquired {
		t.Fatalf("second holder acquired %q", g.Token)
	}
	if g.HolderTTL <= 30*time.Second || g.HolderTTL > time.Minute {
		t.Errorf("HolderTTL = %v, want the holder's ttl (about 1m)", g.HolderTTL)
	}
}

func testAcquireRetry(t *testing.T, s lockcore.Store) {
	tok := mustAcquire(t, s, name(t), "n1", time.Second)
	again := mustAcquire(t, s, name(t), "n1", time.Minute)
	if again != tok {
		t.Errorf("retried acquire gave %q, want the same token %q", again, tok)
	}
	st, _ := s.Inspect(ctx(t), name(t))
	if st.TTL <= 30*time.Second {
		t.Errorf("retried acquire left ttl %v, want it reset to about 1m", st.TTL)
	}
}

func testRenew(t *testing.T, s lockcore.Store) {
	tok := mustAcquire(t, s, name(t), "n1", time.Second)
	ok, err := s.Renew(ctx(t), name(t), tok, time.Minute)
	if err != nil || !ok {
		t.Fatalf("Renew(right token) = %v, %v; want true", ok, err)
	}
	if st, _ := s.Inspect(ctx(t), name(t)); st.TTL <= 30*time.Second {
		t.Errorf("ttl after renew = %v, want about 1m", st.TTL)
	}
	wrong := []string{strconv.FormatInt(fenceOf(t, tok), 10) + ":other", strconv.FormatInt(fenceOf(t, tok)+1, 10) + ":n1", ":other", "x"}
	for _, w := range wrong {
		ok, err := s.Renew(ctx(t), name(t), w, time.Millisecond)
		if err != nil || ok {
			t.Errorf("Renew(%q) = %v, %v; want false", w, ok, err)
		}
	}
	if st, _ := s.Inspect(ctx(t), name(t)); !st.Held || st.Token != tok || st.TTL <= 30*time.Second {
		t.Errorf("wrong tokens touched the holder: %+v", st)
	}
	ok, err = s.Renew(ctx(t), name(t)+"/none", tok, time.Second)
	if err != nil || ok {
		t.Errorf("Renew(free name) = %v, %v; want false", ok, err)
	}
}

func testRelease(t *testing.T, s lockcore.Store) {
	tok := mustAcquire(t, s, name(t), "n1", time.Minute)
	for _, w := range []string{strconv.FormatInt(fenceOf(t, tok), 10) + ":other", ":other"} {
		ok, err := s.Release(ctx(t), name(t), w)
		if err != nil || ok {
			t.Errorf("Release(%q) = %v, %v; want false", w, ok, err)
		}
	}
	if st, _ := s.Inspect(ctx(t), name(t)); !st.Held || st.Token != tok {
		t.Fatalf("a wrong token released the holder: %+v", st)
	}
	ok, err := s.Release(ctx(t), name(t), tok)
	if err != nil || !ok {
		t.Fatalf("Release(right token) = %v, %v; want true", ok, err)
	}
	if st, _ := s.Inspect(ctx(t), name(t)); st.Held {
		t.Errorf("still held after release: %+v", st)
	}
	ok, err = s.Release(ctx(t), name(t), tok)
	if err != nil || ok {
		t.Errorf("second Release = %v, %v; want false: the caller no longer holds it", ok, err)
	}
	mustAcquire(t, s, name(t), "n2", time.Minute)
}

func testNonceOnly(t *testing.T, s lockcore.Store) {
	mustAcquire(t, s, name(t), "n1", time.Second)
	ok, err := s.Renew(ctx(t), name(t), ":n1", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Renew(:nonce) = %v, %v; want true", ok, err)
	}
	ok, err = s.Release(ctx(t), name(t), ":n1")
	if err != nil || !ok {
		t.Fatalf("Release(:nonce) = %v, %v; want true", ok, err)
	}
}

func testFencesIncrease(t *testing.T, s lockcore.Store) {
	var last int64
	for i := range 20 {
		nonce := "n" + strconv.Itoa(i)
		tok := mustAcquire(t, s, name(t), nonce, time.Minute)
		f := fenceOf(t, tok)
		if f <= last {
			t.Fatalf("fence %d after %d: not increasing", f, last)
		}
		last = f
		if ok, err := s.Release(ctx(t), name(t), tok); err != nil || !ok {
			t.Fatalf("Release = %v, %v", ok, err)
		}
	}
	// Across an expiry too, which goes through no release.
	tok := mustAcquire(t, s, name(t), "short", 20*time.Millisecond)
	waitFree(t, s, name(t))
	if f := fenceOf(t, mustAcquire(t, s, name(t), "after", time.Minute)); f <= fenceOf(t, tok) {
		t.Errorf("fence %d after expiry of %d: not increasing", f, fenceOf(t, tok))
	}
}

// waitFree waits until name's lease has expired. Expiry is the event under
// test, so this polls the store; it is bounded by the ttl.
func waitFree(t *testing.T, s lockcore.Store, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, err := s.Inspect(ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Held {
			return
		}
		time.Sleep(st.TTL + time.Millisecond)
	}
	t.Fatalf("%q still held after 5s", name)
}

func testExpiry(t *testing.T, s lockcore.Store) {
	tok := mustAcquire(t, s, name(t), "n1", 30*time.Millisecond)
	waitFree(t, s, name(t))
	if ok, _ := s.Renew(ctx(t), name(t), tok, time.Minute); ok {
		t.Error("renewed an expired lease")
	}
	if ok, _ := s.Release(ctx(t), name(t), tok); ok {
		t.Error("released an expired lease")
	}
	mustAcquire(t, s, name(t), "n2", time.Minute)
}

func testReleaseAll(t *testing.T, s lockcore.Store) {
	var held []lockcore.Held
	for i := range 5 {
		n := name(t) + "/" + strconv.Itoa(i)
		held = append(held, lockcore.Held{Name: n, Token: mustAcquire(t, s, n, "n", time.Minute)})
	}
	other := name(t) + "/other"
	otherTok := mustAcquire(t, s, other, "n", time.Minute)
	held = append(held, lockcore.Held{Name: other, Token: "1:wrong"})
	if err := s.ReleaseAll(ctx(t), held); err != nil {
		t.Fatal(err)
	}
	for _, h := range held[:5] {
		if st, _ := s.Inspect(ctx(t), h.Name); st.Held {
			t.Errorf("%q still held after ReleaseAll", h.Name)
		}
	}
	if st, _ := s.Inspect(ctx(t), other); !st.Held || st.Token != otherTok {
		t.Errorf("ReleaseAll with a wrong token touched %q: %+v", other, st)
	}
}

func testInspectFree(t *testing.T, s lockcore.Store) {
	st, err := s.Inspect(ctx(t), name(t)+"/never")
	if err != nil {
		t.Fatal(err)
	}
	if st != (lockcore.State{}) {
		t.Errorf("Inspect(never used) = %+v, want zero", st)
	}
	tok := mustAcquire(t, s, name(t), "n1", time.Minute)
	if _, err := s.Release(ctx(t), name(t), tok); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Inspect(ctx(t), name(t))
	if st.Held || st.Fence != fenceOf(t, tok) {
		t.Errorf("Inspect(released) = %+v, want free with the last fence %d", st, fenceOf(t, tok))
	}
}

func testAwkwardNames(t *testing.T, s lockcore.Store) {
	for _, n := range []string{"}", "}x", "{", "{}", "a{b}c", "a}b{c", "\x00\r\n", "with space", "ü", strings.Repeat("x", 1024)} {
		n := name(t) + n
		tok := mustAcquire(t, s, n, "n1", time.Minute)
		if g, _ := s.Acquire(ctx(t), n, "n2", time.Minute); g.Acquired {
			t.Errorf("%q: second holder acquired", n)
		}
		if ok, err := s.Release(ctx(t), n, tok); err != nil || !ok {
			t.Errorf("%q: Release = %v, %v", n, ok, err)
		}
	}
}

func testMutualExclusion(t *testing.T, s lockcore.Store) {
	const racers = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := range racers {
		wg.Go(func() {
			g, err := s.Acquire(ctx(t), name(t), "n"+strconv.Itoa(i), time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if g.Acquired {
				mu.Lock()
				winners = append(winners, g.Token)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Errorf("%d racers acquired (%v), want exactly 1", len(winners), winners)
	}
}

func testCancelled(t *testing.T, s lockcore.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Acquire(c, name(t), "n1", time.Minute); err == nil {
		t.Error("Acquire with a cancelled context succeeded")
	}
	if st, _ := s.Inspect(ctx(t), name(t)); st.Held {
		t.Error("a cancelled Acquire took the lock")
	}
}
