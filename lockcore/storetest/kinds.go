package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
)

// The suite's part for names held by many: semaphores (Kind.Limit) and
// readers (Kind.Shared).

var (
	shared = lockcore.Kind{Shared: true}
	three  = lockcore.Kind{Limit: 3}
)

func kindTests() []struct {
	name string
	fn   func(t *testing.T, s lockcore.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s lockcore.Store)
	}{
		{"SemaphoreLimit", testSemaphoreLimit},
		{"SemaphoreFIFO", testSemaphoreFIFO},
		{"KindMismatch", testKindMismatch},
		{"ReadersTogetherWriterAlone", testReadersWriter},
		{"LateReaderBehindWriter", testLateReaderBehindWriter},
		{"ReadersAtTheHeadWokenTogether", testReadersWokenTogether},
		{"PermitRenewReleaseByToken", testPermitTokens},
		{"PermitRevoke", testPermitRevoke},
		{"PermitsExpireOneByOne", testPermitExpiry},
		{"LeavingWriterLetsReadersIn", testLeavingWriter},
		{"ReleaseGrantsReadersAndPermits", testReleaseGrantsMany},
		{"List", testList},
	}
}

// permit is one Acquire of kind k that must be granted.
func permit(t *testing.T, s lockcore.Store, n, nonce string, k lockcore.Kind) string {
	t.Helper()
	g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: nonce, Kind: k})
	if !g.Acquired {
		t.Fatalf("Acquire(%s, %s, %v) = %+v, want acquired", n, nonce, k, g)
	}
	return g.Token
}

// At most Limit holders at once, each with a token and a fence of its own,
// the fences rising; a release lets the next one in.
func testSemaphoreLimit(t *testing.T, s lockcore.Store) {
	n := name(t)
	var toks []string
	for _, nonce := range []string{"a", "b", "c"} {
		toks = append(toks, permit(t, s, n, nonce, three))
	}
	for i := 1; i < len(toks); i++ {
		if fenceOf(t, toks[i]) <= fenceOf(t, toks[i-1]) {
			t.Errorf("fences %v do not rise", toks)
		}
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "d", Kind: three}); g.Acquired || g.HolderTTL <= 0 {
		t.Fatalf("a fourth permit of three = %+v, want refused with the holders' ttl", g)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "b", Kind: three}); !g.Acquired || g.Token != toks[1] {
		t.Errorf("b again = %+v, want its own token %q as it is", g, toks[1])
	}
	st, _ := s.Inspect(ctx(t), n)
	if !st.Held || st.Kind != three || len(st.Holders) != 3 || st.Fence != fenceOf(t, toks[2]) || st.Token != "" {
		t.Errorf("Inspect = %+v, want three holders of a semaphore of 3", st)
	}
	if !released(t, s, n, toks[0]) {
		t.Fatal("Release(a) = false")
	}
	d := permit(t, s, n, "d", three)
	if fenceOf(t, d) <= fenceOf(t, toks[2]) {
		t.Errorf("d's fence %d is not above c's %d", fenceOf(t, d), fenceOf(t, toks[2]))
	}
	for _, tok := range append(toks[1:], d) {
		if !released(t, s, n, tok) {
			t.Errorf("Release(%s) = false", tok)
		}
	}
	// Free again, the name may be anything.
	mustAcquire(t, s, n, "x", time.Minute)
}

// Permits go to waiters in arrival order: a release wakes the first, and
// the permit is kept for it against later waiters and newcomers.
func testSemaphoreFIFO(t *testing.T, s lockcore.Store) {
	n := name(t)
	one := lockcore.Kind{Limit: 1}
	wakes, _ := watch(t, s, n)
	h := permit(t, s, n, "h", one)
	for _, w := range []string{"w1", "w2"} {
		if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-" + w, Waiter: w, Kind: one}); g.Acquired {
			t.Fatalf("%s while full: %+v", w, g)
		}
	}
	if r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: h}); !r.Released || r.First != "w1" {
		t.Fatalf("release = %+v, want released with w1 first", r)
	}
	expectWake(t, wakes, "w1")
	for _, req := range []lockcore.AcquireRequest{{Name: n, Nonce: "n-w2", Waiter: "w2", Kind: one}, {Name: n, Nonce: "new", Kind: one}} {
		if g := try(t, s, req); g.Acquired || g.Head != "w1" {
			t.Fatalf("%s while w1 is first = %+v, want refused with Head w1", req.Nonce, g)
		}
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-w1", Waiter: "w1", Kind: one}); !g.Acquired || g.First != "w2" {
		t.Fatalf("w1 = %+v, want acquired with w2 first", g)
	}
}

