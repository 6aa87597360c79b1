package redisstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/lockcore"
)

// holdFirst is a hook that holds the first script call until release is
// closed, and counts every script call.
type holdFirst struct {
	release chan struct{}
	mu      sync.Mutex
	calls   int
}

func (*holdFirst) DialHook(next redis.DialHook) redis.DialHook { return next }
func (*holdFirst) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *holdFirst) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "evalsha" && name != "eval" {
			return next(ctx, cmd)
		}
		h.mu.Lock()
		h.calls++
		first := h.calls == 1
		h.mu.Unlock()
		if first {
			<-h.release
		}
		return next(ctx, cmd)
	}
}

func (h *holdFirst) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func newBatchStore(t *testing.T) (*Store, *redis.Client) {
	t.Helper()
	return newBatchStoreOn(t, redistest.Start(t))
}

// newBatchStoreOn is a batching store on srv, with every script loaded, and
// a client of srv's own.
func newBatchStoreOn(t testing.TB, srv *redistest.Server) (*Store, *redis.Client) {
	t.Helper()
	rdb, err := NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(rdb, Options{Prefix: "lock:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.batch == nil {
		t.Fatal("a store on one Redis does not batch")
	}
	// Load every script, so that no NOSCRIPT round adds calls.
	for _, sc := range []*luaScript{s.acquire, s.release, s.renew, s.batch.sc} {
		if err := rdb.ScriptLoad(context.Background(), sc.src).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return s, srv.Client(t)
}

func (b *batcher) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// Calls made while one is in flight go to Redis together, in one script
// call, and each gets its own answer.
func TestBatchGathersCallsInFlight(t *testing.T) {
	s, direct := newBatchStore(t)
	h := &holdFirst{release: make(chan struct{})}
	s.rdb.AddHook(h)
	ctx := context.Background()
	const n = 8
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: fmt.Sprint("n", i), Nonce: fmt.Sprint("x", i), TTL: time.Minute})
			if err != nil || !g.Acquired {
				t.Errorf("acquire n%d = %+v, %v", i, g, err)
			}
			tokens[i] = g.Token
		})
		if i == 0 {
			waitFor(t, func() bool { return h.count() == 1 }) // the first is in flight, held
		}
	}
	waitFor(t, func() bool { return s.batch.queued() == n-1 })
	close(h.release)
	wg.Wait()
	if got := h.count(); got != 2 {
		t.Errorf("%d script calls for %d acquires, want 2: the first alone, the rest in one batch", got, n)
	}
	seen := map[int64]bool{}
	for i, tok := range tokens {
		f, nonce, ok := lockcore.ParseToken(tok)
		if !ok || nonce != fmt.Sprint("x", i) || seen[f] {
			t.Errorf("token %d = %q: want the nonce x%d and a fence of its own", i, tok, i)
		}
		seen[f] = true
		if v := direct.Get(ctx, fmt.Sprintf("lock:{n%d}", i)).Val(); v != tok {
			t.Errorf("lock:{n%d} holds %q, want %q", i, v, tok)
		}
	}
}

// A call that finds nothing in flight, but calls queued by the time its
// turn comes, takes them along: one script call for all of them.
func TestBatchTakesQueuedAlong(t *testing.T) {
	s, direct := newBatchStore(t)
	h := &holdFirst{release: make(chan struct{})}
	close(h.release) // count only
	s.rdb.AddHook(h)
	ctx := context.Background()
	k := s.keys("queued")
	queued := &batchCall{ctx: ctx, op: "acquire", keys: s.withState(k),
		args: s.acquireArgs(lockcore.AcquireRequest{Name: "queued", Nonce: "q", TTL: time.Minute}, k), done: make(chan struct{})}
	// As if queued while the call below yielded its turn.
	s.batch.mu.Lock()
	s.batch.queue = append(s.batch.queue, queued)
	s.batch.mu.Unlock()
	g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "n", TTL: time.Minute})
	if err != nil || !g.Acquired {
		t.Fatalf("acquire a = %+v, %v", g, err)
	}
	select {
	case <-queued.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the queued call was left in the queue")
	}
	if arr, ok := queued.v.([]any); queued.alone || queued.err != nil || !ok || arr[0] != int64(1) {
		t.Fatalf("the queued call = %v, %v (alone %v); want granted in the batch", queued.v, queued.err, queued.alone)
	}
	if got := h.count(); got != 1 {
		t.Errorf("%d script calls, want 1: the call and the one queued, together", got)
	}
	if direct.Get(ctx, "lock:{queued}").Val() == "" || direct.Get(ctx, "lock:{a}").Val() != g.Token {
		t.Error("the batch did not take both locks")
	}
	s.batch.mu.Lock()
	idle := len(s.batch.queue) == 0 && !s.batch.busy
	s.batch.mu.Unlock()
	if !idle {
		t.Error("the batcher did not go idle after the batch")
	}
}

