package redisstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/lockcore"
)

// Batching: the acquire, release and renew calls that arrive while one
// call is in flight to Redis go together as the next one, a single run of
// the batch script, which runs each call's own script body in turn. Redis
// then reads, runs and answers many calls at the cost of one command, and
// the sidecar writes and reads once for them all (LOCKPROXY_UPSTREAM_BATCH
// says how many at most). A call that finds
// nothing in flight is sent at once, alone, as before: batching adds no
// wait to a lone client.

// DefaultBatchMax is the most calls one batch carries by default; more
// wait for the next.
const DefaultBatchMax = 256

// batchable names the scripts that can be batched, by their op in
// batch.lua, with the body each op runs.
var batchable = []struct{ op, src string }{
	{"acquire", acquireSrc},
	{"release", releaseSrc},
	{"renew", renewSrc},
}

// batchScript is the batch driver with every batchable script's body.
func batchScript() *luaScript {
	var b strings.Builder
	b.WriteString("local ops = {}\n")
	for _, o := range batchable {
		fmt.Fprintf(&b, "ops[%q] = function()\n%s\nend\n", o.op, o.src)
	}
	b.WriteString(batchSrc)
	return script(b.String())
}

// batchCall is one call waiting in a batch.
type batchCall struct {
	ctx  context.Context
	op   string
	keys []string
	args []any // as for a first attempt

	done chan struct{} // closed once v and err are set
	v    any
	err  error
	// alone says the batch failed as a whole: the caller sends the call on
	// its own, as a repeat when the batch may have run (its reply lost).
	alone, repeat bool
}

// batcher gathers calls and sends them; it owns the goroutine that sends
// every batch after the first call's, from New until Close.
type batcher struct {
	s      *Store
	size   int // the most calls in one batch
	sc     *luaScript
	mu     sync.Mutex
	busy   bool         // guarded by mu: a call or batch is in flight
	closed bool         // guarded by mu: nothing more is batched
	queue  []*batchCall // guarded by mu: calls for the next batch
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

func newBatcher(s *Store, size int) *batcher {
	b := &batcher{s: s, size: size, sc: batchScript(), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop()
	return b
}

// close stops the sending goroutine; calls still queued fail over to
// being sent alone by their callers.
func (b *batcher) close() {
	close(b.stop)
	<-b.done
}

// run is Store.runOne for sc's op, batched with whatever else is waiting.
func (b *batcher) run(ctx context.Context, op string, sc *luaScript, keys []string, args func(repeat bool) []any) (any, bool, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return b.s.runOne(ctx, sc, keys, args)
	}
	turn := !b.busy // this call sends the next batch
	if turn {
		b.busy = true
		b.mu.Unlock()
		// Let the goroutines that are ready to run go first: requests other
		// connections have read queue behind this call, and go with it in
		// one batch rather than in a batch of their own after it. With
		// nothing else ready this returns at once: a lone client waits no
		// longer.
		runtime.Gosched()
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.mu.Unlock()
			v, repeated, err := b.s.runOne(ctx, sc, keys, args)
			b.handOn()
			return v, repeated, err
		}
	}
	c := &batchCall{ctx: ctx, op: op, keys: keys, args: args(false), done: make(chan struct{})}
	b.queue = append(b.queue, c)
	if turn {
		calls := b.take()
		b.mu.Unlock()
		b.send(calls)
		b.handOn()
	} else {
		b.mu.Unlock()
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		// It may still run, as a call sent alone may after its caller gave
		// up: the caller treats the error as a reply lost.
		return nil, false, ctx.Err()
	}
	if c.alone {
		return b.s.runFrom(ctx, sc, keys, args, c.repeat, b.s.attempts)
	}
	return c.v, false, c.err
}

// handOn passes the turn to the sending goroutine when calls gathered
// meanwhile, else frees it.
func (b *batcher) handOn() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.busy = false
		return
	}
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// loop sends batches while calls are waiting, then frees the turn.
func (b *batcher) loop() {
	defer close(b.done)
	for {
		select {
		case <-b.stop:
			b.failAll()
			return
		case <-b.kick:
		}
		for {
			runtime.Gosched() // as in run: the ready requests join this batch
			b.mu.Lock()
			calls := b.take()
			if len(calls) == 0 {
				b.busy = false
				b.mu.Unlock()
				break
			}
			b.mu.Unlock()
			b.send(calls)
		}
	}
}

