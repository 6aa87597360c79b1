//go:build linux

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
	"github.com/lockproxy/lockproxy/internal/respclient"
	"github.com/lockproxy/lockproxy/internal/safety"
)

// cluster is one scenario's world: an upstream redis-server (optionally
// behind a relay), sidecars on it, a fenced resource on a redis-server of
// its own, and the history every client records into.
type cluster struct {
	t        *testing.T
	up       *redistest.Server
	sen      *redistest.Sentinel // set when the upstream is a Sentinel topology; up is its first primary
	rc       *redistest.Cluster  // set when the upstream is a Redis Cluster; up is then unused
	relay    *relay.Relay        // nil unless withRelay
	resSrv   *redistest.Server
	res      *resource
	hist     *safety.History
	row      *row
	pushes   atomic.Int64 // lock.lost pushes received by any client
	sidecars []*sidecar

	mu     sync.Mutex
	names  map[string]bool // guarded by mu; every name locked, for the resource's log
	direct *redis.Client   // guarded by mu; made on first use
}

// newCluster starts the upstream (with extra redis-server args) and the
// resource, and records the scenario into row.
func newCluster(t *testing.T, row *row, redisArgs ...string) *cluster {
	t.Helper()
	cl := &cluster{t: t, row: row, hist: safety.NewHistory(), names: map[string]bool{}}
	cl.up = redistest.Start(t, redistest.Options{Args: redisArgs})
	cl.resSrv = redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: cl.resSrv.Addr(), PoolSize: 64})
	t.Cleanup(func() { rdb.Close() })
	cl.res = newResource(rdb)
	return cl
}

// withRelay puts a relay in front of the upstream for sidecars that ask.
func (cl *cluster) withRelay() *relay.Relay {
	cl.relay = relay.Start(cl.t, cl.up.Addr())
	return cl.relay
}

// sidecar starts a lockproxy on the upstream, through the relay if
// relayed.
func (cl *cluster) sidecar(id string, relayed bool, settings map[string]string) *sidecar {
	cl.t.Helper()
	env := map[string]string{"UPSTREAM": cl.up.URL()}
	if cl.sen != nil {
		env["UPSTREAM"] = cl.sen.URL()
	}
	if cl.rc != nil {
		env["UPSTREAM"] = cl.rc.URL()
	}
	if relayed {
		env["UPSTREAM"] = "redis://" + cl.relay.Addr() + "/0"
	}
	for k, v := range settings {
		env[k] = v
	}
	sc := startSidecar(cl.t, id, env)
	cl.sidecars = append(cl.sidecars, sc)
	return sc
}

func (cl *cluster) used(name string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.names[name] = true
}

// upstream is a plain client of the upstream, for looking at keys and
// filling it; it follows the upstream through a restart.
func (cl *cluster) upstream() *redis.Client {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.direct == nil {
		cl.direct = cl.up.Client(cl.t)
	}
	return cl.direct
}

// finish checks the history (the resource's log included), fails the test
// on any violation, and fills the scenario's row. Sidecars still running
// are asked for their lost-lock count.
func (cl *cluster) finish() []safety.Violation {
	t := cl.t
	t.Helper()
	vs := cl.check()
	for i, v := range vs {
		if i == 30 {
			t.Errorf("... and %d more violations", len(vs)-i)
			break
		}
		t.Errorf("VIOLATION %s", v)
	}
	sum := cl.hist.Summary()
	cl.row.grants = sum.Grants
	cl.row.violations = len(vs)
	cl.row.pushes = cl.pushes.Load()
	for _, sc := range cl.sidecars {
		if sc.running() {
			cl.row.lostInfo += sc.lostTotal(t)
		} else {
			cl.row.lostUnknown = true
		}
	}
	return vs
}

// check loads the resource's log into the history and checks it.
func (cl *cluster) check() []safety.Violation {
	cl.t.Helper()
	cl.mu.Lock()
	names := make([]string, 0, len(cl.names))
	for n := range cl.names {
		names = append(names, n)
	}
	cl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range names {
		log, err := cl.res.log(ctx, n)
		if err != nil {
			cl.t.Fatalf("resource log of %q: %v", n, err)
		}
		cl.hist.SetApplied(n, log)
	}
	return cl.hist.Check(time.Now())
}