// The calls of one batch read Redis's clock once between them, yet each
// gets a time of its own, later than the one before: replies stay ordered
// by what they say of a queue, and fences rise from call to call.
func TestBatchCallsTimesRise(t *testing.T) {
	s, _ := newBatchStore(t)
	ctx := context.Background()
	var calls []*batchCall
	for i, name := range []string{"a", "b", "a", "a", "c"} {
		k := s.keys(name)
		req := lockcore.AcquireRequest{Name: name, Nonce: fmt.Sprint("n", i), TTL: time.Minute, Waiter: fmt.Sprint("w", i), WaiterTTL: time.Minute}
		calls = append(calls, &batchCall{ctx: ctx, op: "acquire", keys: s.withState(k), args: s.acquireArgs(req, k), done: make(chan struct{})})
	}
	s.batch.send(calls)
	var lastNow, lastFence int64
	for i, c := range calls {
		<-c.done
		arr, ok := c.v.([]any)
		if c.alone || c.err != nil || !ok || len(arr) != 5 {
			t.Fatalf("call %d = %v, %v (alone %v)", i, c.v, c.err, c.alone)
		}
		now, _ := arr[3].(int64)
		if now <= lastNow {
			t.Errorf("call %d: time %d, not after the previous call's %d", i, now, lastNow)
		}
		lastNow = now
		if arr[0] != int64(1) {
			continue
		}
		f, _, ok := lockcore.ParseToken(arr[1].(string))
		if !ok || f <= lastFence {
			t.Errorf("call %d: token %v, want a fence above %d", i, arr[1], lastFence)
		}
		lastFence = f
	}
	// a, b and c granted; the second and third acquire of a queued.
	for i, want := range []int64{1, 1, 0, 0, 1} {
		if got := calls[i].v.([]any)[0]; got != want {
			t.Errorf("call %d: reply %v, want %d", i, got, want)
		}
	}
}

// A call that Redis refuses inside a batch fails alone; the others in the
// batch are done as asked.
func TestBatchFailsOnlyItsCall(t *testing.T) {
	s, direct := newBatchStore(t)
	ctx := context.Background()
	// A hash where a lock should be: GET fails with WRONGTYPE.
	direct.HSet(ctx, "lock:{bad}", "x", "y")
	calls := make([]*batchCall, 0, 3)
	for _, name := range []string{"a", "bad", "c"} {
		k := s.keys(name)
		args := s.acquireArgs(lockcore.AcquireRequest{Name: name, Nonce: "n-" + name, TTL: time.Minute}, k)
		calls = append(calls, &batchCall{ctx: ctx, op: "acquire", keys: s.withState(k), args: args, done: make(chan struct{})})
	}
	s.batch.send(calls)
	for i, c := range calls {
		<-c.done
		if c.alone {
			t.Fatalf("call %d: the batch failed as a whole", i)
		}
	}
	if calls[1].err == nil || !redis.HasErrorPrefix(calls[1].err, "WRONGTYPE") {
		t.Errorf("acquire of a name whose key has the wrong type: %v, %v; want its WRONGTYPE error", calls[1].v, calls[1].err)
	}
	for _, i := range []int{0, 2} {
		arr, ok := calls[i].v.([]any)
		if calls[i].err != nil || !ok || arr[0] != int64(1) {
			t.Errorf("call %d beside the failing one = %v, %v; want granted", i, calls[i].v, calls[i].err)
		}
	}
	if v := direct.Get(ctx, "lock:{c}").Val(); v == "" {
		t.Error("the acquire after the failing one did not take its lock")
	}
}

