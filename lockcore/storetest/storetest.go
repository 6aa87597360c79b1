// Package storetest is the conformance suite every lockcore.Store must pass,
// so that the embedded store and the Redis store keep the same semantics.
package storetest

import (
	"context"
	"reflect"
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
		{"QueueFIFO", testQueueFIFO},
		{"TryOnceRespectsQueue", testTryOnceRespectsQueue},
		{"DeadWaiterSkipped", testDeadWaiterSkipped},
		{"KeepAlive", testKeepAlive},
		{"LeaveWakesNext", testLeaveWakesNext},
		{"CandidateNotFirst", testCandidateNotFirst},
		{"WatchStops", testWatchStops},
		{"Transfer", testTransfer},
		{"GrantToAnotherSidecar", testGrantToAnotherSidecar},
		{"NoRemoteGrantToSelf", testNoRemoteGrantToSelf},
		{"ForeignRenewNeverShortens", testForeignRenew},
		{"Revoke", testRevoke},
		{"RetryDoesNotExtendAGrant", testRetryDoesNotExtend},
	}
	for _, tc := range append(tests, kindTests()...) {
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
	g, err := s.Acquire(ctx(t), lockcore.AcquireRequest{Name: name, Nonce: nonce, TTL: ttl})
	if err != nil {
		t.Fatalf("Acquire(%q): %v", name, err)
	}
	if !g.Acquired {
		t.Fatalf("Acquire(%q) = not acquired (holder ttl %v), want acquired", name, g.HolderTTL)
	}
	return g.Token
}

// try is one Acquire that must not fail.
func try(t *testing.T, s lockcore.Store, req lockcore.AcquireRequest) lockcore.Grant {
	t.Helper()
	if req.TTL == 0 {
		req.TTL = time.Minute
	}
	if req.Waiter != "" && req.WaiterTTL == 0 {
		req.WaiterTTL = time.Minute
	}
	g, err := s.Acquire(ctx(t), req)
	if err != nil {
		t.Fatalf("Acquire(%+v): %v", req, err)
	}
	return g
}

// release is one Release that must not fail.
func release(t *testing.T, s lockcore.Store, req lockcore.ReleaseRequest) lockcore.Released {
	t.Helper()
	r, err := s.Release(ctx(t), req)
	if err != nil {
		t.Fatalf("Release(%+v): %v", req, err)
	}
	return r
}

func released(t *testing.T, s lockcore.Store, name, token string) bool {
	t.Helper()
	return release(t, s, lockcore.ReleaseRequest{Name: name, Token: token}).Released
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
	g := try(t, s, lockcore.AcquireRequest{Name: name(t), Nonce: "n2", TTL: time.Second})
	if g.Acquired {
		t.Fatalf("second holder acquired %q", g.Token)
	}
	if g.HolderTTL <= 30*time.Second || g.HolderTTL > time.Minute {
		t.Errorf("HolderTTL = %v, want the holder's ttl (about 1m)", g.HolderTTL)
	}
}

func testAcquireRetry(t *testing.T, s lockcore.Store) {
	tok := mustAcquire(t, s, name(t), "n1", time.Second)
	g := try(t, s, lockcore.AcquireRequest{Name: name(t), Nonce: "n1", TTL: time.Minute})
	if !g.Acquired || g.Token != tok {
		t.Errorf("retried acquire gave %+v, want the same token %q", g, tok)
	}
	if g.TTL <= 0 || g.TTL > time.Second {
		t.Errorf("retried acquire reports ttl %v, want what is left of the first's 1s", g.TTL)
	}
}