// worstLost is the longest time from at to a holder being told its lock
// was lost, over holds granted before at and told after it (0: none).
func (cl *cluster) worstLost(at time.Time, match func(safety.Hold) bool) time.Duration {
	var worst time.Duration
	for _, g := range cl.hist.Holds() {
		if g.End == safety.Lost && g.Granted.Before(at) && g.Ended.After(at) && (match == nil || match(g)) {
			worst = max(worst, g.Ended.Sub(at))
		}
	}
	return worst
}

// grantsBetween lists holds of names with prefix granted in [from, to).
func (cl *cluster) grantsBetween(prefix string, from, to time.Time) []safety.Hold {
	var out []safety.Hold
	for _, g := range cl.hist.Holds() {
		if strings.HasPrefix(g.Name, prefix) && !g.Granted.Before(from) && g.Granted.Before(to) {
			out = append(out, g)
		}
	}
	return out
}

// client is one in-process RESP3 connection that records its grants, the
// lock.lost pushes it receives, and its own death into the history.
type client struct {
	cl *cluster
	id string
	sc *sidecar
	*respclient.Timed

	mu       sync.Mutex
	open     map[string]int       // guarded by mu; token → hold id, for holds not yet ended
	early    map[string]time.Time // guarded by mu; lost pushes that beat their grant's recording
	lostCh   chan string          // tokens of lock.lost pushes, for tests that await them
	closedAt time.Time            // guarded by mu
}