// A request of another family than the name's holders, or its first
// waiter, is refused as a mismatch, and changes nothing.
func testKindMismatch(t *testing.T, s lockcore.Store) {
	n := name(t)
	permit(t, s, n, "a", three)
	for _, k := range []lockcore.Kind{{}, shared, {Limit: 2}, {Limit: 4}} {
		g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "x", Waiter: "wx", Kind: k})
		if g.Acquired || !g.Mismatch || g.HeldAs != three {
			t.Errorf("%v on a semaphore of 3 = %+v, want a mismatch with it", k, g)
		}
	}
	if st, _ := s.Inspect(ctx(t), n); st.Queued != 0 || len(st.Holders) != 1 {
		t.Errorf("a mismatch changed the name: %+v", st)
	}
	// Held by one, a plain lock refuses semaphores, and queues readers.
	m := name(t) + "/lock"
	holder := mustAcquire(t, s, m, "h", time.Minute)
	if g := try(t, s, lockcore.AcquireRequest{Name: m, Nonce: "x", Waiter: "ws", Kind: three}); !g.Mismatch || g.HeldAs != (lockcore.Kind{}) {
		t.Errorf("a semaphore on a held lock = %+v, want a mismatch with an exclusive one", g)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: m, Nonce: "r", Waiter: "wr", Kind: shared}); g.Acquired || g.Mismatch || g.HolderTTL <= 0 {
		t.Errorf("a reader on a held lock = %+v, want it to wait", g)
	}
	// Free, but waited for by a reader: a semaphore is still the wrong kind.
	released(t, s, m, holder)
	if g := try(t, s, lockcore.AcquireRequest{Name: m, Nonce: "y", Kind: three}); !g.Mismatch || g.HeldAs != shared {
		t.Errorf("a semaphore while a reader waits = %+v, want a mismatch with shared", g)
	}
}

// Readers hold together; a writer waits for all of them, and holds alone.
func testReadersWriter(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watch(t, s, n)
	r1 := permit(t, s, n, "r1", shared)
	r2 := permit(t, s, n, "r2", shared)
	g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w", Waiter: "w"})
	if g.Acquired || g.HolderTTL <= 0 {
		t.Fatalf("a writer among readers = %+v, want it queued", g)
	}
	released(t, s, n, r1)
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w", Waiter: "w"}); g.Acquired {
		t.Fatalf("a writer with one reader left = %+v, want refused", g)
	}
	released(t, s, n, r2)
	expectWake(t, wakes, "w")
	w := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w", Waiter: "w"})
	if !w.Acquired || fenceOf(t, w.Token) <= fenceOf(t, r2) {
		t.Fatalf("the writer after the readers = %+v, want acquired with a higher fence", w)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "r3", Kind: shared}); g.Acquired || g.Mismatch {
		t.Errorf("a reader while the writer holds = %+v, want refused", g)
	}
	if st, _ := s.Inspect(ctx(t), n); st.Token != w.Token || st.Kind != (lockcore.Kind{}) || len(st.Holders) != 0 {
		t.Errorf("Inspect = %+v, want held by the writer alone", st)
	}
}