// A grant the caller may never have learned of is not extended by finding
// it again: it keeps the ttl it was granted with, so that a lock nobody
// received lasts no longer than that. (A release may have granted the lock
// to a waiter whose sidecar has given up on it; its late try finds it.)
func testRetryDoesNotExtend(t *testing.T, s lockcore.Store) {
	n := name(t)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w-nonce", Waiter: "elsewhere:1", TTL: time.Minute, WaiterTTL: time.Minute})
	release(t, s, lockcore.ReleaseRequest{Name: n, Token: holder, GrantTTL: 2 * time.Second, Self: "here:"})
	g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w-nonce", Waiter: "elsewhere:1", TTL: time.Minute, WaiterTTL: time.Minute})
	if !g.Acquired || g.TTL > 2*time.Second || g.TTL <= 0 {
		t.Fatalf("the waiter's late try = %+v, want its grant with what is left of 2s", g)
	}
	if st, _ := s.Inspect(ctx(t), n); st.TTL > 2*time.Second {
		t.Errorf("the late try extended the grant to %v", st.TTL)
	}
}

// renew is Store.Renew, failing the test on an error.
func renew(t *testing.T, s lockcore.Store, req lockcore.RenewRequest) lockcore.Renewed {
	t.Helper()
	r, err := s.Renew(ctx(t), req)
	if err != nil {
		t.Fatalf("Renew(%+v): %v", req, err)
	}
	return r
}

func testRenew(t *testing.T, s lockcore.Store) {
	tok := mustAcquire(t, s, name(t), "n1", time.Second)
	if r := renew(t, s, lockcore.RenewRequest{Name: name(t), Token: tok, TTL: time.Minute}); !r.OK {
		t.Fatalf("Renew(right token) = %+v; want OK", r)
	}
	if st, _ := s.Inspect(ctx(t), name(t)); st.TTL <= 30*time.Second {
		t.Errorf("ttl after renew = %v, want about 1m", st.TTL)
	}
	wrong := []string{strconv.FormatInt(fenceOf(t, tok), 10) + ":other", strconv.FormatInt(fenceOf(t, tok)+1, 10) + ":n1", ":other", "x"}
	for _, w := range wrong {
		if r := renew(t, s, lockcore.RenewRequest{Name: name(t), Token: w, TTL: time.Millisecond}); r.OK || r.Revoked {
			t.Errorf("Renew(%q) = %+v; want not held", w, r)
		}
	}
	if st, _ := s.Inspect(ctx(t), name(t)); !st.Held || st.Token != tok || st.TTL <= 30*time.Second {
		t.Errorf("wrong tokens touched the holder: %+v", st)
	}
	if r := renew(t, s, lockcore.RenewRequest{Name: name(t) + "/none", Token: tok, TTL: time.Second}); r.OK {
		t.Errorf("Renew(free name) = %+v; want not held", r)
	}
	// The holder's own renewal may shorten.
	if r := renew(t, s, lockcore.RenewRequest{Name: name(t), Token: tok, TTL: 5 * time.Second}); !r.OK {
		t.Fatalf("Renew(shorter) = %+v; want OK", r)
	}
	if st, _ := s.Inspect(ctx(t), name(t)); st.TTL > 5*time.Second {
		t.Errorf("ttl after a shorter renewal = %v, want at most 5s", st.TTL)
	}
}

// A foreign renewal may lengthen a lock's ttl, never shorten it.
func testForeignRenew(t *testing.T, s lockcore.Store) {
	n := name(t)
	tok := mustAcquire(t, s, n, "n1", time.Minute)
	if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: tok, TTL: 10 * time.Millisecond, Foreign: true}); !r.OK {
		t.Fatalf("foreign Renew(shorter) = %+v; want OK: the token holds the lock", r)
	}
	if st, _ := s.Inspect(ctx(t), n); st.TTL <= 30*time.Second {
		t.Errorf("a foreign renewal shortened the ttl to %v", st.TTL)
	}
	if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: tok, TTL: time.Hour, Foreign: true}); !r.OK {
		t.Fatalf("foreign Renew(longer) = %+v; want OK", r)
	}
	if st, _ := s.Inspect(ctx(t), n); st.TTL <= 30*time.Minute {
		t.Errorf("a longer foreign renewal left the ttl at %v", st.TTL)
	}
}