// client connects a new client to sc. Its id names it in the history.
func (cl *cluster) client(id string, sc *sidecar) (*client, error) {
	c := &client{cl: cl, id: id, sc: sc, open: map[string]int{}, early: map[string]time.Time{},
		lostCh: make(chan string, 1024)}
	var err error
	c.Timed, err = respclient.DialTimed(sc.addr, 5*time.Second, c.onPush, c.onClose)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// mustClient is client, failing the test on error, closed at cleanup.
func (cl *cluster) mustClient(id string, sc *sidecar) *client {
	cl.t.Helper()
	c, err := cl.client(id, sc)
	if err != nil {
		cl.t.Fatalf("client %s to sidecar %s: %v", id, sc.id, err)
	}
	cl.t.Cleanup(c.Close)
	return c
}

// lostPush returns the name and token of a lock.lost push.
func lostPush(v respclient.Value) (name, token string, ok bool) {
	if v.Kind != '>' || len(v.Elems) != 3 || v.Elems[0].Str != "lock.lost" {
		return "", "", false
	}
	return v.Elems[1].Str, v.Elems[2].Str, true
}

func (c *client) onPush(v respclient.Value, at time.Time) {
	_, token, ok := lostPush(v)
	if !ok {
		return
	}
	c.cl.pushes.Add(1)
	c.mu.Lock()
	if id, held := c.open[token]; held {
		c.cl.hist.End(id, safety.Lost, at)
		delete(c.open, token)
	} else {
		c.early[token] = at
	}
	c.mu.Unlock()
	select {
	case c.lostCh <- token:
	default:
	}
}

// onClose ends every hold of a connection that died: the client cannot
// know when, or whether, its locks ended.
func (c *client) onClose(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closedAt = at
	for token, id := range c.open {
		c.cl.hist.End(id, safety.Unknown, at)
		delete(c.open, token)
	}
}

// record enters a grant received at at, and returns the hold's id.
func (c *client) record(name, token string, kind safety.Kind, at time.Time) int {
	c.cl.used(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.cl.hist.GrantAs(c.id, c.sc.id, name, token, kind, at)
	switch lostAt, lost := c.early[token]; {
	case lost:
		c.cl.hist.End(id, safety.Lost, lostAt)
	case !c.closedAt.IsZero():
		c.cl.hist.End(id, safety.Unknown, c.closedAt)
	default:
		c.open[token] = id
	}
	return id
}

// forget drops an ended hold from the open set.
func (c *client) forget(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.open, token)
}

// acquire sends LOCK.ACQUIRE name args... and records a grant. It returns
// the hold id (-1 when not granted), the token and the reply.
func (c *client) acquire(timeout time.Duration, name string, args ...string) (int, string, respclient.Value, error) {
	v, at, err := c.Do(timeout, append([]string{"LOCK.ACQUIRE", name}, args...)...)
	if err != nil || v.Kind != '$' || v.Null {
		return -1, "", v, err
	}
	return c.record(name, v.Str, kindOf(args), at), v.Str, v, nil
}

// kindOf is what LOCK.ACQUIRE options args ask to hold a name as, for the
// checker: a semaphore's permit (LIMIT n), a reader (SHARED), or alone.
func kindOf(args []string) safety.Kind {
	var k safety.Kind
	for i, a := range args {
		switch strings.ToUpper(a) {
		case "SHARED":
			k.Shared = true
		case "LIMIT":
			if i+1 < len(args) {
				k.Limit, _ = strconv.Atoi(args[i+1])
			}
		}
	}
	return k
}

// mustAcquire is acquire, failing the test unless it grants.
func (c *client) mustAcquire(name string, args ...string) (int, string) {
	c.cl.t.Helper()
	id, token, v, err := c.acquire(15*time.Second, name, args...)
	if id < 0 {
		c.cl.t.Fatalf("%s: LOCK.ACQUIRE %s %v = %v, %v", c.id, name, args, v, err)
	}
	return id, token
}

// write writes to the fenced resource as holder id, if it still believes
// it holds the lock; it reports whether it wrote and whether the write
// was accepted.
func (c *client) write(id int, name, token string) (wrote, accepted bool, err error) {
	w, ok := c.cl.hist.TryWrite(id, time.Now())
	if !ok {
		return false, false, nil
	}
	fence, _ := safety.ParseFence(token)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accepted, err = c.cl.res.write(ctx, name, fence, token)
	if err != nil {
		return true, false, err
	}
	c.cl.hist.WriteDone(w, accepted)
	return true, accepted, nil
}

// staleWrite writes as holder id whatever it believes: a client that
// ignores that it was paused past its lock's validity.
func (c *client) staleWrite(id int, name, token string) (bool, error) {
	w := c.cl.hist.StaleWrite(id, time.Now())
	fence, _ := safety.ParseFence(token)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := c.cl.res.write(ctx, name, fence, token)
	if err == nil {
		c.cl.hist.WriteDone(w, ok)
	}
	return ok, err
}

// release ends the belief in hold id the moment before sending
// LOCK.RELEASE, and returns the reply. A release answered 0 means the lock
// had ended at some moment the client was not told of.
func (c *client) release(timeout time.Duration, id int, name, token string) (respclient.Value, error) {
	if !c.cl.hist.End(id, safety.Released, time.Now()) {
		return respclient.Value{}, nil // already ended: lost or the connection died
	}
	c.forget(token)
	v, _, err := c.Do(timeout, "LOCK.RELEASE", name)
	if err == nil && v.Kind == ':' && v.Num == 0 {
		c.cl.hist.Reclassify(id, safety.Unknown)
	}
	return v, err
}

// mustRelease is release, failing the test unless it answers 1.
func (c *client) mustRelease(id int, name, token string) {
	c.cl.t.Helper()
	if v, err := c.release(10*time.Second, id, name, token); err != nil || v.Num != 1 {
		c.cl.t.Fatalf("%s: LOCK.RELEASE %s = %v, %v", c.id, name, v, err)
	}
}

// renew sends LOCK.RENEW; an answer of 0 tells the client it lost the lock.
func (c *client) renew(timeout time.Duration, id int, name, token string, ttl string) (respclient.Value, error) {
	v, at, err := c.Do(timeout, "LOCK.RENEW", name, ttl)
	if err == nil && v.Kind == ':' && v.Num == 0 && id >= 0 {
		c.cl.hist.End(id, safety.Lost, at)
		c.forget(token)
	}
	return v, err
}

// awaitLost waits up to timeout for a lock.lost push of token.
func (c *client) awaitLost(token string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case got := <-c.lostCh:
			if got == token {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// workload is what a group of worker clients do: loop over names,
// acquire with WAIT, write to the fenced resource, hold, release.
type workload struct {
	perSidecar int // workers on each sidecar
	sidecars   []*sidecar
	names      []string
	ttl        time.Duration
	wait       time.Duration
	hold       time.Duration // each hold lasts hold..2×hold
	extra      []string      // more LOCK.ACQUIRE options
	// timeout bounds each command; beyond it the worker drops the
	// connection. Default: wait + 5s.
	timeout time.Duration
}

// workers is a running workload.
type workers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	grants    atomic.Int64
	nulls     atomic.Int64
	transport atomic.Int64 // connection failures and command timeouts
	mu        sync.Mutex
	errs      map[string]int // guarded by mu; error replies by their first words
	errAt     []time.Time    // guarded by mu; when each error reply came, in order
}

// start runs the workload until stop.
func (cl *cluster) start(w workload) *workers {
	ctx, cancel := context.WithCancel(context.Background())
	ws := &workers{cancel: cancel, errs: map[string]int{}}
	if w.timeout == 0 {
		w.timeout = w.wait + 5*time.Second
	}
	for _, sc := range w.sidecars {
		for i := range w.perSidecar {
			id := fmt.Sprintf("w%d@%s", i, sc.id)
			ws.wg.Go(func() { cl.work(ctx, ws, w, id, sc) })
		}
	}
	cl.t.Cleanup(ws.stop)
	return ws
}

// stop ends the workload and waits for every worker to release and leave.
func (ws *workers) stop() {
	ws.once.Do(func() {
		ws.cancel()
		ws.wg.Wait()
	})
}

// fail counts an error reply by kind: its first words, with quoted parts
// (lock names) blanked so that errors group by kind rather than by name.
func (ws *workers) fail(v respclient.Value) {
	var b strings.Builder
	inQuote := false
	for _, r := range v.Str {
		switch {
		case r == '"':
			if inQuote {
				b.WriteString("N")
			}
			inQuote = !inQuote
		case !inQuote:
			b.WriteRune(r)
		}
	}
	msg := b.String()
	if f := strings.Fields(msg); len(f) > 3 {
		msg = strings.Join(f[:4], " ")
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.errs[msg]++
	ws.errAt = append(ws.errAt, time.Now())
}

// firstErrorAfter is when the first error reply at or after from came
// (zero: none).
func (ws *workers) firstErrorAfter(from time.Time) time.Time {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, at := range ws.errAt {
		if !at.Before(from) {
			return at
		}
	}
	return time.Time{}
}

// errors returns the error replies seen, as "count×message" sorted.
func (ws *workers) errors() string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	var out []string
	for m, n := range ws.errs {
		out = append(out, fmt.Sprintf("%d×%q", n, m))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func (ws *workers) errCount(prefix string) int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n := 0
	for m, c := range ws.errs {
		if strings.HasPrefix(m, prefix) {
			n += c
		}
	}
	return n
}

// pause waits d unless the context ends first. Workers use it as think
// and hold time and as back-off, never to wait for an event.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// work is one worker's loop. It reconnects whenever its connection dies
// (the sidecar killed, stopped or refusing), backing off briefly.
func (cl *cluster) work(ctx context.Context, ws *workers, w workload, id string, sc *sidecar) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
	ttl := strconv.FormatInt(w.ttl.Milliseconds(), 10)
	args := append([]string{ttl, "WAIT", strconv.FormatInt(w.wait.Milliseconds(), 10)}, w.extra...)
	var c *client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		if c == nil || !c.alive() {
			if c != nil {
				c.Close()
			}
			var err error
			if c, err = cl.client(id, sc); err != nil {
				c = nil
				ws.transport.Add(1)
				pause(ctx, 50*time.Millisecond)
				continue
			}
		}
		name := w.names[rng.IntN(len(w.names))]
		hid, token, v, err := c.acquire(w.timeout, name, args...)
		switch {
		case err != nil:
			ws.transport.Add(1)
			continue
		case v.IsErr():
			ws.fail(v)
			pause(ctx, 20*time.Millisecond) // an outage or quiet period: do not spin
			continue
		case hid < 0:
			ws.nulls.Add(1)
			continue
		}
		ws.grants.Add(1)
		// The fenced resource takes one writer at a time: holders that
		// share a name (readers, a semaphore's permits) do not write.
		if kindOf(w.extra) == (safety.Kind{}) {
			if _, _, err := c.write(hid, name, token); err != nil {
				cl.t.Errorf("%s: fenced write: %v", id, err)
			}
		}
		pause(context.Background(), w.hold+time.Duration(rng.Int64N(int64(w.hold)+1)))
		if _, err := c.release(w.timeout, hid, name, token); err != nil {
			ws.transport.Add(1)
		}
	}
}

// alive reports whether the connection is still open.
func (c *client) alive() bool {
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}

// waitFor polls cond every 5ms until it holds, failing the test after
// timeout with what.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockInfo returns LOCK.INFO name through c as a map.
func lockInfo(t testing.TB, c *respclient.Timed, name string) map[string]respclient.Value {
	t.Helper()
	v, _, err := c.Do(5*time.Second, "LOCK.INFO", name)
	if err != nil || v.Kind != '%' {
		t.Fatalf("LOCK.INFO %s: %v %v", name, v, err)
	}
	m := map[string]respclient.Value{}
	for i := 0; i+1 < len(v.Elems); i += 2 {
		m[v.Elems[i].Str] = v.Elems[i+1]
	}
	return m
}

// waiters is LOCK.INFO's count of clients blocked on name on c's sidecar.
func waiters(t testing.TB, c *respclient.Timed, name string) int64 {
	return lockInfo(t, c, name)["waiters"].Num
}

// ms formats a duration in whole milliseconds, for commands.
func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// grant is the outcome of an acquire run in the background.
type grant struct {
	id    int
	token string
	v     respclient.Value
	err   error
}

// acquireAsync runs c.acquire in a goroutine; the result arrives on the
// channel.
func (c *client) acquireAsync(timeout time.Duration, name string, args ...string) <-chan grant {
	ch := make(chan grant, 1)
	go func() {
		id, token, v, err := c.acquire(timeout, name, args...)
		ch <- grant{id, token, v, err}
	}()
	return ch
}

// await waits for an acquireAsync result, failing the test unless it
// granted within timeout.
func (cl *cluster) await(ch <-chan grant, what string, timeout time.Duration) grant {
	cl.t.Helper()
	select {
	case g := <-ch:
		if g.id < 0 {
			cl.t.Fatalf("%s: not granted: %v %v", what, g.v, g.err)
		}
		return g
	case <-time.After(timeout):
		cl.t.Fatalf("%s: no reply within %v", what, timeout)
	}
	return grant{}
}

// granted is when hold id was granted.
func (cl *cluster) granted(id int) time.Time { return cl.hist.Holds()[id].Granted }

// procAcquire has client process p (on sc) acquire name and records the
// grant, timed by the process's own clock.
func (cl *cluster) procAcquire(p *proc, sc *sidecar, name string, args ...string) (int, string) {
	cl.t.Helper()
	p.send(cl.t, "cmd LOCK.ACQUIRE "+name+" "+strings.Join(args, " "))
	l := p.next(cl.t, "reply", 15*time.Second)
	token, ok := strings.CutPrefix(l.rest, "$")
	if !ok {
		cl.t.Fatalf("client process %s: LOCK.ACQUIRE %s = %s", p.id, name, l.rest)
	}
	cl.used(name)
	return cl.hist.GrantAs(p.id, sc.id, name, token, kindOf(args), l.recv), token
}

// procWrite has client process p write to the fenced resource as hold id;
// stale marks a write that must be refused. It reports acceptance.
func (cl *cluster) procWrite(p *proc, id int, name, token string, stale bool) bool {
	cl.t.Helper()
	fence, _ := safety.ParseFence(token)
	p.send(cl.t, fmt.Sprintf("fenced %s %d %s", name, fence, token))
	l := p.next(cl.t, "fenced", 15*time.Second)
	var w int
	if stale {
		w = cl.hist.StaleWrite(id, l.sent)
	} else {
		var ok bool
		if w, ok = cl.hist.TryWrite(id, l.sent); !ok {
			cl.t.Fatalf("client process %s wrote after its hold on %s ended", p.id, name)
		}
	}
	if l.rest != "0" && l.rest != "1" {
		cl.t.Fatalf("client process %s: fenced write: %s", p.id, l.rest)
	}
	cl.hist.WriteDone(w, l.rest == "1")
	return l.rest == "1"
}

// heavy picks the -faults.long value.
func heavy[T any](normal, long_ T) T {
	if *long {
		return long_
	}
	return normal
}

// names returns n lock names prefix0..prefix<n-1>.
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// acquireMany pipelines LOCK.ACQUIRE name args... for every name and
// records each grant; it fails the test unless all are granted.
func (c *client) acquireMany(names []string, args ...string) []int {
	c.cl.t.Helper()
	reqs := make([][]string, len(names))
	for i, n := range names {
		reqs[i] = append([]string{"LOCK.ACQUIRE", n}, args...)
	}
	vs, ats, err := c.Pipeline(15*time.Second, reqs...)
	ids := make([]int, len(names))
	for i, v := range vs {
		if v.Kind != '$' || v.Null {
			c.cl.t.Fatalf("%s: LOCK.ACQUIRE %s: %v", c.id, names[i], v)
		}
		ids[i] = c.record(names[i], v.Str, safety.Kind{}, ats[i])
	}
	if err != nil {
		c.cl.t.Fatalf("%s: LOCK.ACQUIRE %s: %v", c.id, names[len(vs)], err)
	}
	return ids
}

// orphanWatch looks, every 20ms, for lock keys in the upstream whose token
// no client holds: locks held by nobody, which block everyone until
// released or expired. A token is briefly unheld in two normal cases, a
// grant on its way to its client (which can take long under latency) and a
// release on its way to the upstream, so the judgement waits for the end,
// when the history knows which tokens reached a client.
type orphanWatch struct {
	cl   *cluster
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	seen map[string][]time.Time // guarded by mu; by token: when its key was seen
	keys map[string]string      // guarded by mu; token → key
}

func (cl *cluster) watchOrphans(prefix string) *orphanWatch {
	w := &orphanWatch{cl: cl, stop: make(chan struct{}), done: make(chan struct{}),
		seen: map[string][]time.Time{}, keys: map[string]string{}}
	rdb := cl.upstream()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			keys, err := rdb.Keys(ctx, "lock:{"+prefix+"*}").Result()
			var vals []any
			if err == nil && len(keys) > 0 {
				vals, err = rdb.MGet(ctx, keys...).Result()
			}
			cancel()
			if err != nil {
				continue // the upstream is down: nothing to see now
			}
			now := time.Now()
			w.mu.Lock()
			for i, v := range vals {
				if token, ok := v.(string); ok {
					w.seen[token] = append(w.seen[token], now)
					w.keys[token] = keys[i]
				}
			}
			w.mu.Unlock()
		}
	}()
	cl.t.Cleanup(w.end)
	return w
}