// A batch whose reply is lost may have run: each of its calls is sent
// again on its own, as a repeat, so a release that ran reports it.
func TestBatchReplyLost(t *testing.T) {
	s, direct := newBatchStore(t)
	ctx := context.Background()
	g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "n", TTL: time.Minute})
	if err != nil || !g.Acquired {
		t.Fatal(g, err)
	}
	lose := &loseReplies{}
	lose.on.Store(true)
	s.rdb.AddHook(lose)
	req := lockcore.ReleaseRequest{Name: "a", Token: g.Token}
	k := s.keys("a")
	calls := []*batchCall{
		{ctx: ctx, op: "release", keys: s.withState(k), args: s.releaseArgs(req, k, false), done: make(chan struct{})},
		{ctx: ctx, op: "acquire", keys: s.withState(s.keys("b")),
			args: s.acquireArgs(lockcore.AcquireRequest{Name: "b", Nonce: "m", TTL: time.Minute}, s.keys("b")), done: make(chan struct{})},
	}
	s.batch.send(calls)
	for i, c := range calls {
		<-c.done
		if !c.alone || !c.repeat {
			t.Fatalf("call %d after a lost reply: alone %v, repeat %v; want both", i, c.alone, c.repeat)
		}
	}
	if direct.Exists(ctx, "lock:{a}").Val() != 0 || direct.Exists(ctx, "lock:{b}").Val() != 1 {
		t.Fatal("the batch did not run")
	}
	lose.on.Store(false)
	v, repeated, err := s.runFrom(ctx, s.release, calls[0].keys, func(r bool) []any { return s.releaseArgs(req, k, r) }, calls[0].repeat, s.attempts)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.parseReleased(v); err != nil || !r.Released || !repeated {
		t.Errorf("the release sent again = %+v (repeated %v), %v; want released, as a repeat", r, repeated, err)
	}
}

// loseReplies, while on, lets every script call run and then reports its
// reply lost.
type loseReplies struct{ on atomic.Bool }

func (*loseReplies) DialHook(next redis.DialHook) redis.DialHook { return next }
func (*loseReplies) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (l *loseReplies) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if n := cmd.Name(); err == nil && l.on.Load() && (n == "evalsha" || n == "eval") {
			err = &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
			cmd.SetErr(err)
		}
		return err
	}
}

// waitFor polls cond, for state only visible from outside.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A connection that closes holding many locks gives them back in a few
// calls, each releasing up to DefaultBatchMax.
func TestReleaseAllInBatches(t *testing.T) {
	s, direct := newBatchStore(t)
	ctx := context.Background()
	const n = DefaultBatchMax + 44
	reqs := make([]lockcore.ReleaseRequest, n)
	for i := range reqs {
		g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: fmt.Sprint("r", i), Nonce: "x", TTL: time.Minute})
		if err != nil || !g.Acquired {
			t.Fatal(g, err)
		}
		reqs[i] = lockcore.ReleaseRequest{Name: fmt.Sprint("r", i), Token: g.Token}
	}
	h := &holdFirst{release: make(chan struct{})}
	close(h.release)
	s.rdb.AddHook(h)
	out, err := s.ReleaseAll(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range out {
		if !r.Released {
			t.Errorf("release %d: %+v, want released", i, r)
		}
	}
	if got := h.count(); got != 2 {
		t.Errorf("%d script calls to release %d locks, want 2", got, n)
	}
	if keys := direct.Keys(ctx, "lock:{r*}").Val(); len(keys) != 0 {
		t.Errorf("%d locks still held after ReleaseAll", len(keys))
	}
}

// BatchMax 1 (LOCKPROXY_UPSTREAM_BATCH=1) sends every call on its own.
func TestBatchMaxOne(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := NewClient(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(rdb, Options{Prefix: "lock:", BatchMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.batch != nil || s.acquire.op != "" {
		t.Error("BatchMax 1 still batches")
	}
}

// A name's keys are slices of one string: each must still read as its own.
func TestKeysOfAName(t *testing.T) {
	s := &Store{prefix: "lock:"}
	hashed := "lock:{" + fmt.Sprintf("%x", sha256.Sum256([]byte("a}b")))[:16] + "}a}b"
	for name, lock := range map[string]string{"order:42": "lock:{order:42}", "a}b": hashed} {
		k := s.keys(name)
		want := keys{lock: lock, fence: lock + ":fence", queue: lock + ":q", alive: lock + ":qa", wake: lock + ":wake"}
		if k != want {
			t.Errorf("keys(%q) = %+v, want %+v", name, k, want)
		}
	}
}