// A revoked lock stays held, with its ttl, by nobody: its token no longer
// renews, releases or re-acquires it, and nobody else gets it, until its
// holder's sidecar, told on its own channel, releases RevokedToken(token).
func testRevoke(t *testing.T, s lockcore.Store) {
	n := name(t)
	told := make(chan [2]string, 4)
	stop, err := s.WatchRevokes(ctx(t), "sidecar-a", func(name, token string) { told <- [2]string{name, token} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	tok := mustAcquire(t, s, n, "sidecar-a.n1", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "b:1", TTL: time.Minute, WaiterTTL: time.Minute})
	if ok, err := s.Revoke(ctx(t), lockcore.RevokeRequest{Name: n, Token: "1:wrong", Holder: "sidecar-a"}); ok || err != nil {
		t.Errorf("Revoke(wrong token) = %v, %v; want false", ok, err)
	}
	if ok, err := s.Revoke(ctx(t), lockcore.RevokeRequest{Name: n, Token: tok, Holder: "sidecar-a"}); !ok || err != nil {
		t.Fatalf("Revoke = %v, %v; want true", ok, err)
	}
	select {
	case got := <-told:
		if got != [2]string{n, tok} {
			t.Errorf("the holder's sidecar was told %q, want %q", got, [2]string{n, tok})
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the holder's sidecar was not told within 5s")
	}
	st, _ := s.Inspect(ctx(t), n)
	if !st.Held || !st.Revoked || st.Token != tok || st.TTL <= 30*time.Second || st.Fence != fenceOf(t, tok) {
		t.Fatalf("after Revoke: %+v, want held, revoked, its token and ttl kept", st)
	}
	if ok, _ := s.Revoke(ctx(t), lockcore.RevokeRequest{Name: n, Token: tok, Holder: "sidecar-a"}); ok {
		t.Error("a second Revoke = true; want false")
	}
	if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: tok, TTL: time.Minute}); r.OK || !r.Revoked {
		t.Errorf("Renew(revoked token) = %+v; want Revoked", r)
	}
	if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: tok, TTL: time.Minute, Foreign: true}); r.OK {
		t.Errorf("foreign Renew(revoked token) = %+v; want not OK", r)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "sidecar-a.n1", TTL: time.Minute}); g.Acquired {
		t.Errorf("Acquire with the revoked token's nonce = %+v; want not acquired", g)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "other", TTL: time.Minute}); g.Acquired {
		t.Errorf("Acquire by another = %+v; want not acquired", g)
	}
	if released(t, s, n, tok) || released(t, s, n, ":sidecar-a.n1") {
		t.Error("Release(revoked token) = true; want false")
	}
	r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: lockcore.RevokedToken(tok),
		Next: &lockcore.Candidate{Waiter: "b:1", Nonce: "n2", TTL: time.Minute}})
	if !r.Released || r.Next == "" || fenceOf(t, r.Next) <= fenceOf(t, tok) {
		t.Errorf("Release(RevokedToken) = %+v; want released and handed to the waiter", r)
	}
}

func testRelease(t *testing.T, s lockcore.Store) {
	tok := mustAcquire(t, s, name(t), "n1", time.Minute)
	for _, w := range []string{strconv.FormatInt(fenceOf(t, tok), 10) + ":other", ":other"} {
		if released(t, s, name(t), w) {
			t.Errorf("Release(%q) = true; want false", w)
		}
	}
	if st, _ := s.Inspect(ctx(t), name(t)); !st.Held || st.Token != tok {
		t.Fatalf("a wrong token released the holder: %+v", st)
	}
	if !released(t, s, name(t), tok) {
		t.Fatal("Release(right token) = false; want true")
	}
	if st, _ := s.Inspect(ctx(t), name(t)); st.Held {
		t.Errorf("still held after release: %+v", st)
	}
	if released(t, s, name(t), tok) {
		t.Error("second Release = true; want false: the caller no longer holds it")
	}
	mustAcquire(t, s, name(t), "n2", time.Minute)
}