func (w *orphanWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// result stops the watch and returns how many tokens sat in the upstream
// held by nobody for longer than brief, and the longest such stretch and
// its key. A token no client ever received counts whenever seen; one a
// client received counts only once its hold had ended (and a release had
// time to land).
func (w *orphanWatch) result(brief time.Duration) (n int, longest time.Duration, key string) {
	const grace = 200 * time.Millisecond // a release in flight
	w.end()
	holds := map[string]safety.Hold{}
	for _, g := range w.cl.hist.Holds() {
		holds[g.Token] = g
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for token, seen := range w.seen {
		var first, last time.Time
		for _, at := range seen {
			if g, ok := holds[token]; ok && (g.End == safety.Open || !at.After(g.Ended.Add(grace))) {
				continue
			}
			if first.IsZero() {
				first = at
			}
			last = at
		}
		if first.IsZero() {
			continue
		}
		if d := last.Sub(first); d > brief {
			n++
			if d > longest {
				longest, key = d, w.keys[token]
			}
		}
	}
	return n, longest, key
}

// checkOrphans fails the test if a lock was held by nobody for longer than
// its ttl (plus the watch's granularity, and delay, the longest the fault
// holds up a call on its way to the upstream: a renewal sent before its
// holder's loss lands that much later, and lasts its ttl from there), and
// describes what it saw.
func (cl *cluster) checkOrphans(w *orphanWatch, ttl, delay time.Duration) string {
	cl.t.Helper()
	n, longest, key := w.result(100 * time.Millisecond)
	if longest > ttl+delay+150*time.Millisecond {
		// Nothing may keep a lock nobody holds past its ttl: a try that
		// finds its own grant does not extend it (acquire.lua).
		cl.t.Errorf("%s was held by nobody for %v, longer than its ttl %v", key, longest.Round(time.Millisecond), ttl)
	}
	if n == 0 {
		return "no lock held by nobody for over 100ms"
	}
	return fmt.Sprintf("%d locks held by nobody for over 100ms, the longest %v (%s; ttl %v)", n, longest.Round(time.Millisecond), key, ttl)
}