// take removes the next batch's calls from the queue. b.mu is held.
func (b *batcher) take() []*batchCall {
	n := min(len(b.queue), b.size)
	calls := b.queue[:n:n]
	b.queue = b.queue[n:]
	return calls
}

// failAll hands every queued call back to its caller to send alone.
func (b *batcher) failAll() {
	b.mu.Lock()
	calls := b.queue
	b.queue, b.closed = nil, true
	b.mu.Unlock()
	for _, c := range calls {
		c.alone = true
		close(c.done)
	}
}

// send runs one batch and answers its calls.
func (b *batcher) send(calls []*batchCall) {
	if len(calls) == 1 {
		// Nothing to share: the call is its own script, as when alone.
		calls[0].alone = true
		close(calls[0].done)
		return
	}
	ctx, cancel := batchContext(calls)
	defer cancel()
	nk, na := 0, 1+3*len(calls)
	for _, c := range calls {
		nk, na = nk+len(c.keys), na+len(c.args)
	}
	keys := make([]string, 0, nk)
	args := make([]any, 1, na)
	args[0] = len(calls)
	for _, c := range calls {
		keys = append(keys, c.keys...)
		args = append(args, c.op, len(c.keys), len(c.args))
	}
	for _, c := range calls {
		args = append(args, c.args...)
	}
	// Sent once: a repeat of the whole would repeat each release as a
	// first attempt. After a lost reply each call is repeated on its own.
	v, repeated, err := b.s.runFrom(ctx, b.sc, keys, func(bool) []any { return args }, false, 1)
	replies, ok := v.([]any)
	if err == nil && (!ok || len(replies) != len(calls)) {
		err = fmt.Errorf("unexpected reply to a batch of %d: %v", len(calls), v)
	}
	var rerr redis.Error
	for i, c := range calls {
		switch {
		case err != nil && lostReply(err):
			// It may have run: each call is repeated on its own.
			c.alone, c.repeat = true, true
		case err != nil && errors.As(err, &rerr):
			// Redis refused the batch without running it: each call is sent
			// on its own, which retries or reports the refusal as its own.
			c.alone, c.repeat = true, repeated
		case err != nil:
			// A timeout, or the store closing: the reply may yet come, so
			// nothing is repeated, as for a call sent alone.
			c.err = err
		default:
			if e, isErr := replies[i].(error); isErr {
				c.err = e
			} else {
				c.v = replies[i]
			}
		}
		close(c.done)
	}
}

// batchContext is a context for a batch: it ends when the last of its
// calls' contexts would, since a call that has given up still has its
// place in the script.
func batchContext(calls []*batchCall) (context.Context, context.CancelFunc) {
	var last time.Time
	for _, c := range calls {
		dl, ok := c.ctx.Deadline()
		if !ok {
			last = time.Time{}
			break
		}
		if dl.After(last) {
			last = dl
		}
	}
	if last.IsZero() {
		return context.WithTimeout(context.Background(), batchTimeout)
	}
	return context.WithDeadline(context.Background(), last)
}

// batchTimeout bounds a batch none of whose calls has a deadline.
const batchTimeout = 5 * time.Second

// releaseBatched is ReleaseAll in batches of at most the batcher's size,
// sent one after another.
func (s *Store) releaseBatched(ctx context.Context, reqs []lockcore.ReleaseRequest) ([]lockcore.Released, error) {
	out := make([]lockcore.Released, len(reqs))
	var errs []error
	for start := 0; start < len(reqs); start += s.batch.size {
		chunk := reqs[start:min(start+s.batch.size, len(reqs))]
		calls := make([]*batchCall, len(chunk))
		for i, req := range chunk {
			k := s.keys(req.Name)
			calls[i] = &batchCall{ctx: ctx, op: "release", keys: s.withState(k), args: s.releaseArgs(req, k, false), done: make(chan struct{})}
		}
		s.batch.send(calls)
		for i, c := range calls {
			req, k := chunk[i], s.keys(chunk[i].Name)
			v, err := c.v, c.err
			repeated := false
			if c.alone {
				v, repeated, err = s.runFrom(ctx, s.release, c.keys, func(r bool) []any { return s.releaseArgs(req, k, r) }, c.repeat, s.attempts)
			}
			if err == nil {
				out[start+i], err = s.parseReleased(v)
				out[start+i].Repeated = repeated
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return out, errors.Join(errs...)
}