func testNonceOnly(t *testing.T, s lockcore.Store) {
	mustAcquire(t, s, name(t), "n1", time.Second)
	if r := renew(t, s, lockcore.RenewRequest{Name: name(t), Token: ":n1", TTL: time.Minute}); !r.OK {
		t.Fatalf("Renew(:nonce) = %+v; want OK", r)
	}
	if !released(t, s, name(t), ":n1") {
		t.Fatal("Release(:nonce) = false; want true")
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
		if !released(t, s, name(t), tok) {
			t.Fatal("Release = false")
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
	if r := renew(t, s, lockcore.RenewRequest{Name: name(t), Token: tok, TTL: time.Minute}); r.OK {
		t.Error("renewed an expired lease")
	}
	if released(t, s, name(t), tok) {
		t.Error("released an expired lease")
	}
	mustAcquire(t, s, name(t), "n2", time.Minute)
}

func testReleaseAll(t *testing.T, s lockcore.Store) {
	var held []lockcore.ReleaseRequest
	for i := range 5 {
		n := name(t) + "/" + strconv.Itoa(i)
		held = append(held, lockcore.ReleaseRequest{Name: n, Token: mustAcquire(t, s, n, "n", time.Minute)})
	}
	other := name(t) + "/other"
	otherTok := mustAcquire(t, s, other, "n", time.Minute)
	held = append(held, lockcore.ReleaseRequest{Name: other, Token: "1:wrong"})
	res, err := s.ReleaseAll(ctx(t), held)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Released != (i < 5) {
			t.Errorf("ReleaseAll result %d = %+v", i, r)
		}
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
	if !reflect.DeepEqual(st, lockcore.State{}) {
		t.Errorf("Inspect(never used) = %+v, want zero", st)
	}
	tok := mustAcquire(t, s, name(t), "n1", time.Minute)
	released(t, s, name(t), tok)
	st, _ = s.Inspect(ctx(t), name(t))
	// A store may forget a free name's last fence (its fences rise anyway).
	if st.Held || (st.Fence != 0 && st.Fence != fenceOf(t, tok)) {
		t.Errorf("Inspect(released) = %+v, want free with the last fence %d, or none", st, fenceOf(t, tok))
	}
}

func testAwkwardNames(t *testing.T, s lockcore.Store) {
	for _, n := range []string{"}", "}x", "{", "{}", "a{b}c", "a}b{c", "\x00\r\n", "with space", "ü", strings.Repeat("x", 1024)} {
		n := name(t) + n
		tok := mustAcquire(t, s, n, "n1", time.Minute)
		if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "w"}); g.Acquired {
			t.Errorf("%q: second holder acquired", n)
		}
		if r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: tok, Next: &lockcore.Candidate{Waiter: "w", Nonce: "n2", TTL: time.Minute}}); !r.Released || r.Next == "" {
			t.Errorf("%q: Release with the waiter as candidate = %+v", n, r)
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
			g, err := s.Acquire(ctx(t), lockcore.AcquireRequest{Name: name(t), Nonce: "n" + strconv.Itoa(i), TTL: time.Minute})
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
	if _, err := s.Acquire(c, lockcore.AcquireRequest{Name: name(t), Nonce: "n1", TTL: time.Minute}); err == nil {
		t.Error("Acquire with a cancelled context succeeded")
	}
	if st, _ := s.Inspect(ctx(t), name(t)); st.Held {
		t.Error("a cancelled Acquire took the lock")
	}
}

// wakes records the waiters a Watch is woken for.
func watch(t *testing.T, s lockcore.Store, name string) (<-chan string, func()) {
	ch, stop := watchWakes(t, s, name)
	waiters := make(chan string, 100)
	go func() {
		for w := range ch {
			waiters <- w.Waiter
		}
	}()
	return waiters, stop
}