// A reader that comes after a queued writer waits behind it, and so does a
// try-once: writers never starve.
func testLateReaderBehindWriter(t *testing.T, s lockcore.Store) {
	n := name(t)
	r1 := permit(t, s, n, "r1", shared)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w", Waiter: "w"})
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "r2", Kind: shared}); g.Acquired {
		t.Errorf("a try-once reader behind a queued writer = %+v, want refused", g)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "r3", Waiter: "r3", Kind: shared}); g.Acquired {
		t.Errorf("a reader behind a queued writer = %+v, want queued", g)
	}
	released(t, s, n, r1)
	w := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w", Waiter: "w"})
	if !w.Acquired || w.First != "r3" {
		t.Fatalf("the writer = %+v, want acquired with r3 next", w)
	}
}

// The readers at the head of the queue are woken together; a writer
// behind them is not.
func testReadersWokenTogether(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watch(t, s, n)
	h := mustAcquire(t, s, n, "h", time.Minute)
	for _, w := range []string{"r1", "r2"} {
		try(t, s, lockcore.AcquireRequest{Name: n, Nonce: w, Waiter: w, Kind: shared})
	}
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w", Waiter: "w"})
	released(t, s, n, h)
	expectWake(t, wakes, "r1")
	expectWake(t, wakes, "r2")
	// In any order, both come in; the writer still waits.
	for _, w := range []string{"r2", "r1"} {
		if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: w, Waiter: w, Kind: shared}); !g.Acquired {
			t.Fatalf("%s = %+v, want acquired", w, g)
		}
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w", Waiter: "w"}); g.Acquired {
		t.Errorf("the writer with two readers in = %+v, want refused", g)
	}
	select {
	case w := <-wakes:
		t.Errorf("woken for %q; only the readers should be", w)
	default:
	}
}

// A permit renews and releases by its token or its nonce, never by
// another's; a foreign renewal never shortens it.
func testPermitTokens(t *testing.T, s lockcore.Store) {
	n := name(t)
	a := permit(t, s, n, "a", three)
	b := permit(t, s, n, "b", three)
	if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: a, TTL: 2 * time.Minute}); !r.OK {
		t.Errorf("Renew(a) = %+v", r)
	}
	if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: a, TTL: time.Second, Foreign: true}); !r.OK {
		t.Errorf("foreign Renew(a) = %+v", r)
	}
	st, _ := s.Inspect(ctx(t), n)
	for _, h := range st.Holders {
		if h.Token == a && h.TTL < time.Minute {
			t.Errorf("a foreign renewal shortened a to %v", h.TTL)
		}
	}
	wrong := []string{"1:a", ":zz", b + "x"}
	for _, w := range wrong {
		if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: w, TTL: time.Minute}); r.OK {
			t.Errorf("Renew(%q) = %+v, want not OK", w, r)
		}
		if released(t, s, n, w) {
			t.Errorf("Release(%q) = true", w)
		}
	}
	if !released(t, s, n, ":a") || released(t, s, n, a) {
		t.Error("Release by a's nonce, then by its token: want true, then false")
	}
	if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: a, TTL: time.Minute}); r.OK {
		t.Error("Renew(a) after its release = OK")
	}
	if st, _ := s.Inspect(ctx(t), n); len(st.Holders) != 1 || st.Holders[0].Token != b {
		t.Errorf("after a's release: %+v, want b alone", st)
	}
}