// watchWakes records the whole wakes a Watch gets.
func watchWakes(t *testing.T, s lockcore.Store, name string) (chan lockcore.Wake, func()) {
	t.Helper()
	ch := make(chan lockcore.Wake, 100)
	stop, err := s.Watch(ctx(t), name, func(w lockcore.Wake) { ch <- w })
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(stop)
	return ch, stop
}

func expectWake(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("woken for %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no wake for %q within 5s", want)
	}
}

func queued(t *testing.T, s lockcore.Store, name string) int {
	t.Helper()
	st, err := s.Inspect(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Queued
}

// Waiters get a free lock in arrival order; a release hands it to the
// candidate in the same step when the candidate is first.
func testQueueFIFO(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watch(t, s, n)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	for _, w := range []string{"w1", "w2", "w3"} {
		if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-" + w, Waiter: w}); g.Acquired || g.HolderTTL <= 0 {
			t.Fatalf("%s while held: %+v", w, g)
		}
	}
	if q := queued(t, s, n); q != 3 {
		t.Fatalf("Queued = %d, want 3", q)
	}
	// A release with no candidate wakes the first waiter's sidecar.
	if r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: holder}); !r.Released || r.Next != "" {
		t.Fatalf("release = %+v", r)
	}
	expectWake(t, wakes, "w1")
	// The lock is free but reserved: later waiters, and newcomers, are refused.
	for _, w := range []string{"w3", "w2", "w4"} {
		if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-" + w, Waiter: w}); g.Acquired || g.Head != "w1" {
			t.Fatalf("%s while w1 is first: %+v, want refused with Head w1", w, g)
		}
		expectWake(t, wakes, "w1") // each refusal nudges the first waiter again
	}
	g1 := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-w1", Waiter: "w1"})
	if !g1.Acquired {
		t.Fatalf("w1, first, refused: %+v", g1)
	}
	// Releasing with w2 as candidate grants w2 in the same step.
	r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: g1.Token,
		Next: &lockcore.Candidate{Waiter: "w2", Nonce: "n-w2", TTL: time.Minute}})
	if !r.Released || !strings.HasSuffix(r.Next, ":n-w2") || fenceOf(t, r.Next) <= fenceOf(t, g1.Token) {
		t.Fatalf("release with candidate w2 = %+v", r)
	}
	if st, _ := s.Inspect(ctx(t), n); st.Token != r.Next || st.Queued != 2 {
		t.Fatalf("after the hand-off: %+v, want held by %q with w3, w4 queued", st, r.Next)
	}
	// w2's own try, repeated, finds its grant (same nonce): idempotent.
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-w2", Waiter: "w2"}); !g.Acquired || g.Token != r.Next {
		t.Fatalf("w2's try after the hand-off = %+v, want its token %q", g, r.Next)
	}
}

func testTryOnceRespectsQueue(t *testing.T, s lockcore.Store) {
	n := name(t)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n1", Waiter: "w1"})
	released(t, s, n, holder)
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "x"}); g.Acquired || g.Head != "w1" {
		t.Fatalf("try-once while w1 waits = %+v, want refused", g)
	}
	if q := queued(t, s, n); q != 1 {
		t.Errorf("a try-once joined the queue: Queued = %d", q)
	}
}

// A waiter whose sidecar stopped keeping it alive no longer blocks the queue.
func testDeadWaiterSkipped(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watch(t, s, n)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n1", Waiter: "dead", WaiterTTL: 20 * time.Millisecond})
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "live"})
	time.Sleep(40 * time.Millisecond) // the dead waiter's ttl passes
	released(t, s, n, holder)
	expectWake(t, wakes, "live")
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "live"}); !g.Acquired {
		t.Fatalf("live waiter behind a dead one: %+v", g)
	}
}

func testKeepAlive(t *testing.T, s lockcore.Store) {
	n := name(t)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	// w1's first ttl leaves room for the calls before KeepAlive even on a
	// busy machine: it must still be alive to be kept alive.
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n1", Waiter: "w1", WaiterTTL: 500 * time.Millisecond})
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "w2"})
	if err := s.KeepAlive(ctx(t), n, []string{"w1", "absent"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(550 * time.Millisecond) // past w1's first ttl
	released(t, s, n, holder)
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "w2"}); g.Acquired || g.Head != "w1" {
		t.Fatalf("w2 = %+v, want refused: w1 was kept alive and is first", g)
	}
	if q := queued(t, s, n); q != 2 {
		t.Errorf("KeepAlive of an absent waiter queued it: Queued = %d", q)
	}
}

func testLeaveWakesNext(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watch(t, s, n)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n1", Waiter: "w1"})
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "w2"})
	if err := s.Leave(ctx(t), n, "w2"); err != nil { // not first: no wake
		t.Fatal(err)
	}
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n3", Waiter: "w3"})
	released(t, s, n, holder)
	expectWake(t, wakes, "w1")
	if err := s.Leave(ctx(t), n, "w1"); err != nil {
		t.Fatal(err)
	}
	expectWake(t, wakes, "w3")
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n3", Waiter: "w3"}); !g.Acquired {
		t.Fatalf("w3 after the others left: %+v", g)
	}
	if q := queued(t, s, n); q != 0 {
		t.Errorf("Queued = %d after every waiter left or acquired", q)
	}
}

// A candidate that is not first gets nothing; the first is woken.
func testCandidateNotFirst(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watch(t, s, n)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n1", Waiter: "remote"})
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "local"})
	r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: holder,
		Next: &lockcore.Candidate{Waiter: "local", Nonce: "n2", TTL: time.Minute}})
	if !r.Released || r.Next != "" {
		t.Fatalf("release = %+v, want released without a grant: local is second", r)
	}
	expectWake(t, wakes, "remote")
}

func testWatchStops(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, stop := watch(t, s, n)
	other, _ := watch(t, s, n) // a second watch of the same name
	holder := mustAcquire(t, s, n, "h", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n1", Waiter: "w1"})
	stop()
	released(t, s, n, holder)
	expectWake(t, other, "w1")
	select {
	case w := <-wakes:
		t.Errorf("a stopped watch was woken for %q", w)
	default:
	}
}

// A lock passes from its holder to a waiter without ever being free, with
// the next fence; a stale or repeated transfer does no harm.
func testTransfer(t *testing.T, s lockcore.Store) {
	n := name(t)
	from := mustAcquire(t, s, n, "h", time.Minute)
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n1", Waiter: "w1"}); g.Acquired || g.First != "w1" {
		t.Fatalf("w1 while held = %+v, want queued and first", g)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n2", Waiter: "w2"}); g.First != "w1" {
		t.Fatalf("w2 while held = %+v, want w1 first", g)
	}
	to := strconv.FormatInt(fenceOf(t, from)+1, 10) + ":n1"
	req := lockcore.TransferRequest{Name: n, From: from, To: to, Waiter: "w1", TTL: time.Minute}
	tr, err := s.Transfer(ctx(t), req)
	if err != nil || !tr.OK || tr.First != "w2" {
		t.Fatalf("Transfer = %+v, %v; want OK with w2 first", tr, err)
	}
	if st, _ := s.Inspect(ctx(t), n); st.Token != to || st.Queued != 1 || st.TTL <= 30*time.Second {
		t.Fatalf("after Transfer: %+v, want held by %q for about 1m, w2 queued", st, to)
	}
	if tr, err := s.Transfer(ctx(t), req); err != nil || !tr.OK {
		t.Errorf("repeated Transfer = %+v, %v; want OK (already done)", tr, err)
	}
	stale := lockcore.TransferRequest{Name: n, From: from, To: strconv.FormatInt(fenceOf(t, to)+1, 10) + ":x", Waiter: "w2", TTL: time.Minute}
	if tr, err := s.Transfer(ctx(t), stale); err != nil || tr.OK {
		t.Errorf("Transfer from a token that no longer holds = %+v, %v; want refused", tr, err)
	}
	if st, _ := s.Inspect(ctx(t), n); st.Token != to {
		t.Errorf("a refused Transfer changed the holder: %+v", st)
	}
	// The next fence after a transfer is still larger.
	released(t, s, n, to)
	s.Leave(ctx(t), n, "w2")
	if f := fenceOf(t, mustAcquire(t, s, n, "z", time.Minute)); f <= fenceOf(t, to) {
		t.Errorf("fence %d after a transferred fence %d", f, fenceOf(t, to))
	}
}