// A revoked permit is held by nobody, still counts, and is freed by its
// sidecar's release of RevokedToken(token).
func testPermitRevoke(t *testing.T, s lockcore.Store) {
	n := name(t)
	told := make(chan string, 4)
	stop, err := s.WatchRevokes(ctx(t), "sidecar-a", func(_, token string) { told <- token })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	one := lockcore.Kind{Limit: 1}
	tok := permit(t, s, n, "sidecar-a.n1", one)
	if ok, err := s.Revoke(ctx(t), lockcore.RevokeRequest{Name: n, Token: tok, Holder: "sidecar-a"}); !ok || err != nil {
		t.Fatalf("Revoke = %v, %v", ok, err)
	}
	select {
	case got := <-told:
		if got != tok {
			t.Errorf("told %q, want %q", got, tok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the holder's sidecar was not told within 5s")
	}
	if ok, _ := s.Revoke(ctx(t), lockcore.RevokeRequest{Name: n, Token: tok, Holder: "sidecar-a"}); ok {
		t.Error("a second Revoke = true")
	}
	if r := renew(t, s, lockcore.RenewRequest{Name: n, Token: tok, TTL: time.Minute}); r.OK || !r.Revoked {
		t.Errorf("Renew(revoked) = %+v, want Revoked", r)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "sidecar-a.n1", Kind: one}); g.Acquired {
		t.Errorf("the revoked nonce acquires again: %+v", g)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "other", Kind: one}); g.Acquired {
		t.Errorf("another takes the revoked permit: %+v", g)
	}
	if st, _ := s.Inspect(ctx(t), n); len(st.Holders) != 1 || !st.Holders[0].Revoked {
		t.Errorf("Inspect = %+v, want one revoked holder", st)
	}
	if released(t, s, n, tok) || !released(t, s, n, lockcore.RevokedToken(tok)) {
		t.Error("Release(token), then Release(RevokedToken): want false, then true")
	}
	permit(t, s, n, "other", one)
}

// Each permit expires by its own ttl.
func testPermitExpiry(t *testing.T, s lockcore.Store) {
	n := name(t)
	two := lockcore.Kind{Limit: 2}
	g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "short", TTL: 100 * time.Millisecond, Kind: two})
	if !g.Acquired {
		t.Fatalf("short = %+v", g)
	}
	permit(t, s, n, "long", two)
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "next", Kind: two})
		if g.Acquired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the short permit's place was not free within 5s")
		}
		time.Sleep(g.HolderTTL + time.Millisecond)
	}
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "more", Kind: two}); g.Acquired {
		t.Errorf("a third permit of two, the long one still held: %+v", g)
	}
}

// A writer that gives up waiting lets in the readers it kept out.
func testLeavingWriter(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watch(t, s, n)
	permit(t, s, n, "r1", shared)
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "w", Waiter: "w"})
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "r2", Waiter: "r2", Kind: shared})
	if err := s.Leave(ctx(t), n, "w"); err != nil {
		t.Fatal(err)
	}
	expectWake(t, wakes, "r2")
	if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "r2", Waiter: "r2", Kind: shared}); !g.Acquired {
		t.Fatalf("r2 after the writer left = %+v", g)
	}
}