// A release may grant the lock to another sidecar's first waiter, for a
// short ttl, and send it the token and who is first after it; the waiter's
// own try finds the same.
func testGrantToAnotherSidecar(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watchWakes(t, s, n)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "remote-nonce", Waiter: "remote", TTL: time.Minute})
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "local-nonce", Waiter: "local"})
	r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: holder, GrantTTL: 2 * time.Second, Self: "here:",
		Next: &lockcore.Candidate{Waiter: "local", Nonce: "local-nonce", TTL: time.Minute}})
	if !r.Released || r.Next != "" || r.First != "local" {
		t.Fatalf("release = %+v, want released, no grant for the local candidate, local first", r)
	}
	// Every sidecar watching hears who is first now, as of the release, in
	// the grant's wake or in one of its own before it: a sidecar whose
	// waiter was granted knows who is next before that waiter can release.
	var wk, news lockcore.Wake
	for wk.Token == "" {
		select {
		case wk = <-wakes:
		case <-time.After(5 * time.Second):
			t.Fatal("no grant within 5s")
		}
		if wk.Seq != 0 {
			news = wk
		}
	}
	if wk.Waiter != "remote" || !strings.HasSuffix(wk.Token, ":remote-nonce") || wk.TTL != 2*time.Second {
		t.Fatalf("wake = %+v, want the remote waiter's grant for 2s", wk)
	}
	if news.Seq == 0 {
		t.Fatal("the grant came before any wake said who is first after it")
	}
	if news.First != "local" || news.Seq != r.Seq {
		t.Errorf("wake says first %q as of %d, want %q as of the release's %d", news.First, news.Seq, "local", r.Seq)
	}
	st, _ := s.Inspect(ctx(t), n)
	if st.Token != wk.Token || st.TTL > 2*time.Second || st.Queued != 1 || fenceOf(t, wk.Token) <= fenceOf(t, holder) {
		t.Fatalf("after the grant: %+v", st)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "remote-nonce", Waiter: "remote"}); !g.Acquired || g.Token != wk.Token {
		t.Errorf("the remote waiter's own try = %+v, want its granted token", g)
	}
}

// A release never grants remotely to a waiter of its own sidecar: that
// sidecar hands its waiters locks itself.
func testNoRemoteGrantToSelf(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watchWakes(t, s, n)
	holder := mustAcquire(t, s, n, "h", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "gone-nonce", Waiter: "here:1"})
	r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: holder, GrantTTL: 2 * time.Second, Self: "here:"})
	if !r.Released || r.Next != "" {
		t.Fatalf("release = %+v", r)
	}
	select {
	case wk := <-wakes:
		if wk.Waiter != "here:1" || wk.Token != "" {
			t.Fatalf("wake = %+v, want a plain wake of here:1", wk)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wake within 5s")
	}
	if st, _ := s.Inspect(ctx(t), n); st.Held {
		t.Errorf("the lock went to a waiter of the releasing sidecar: %+v", st)
	}
}