// A release with GrantTTL grants the readers it lets in (or the permits it
// frees) at once, each told its token in its wake, for at most GrantTTL;
// each one's own try, with its nonce, finds its grant. A writer behind the
// readers is not woken.
func testReleaseGrantsMany(t *testing.T, s lockcore.Store) {
	n := name(t)
	wakes, _ := watchWakes(t, s, n)
	h := mustAcquire(t, s, n, "h", time.Minute)
	for _, w := range []string{"r1", "r2"} {
		try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-" + w, Waiter: w, Kind: shared})
	}
	try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-w", Waiter: "w"})
	grantTTL := 3 * time.Second
	if r := release(t, s, lockcore.ReleaseRequest{Name: n, Token: h, GrantTTL: grantTTL, Self: "me:"}); !r.Released || r.First != "w" {
		t.Fatalf("release = %+v, want released with the writer first", r)
	}
	granted := map[string]string{}
	for len(granted) < 2 {
		select {
		case wk := <-wakes:
			if wk.Waiter == "w" {
				t.Fatalf("the writer behind the readers was woken: %+v", wk)
			}
			if wk.Token == "" || wk.TTL != grantTTL || fenceOf(t, wk.Token) <= fenceOf(t, h) {
				t.Fatalf("wake %+v: want a token above the writer's, for %v", wk, grantTTL)
			}
			granted[wk.Waiter] = wk.Token
		case <-time.After(5 * time.Second):
			t.Fatalf("granted %v within 5s; want r1 and r2", granted)
		}
	}
	if st, _ := s.Inspect(ctx(t), n); st.Kind != shared || len(st.Holders) != 2 || st.Queued != 1 {
		t.Fatalf("after the release: %+v, want two readers and the writer queued", st)
	}
	for _, w := range []string{"r2", "r1"} {
		if g := try(t, s, lockcore.AcquireRequest{Name: n, Nonce: "n-" + w, Waiter: w, Kind: shared}); !g.Acquired || g.Token != granted[w] {
			t.Errorf("%s's own try = %+v, want its grant %q", w, g, granted[w])
		}
	}
	// The last reader's release grants the writer.
	release(t, s, lockcore.ReleaseRequest{Name: n, Token: granted["r1"], GrantTTL: grantTTL, Self: "me:"})
	release(t, s, lockcore.ReleaseRequest{Name: n, Token: granted["r2"], GrantTTL: grantTTL, Self: "me:"})
	select {
	case wk := <-wakes:
		if wk.Waiter != "w" || wk.Token == "" || fenceOf(t, wk.Token) <= fenceOf(t, granted["r2"]) {
			t.Fatalf("wake %+v, want the writer granted, with a fence above the readers'", wk)
		}
		if st, _ := s.Inspect(ctx(t), n); st.Token != wk.Token || st.Queued != 0 {
			t.Fatalf("after the readers: %+v, want the writer's %q", st, wk.Token)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer was not granted within 5s of the last reader's release")
	}
	// A permit freed goes the same way.
	m := name(t) + "/sem"
	mwakes, _ := watchWakes(t, s, m)
	one := lockcore.Kind{Limit: 1}
	p := permit(t, s, m, "p", one)
	try(t, s, lockcore.AcquireRequest{Name: m, Nonce: "n-q", Waiter: "q", Kind: one})
	release(t, s, lockcore.ReleaseRequest{Name: m, Token: p, GrantTTL: grantTTL, Self: "me:"})
	select {
	case wk := <-mwakes:
		if wk.Waiter != "q" || wk.Token == "" {
			t.Fatalf("wake %+v, want q granted", wk)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("q was not granted within 5s")
	}
}

// List finds the names held or waited for, whatever their kind, and a name
// with a '}' too, as Inspect reports them; not a released one; never more
// than count.
func testList(t *testing.T, s lockcore.Store) {
	p := name(t) + "/"
	mustAcquire(t, s, p+"lock", "a", time.Minute)
	permit(t, s, p+"sem", "b1", three)
	permit(t, s, p+"sem", "b2", three)
	mustAcquire(t, s, p+"queued", "c", time.Minute)
	try(t, s, lockcore.AcquireRequest{Name: p + "queued", Nonce: "c2", Waiter: "wc"})
	mustAcquire(t, s, p+"odd}name", "d", time.Minute)
	released(t, s, p+"gone", mustAcquire(t, s, p+"gone", "e", time.Minute))
	mine := func(n string) bool { return strings.HasPrefix(n, p) }
	got, err := s.List(ctx(t), mine, 100)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]lockcore.Listed{}
	for _, l := range got {
		byName[strings.TrimPrefix(l.Name, p)] = l
	}
	if len(got) != 4 || len(byName) != 4 {
		t.Fatalf("List = %d names %v; want lock, sem, queued and odd}name", len(got), byName)
	}
	if l := byName["lock"]; !l.Held || l.Token == "" || len(l.Holders) != 0 {
		t.Errorf("lock: %+v", l)
	}
	if l := byName["sem"]; l.Kind != three || len(l.Holders) != 2 {
		t.Errorf("sem: %+v, want 2 holders of a semaphore of 3", l)
	}
	if l := byName["queued"]; !l.Held || l.Queued != 1 {
		t.Errorf("queued: %+v, want held with 1 waiter", l)
	}
	if l := byName["odd}name"]; !l.Held {
		t.Errorf("odd}name: %+v", l)
	}
	if got, err := s.List(ctx(t), mine, 2); err != nil || len(got) != 2 {
		t.Errorf("List with count 2 = %d names, %v", len(got), err)
	}
	if got, err := s.List(ctx(t), func(n string) bool { return n == p+"sem" }, 10); err != nil || len(got) != 1 {
		t.Errorf("List matching one name = %v, %v", got, err)
	}
}
