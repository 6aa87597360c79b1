//go:build linux

package faults

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/safety"
)

// The upstream dies and comes back empty on the same port: every holder is
// told lock.lost, nothing is granted during LOCKPROXY_QUIET_PERIOD (any
// lock from before might still be believed), and grants resume after it.
func upstreamRestart(t *testing.T, r *row) {
	cl := newCluster(t, r)
	const quiet = 2 * time.Second // startSidecar's LOCKPROXY_QUIET_PERIOD
	a := cl.sidecar("a", false, nil)
	b := cl.sidecar("b", false, nil)
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s5-w", 3),
		ttl: time.Second, wait: 500 * time.Millisecond, hold: 2 * time.Millisecond})
	probes := map[*client]string{}
	for _, sc := range []*sidecar{a, b} {
		p := cl.mustClient("probe-"+sc.id, sc)
		_, probes[p] = p.mustAcquire("s5-p"+sc.id, "5000")
	}
	waitFor(t, 5*time.Second, "workers granted", func() bool { return wl.grants.Load() > 20 })

	killedAt := time.Now()
	cl.up.Kill(t)
	cl.up.Restart(t)
	restartedAt := time.Now()
	r.injections++
	for p, token := range probes {
		if !p.awaitLost(token, 5*time.Second) {
			t.Errorf("%s: no lock.lost within 5s of the upstream restart", p.id)
		}
	}
	end := restartedAt.Add(quiet)
	waitFor(t, quiet+5*time.Second, "grants after the quiet period", func() bool {
		return len(cl.grantsBetween("s5-", end, time.Now().Add(time.Hour))) > 0
	})
	if early := cl.grantsBetween("s5-", restartedAt, end); len(early) > 0 {
		t.Errorf("%d grants during the quiet period, the first %v after the restart", len(early), early[0].Granted.Sub(restartedAt))
	}
	if wl.errCount("UPSTREAM quiet period") == 0 {
		t.Errorf("no acquire was refused with the quiet period; errors: %s", wl.errors())
	}
	wl.stop()
	cl.finish()
	r.detect = cl.worstLost(killedAt, nil)
	r.note("restart took %v; first grant %v after it (quiet period %v); errors %s",
		restartedAt.Sub(killedAt).Round(time.Millisecond),
		firstGrant(cl, "s5-", restartedAt).Round(time.Millisecond), quiet, wl.errors())
}

// firstGrant is how long after from the first grant of a prefix came.
func firstGrant(cl *cluster, prefix string, from time.Time) time.Duration {
	gs := cl.grantsBetween(prefix, from, time.Now().Add(time.Hour))
	first := time.Duration(-1)
	for _, g := range gs {
		if d := g.Granted.Sub(from); first < 0 || d < first {
			first = d
		}
	}
	return first
}

// The upstream is frozen (SIGSTOP) for twice the ttl: holders are told at
// their validity, nothing is granted while it is frozen, grants resume
// after SIGCONT, and whatever ambiguous acquires it ran late on its queued
// requests leave no lock behind longer than a ttl.
func upstreamPaused(t *testing.T, r *row) {
	cl := newCluster(t, r)
	const ttl = time.Second
	settings := map[string]string{"UPSTREAM_TIMEOUT": "500ms"}
	a := cl.sidecar("a", false, settings)
	b := cl.sidecar("b", false, settings)
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s6-w", 3),
		ttl: ttl, wait: 500 * time.Millisecond, hold: 2 * time.Millisecond})
	probes := map[*client]string{}
	for _, sc := range []*sidecar{a, b} {
		p := cl.mustClient("probe-"+sc.id, sc)
		_, probes[p] = p.mustAcquire("s6-p"+sc.id, ms(ttl))
	}
	waitFor(t, 5*time.Second, "workers granted", func() bool { return wl.grants.Load() > 20 })
	orphans := cl.watchOrphans("s6-")

	pausedAt := time.Now()
	cl.up.Pause(t)
	r.injections++
	for p, token := range probes {
		if !p.awaitLost(token, ttl+time.Second) {
			t.Errorf("%s: no lock.lost within ttl+1s of the upstream freezing", p.id)
		}
	}
	time.Sleep(time.Until(pausedAt.Add(2 * ttl)))
	cl.up.Resume(t)
	resumedAt := time.Now()
	// Replies the upstream had sent just before it froze may still land.
	if during := cl.grantsBetween("s6-", pausedAt.Add(100*time.Millisecond), resumedAt); len(during) > 0 {
		t.Errorf("%d grants while the upstream was frozen", len(during))
	}
	waitFor(t, 5*time.Second, "grants after SIGCONT", func() bool {
		return len(cl.grantsBetween("s6-", resumedAt, time.Now().Add(time.Hour))) > 0
	})
	// Long enough for a lock granted on resume to a client already gone
	// to run out its ttl.
	time.Sleep(time.Until(resumedAt.Add(ttl + 300*time.Millisecond)))
	wl.stop()
	orphan := cl.orphans(t, "s6-", ttl+time.Second)
	nobody := cl.checkOrphans(orphans, ttl, 0)
	cl.finish()
	r.detect = cl.worstLost(pausedAt, nil)
	r.note("frozen %v (ttl %v); first grant %v after SIGCONT; %s; keys gone %v after the clients let go; errors %s",
		resumedAt.Sub(pausedAt).Round(time.Millisecond), ttl, firstGrant(cl, "s6-", resumedAt).Round(time.Millisecond),
		nobody, orphan.Round(time.Millisecond), wl.errors())
}

// orphans waits, after every client let go, until no lock key of prefix is
// left in the upstream, failing the test after limit. It returns how long
// the last one lasted: a lock nobody holds blocks everyone while it lasts.
func (cl *cluster) orphans(t *testing.T, prefix string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	rdb := cl.upstream()
	var keys []string
	for {
		keys = rdb.Keys(t.Context(), "lock:{"+prefix+"*}").Val()
		if len(keys) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Errorf("lock keys held by nobody still there %v after every client let go: %v", limit, keys)
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An upstream that evicts (maxmemory, allkeys-lru) is flagged at start; when
// filler pushes it into eviction, a lock whose key was evicted is detected
// at its next renewal and its holder told. Eviction can hand a lock to a
// second client before the first is told; that is counted and reported,
// and only the windows of holders that were not evicted are held to
// mutual exclusion.
//
// Under allkeys-lru, eviction also takes the sidecars' epoch key, which
// they read as an upstream reset (every lock lost, the quiet period). The
// second variant uses volatile-lru, which spares that key (it has no ttl)
// but not the locks, so that the per-lock detection is what is exercised.
func evictionEpoch(t *testing.T, r *row)   { eviction(t, r, "allkeys-lru") }
func evictionPerLock(t *testing.T, r *row) { eviction(t, r, "volatile-lru") }

func eviction(t *testing.T, r *row, policy string) {
	keepEpoch := policy == "volatile-lru"
	// Eviction events tell the suite which locks eviction took, and when.
	cl := newCluster(t, r, "--maxmemory", "2mb", "--maxmemory-policy", policy, "--notify-keyspace-events", "Ee")
	a := cl.sidecar("a", false, nil)
	b := cl.sidecar("b", false, nil)
	for _, sc := range []*sidecar{a, b} {
		if risks := sc.info(t)["upstream_risks"]; !strings.Contains(risks, "eviction") {
			t.Errorf("sidecar %s: upstream_risks = %q; want eviction flagged", sc.id, risks)
		}
	}
	const ttl = 2 * time.Second
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s10-w", 4),
		ttl: ttl, wait: 500 * time.Millisecond, hold: 20 * time.Millisecond})
	n := heavy(40, 100)
	type probe struct {
		c     *client
		id    int
		name  string
		token string
	}
	probes := make([]probe, n)
	for i := range probes {
		sc := []*sidecar{a, b}[i%2]
		p := probe{c: cl.mustClient(fmt.Sprintf("probe%d", i), sc), name: "s10-p" + strconv.Itoa(i)}
		p.id, p.token = p.c.mustAcquire(p.name, ms(ttl))
		probes[i] = p
	}
	waitFor(t, 5*time.Second, "workers granted", func() bool { return wl.grants.Load() > 20 })

	rdb := cl.upstream()
	evictions := watchEvictions(t, cl.up.Addr())
	fillAt := time.Now()
	filled, oom, err := fill(t.Context(), rdb, 4<<20, 2*time.Second)
	fillDone := time.Now()
	r.injections++
	if err != nil {
		t.Fatalf("filling the upstream: %v", err)
	}
	evictedKeys := infoInt(t, rdb, "stats", "evicted_keys")
	// Every lock is renewed within ttl/2 of the fill's end: by then each
	// evicted one has been found missing.
	time.Sleep(time.Until(fillDone.Add(ttl/2 + 500*time.Millisecond)))
	// Eviction goes on while anything writes, so a key may go after its
	// last renewal: each holder whose key is gone must be told by its next.
	var missing []probe
	for _, p := range probes {
		if cl.hist.Believes(p.id) && rdb.Get(t.Context(), "lock:{"+p.name+"}").Val() != p.token {
			missing = append(missing, p)
		}
	}
	deadline := time.Now().Add(ttl/2 + time.Second)
	for _, p := range missing {
		for cl.hist.Believes(p.id) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if cl.hist.Believes(p.id) {
			t.Errorf("%s: its key was evicted, and its holder not told within a renewal (ttl %v)", p.name, ttl)
		}
	}
	lost := 0
	for _, p := range probes {
		if !cl.hist.Believes(p.id) {
			lost++
		}
	}
	wl.stop()

	// The honest count first: what eviction did to mutual exclusion.
	strict := 0
	for _, v := range cl.check() {
		strict++
		if strict <= 3 {
			t.Logf("caused by eviction: %s", v)
		}
	}
	// Nothing is promised about a lock from the eviction of one of its
	// keys (or of the epoch key, which makes the sidecars drop them all)
	// until the sidecars can have noticed: its next renewal, with slack.
	evicted, epoch := evictions()
	disturbed := 0
	for _, g := range cl.hist.Holds() {
		times := evicted[g.Name]
		if !epoch.IsZero() {
			times = append(times, epoch)
		}
		for _, at := range times {
			from, until := at.Add(-50*time.Millisecond), at.Add(ttl/2+500*time.Millisecond)
			if g.Granted.Before(until) && (g.End == safety.Open || g.Ended.After(from)) {
				cl.hist.Unprotect(g.ID, latest(from, g.Granted), "a key of its lock was evicted")
				disturbed++
				break
			}
		}
	}
	cl.finish()
	r.detect = cl.worstLost(fillAt, func(g safety.Hold) bool { return strings.HasPrefix(g.Name, "s10-p") })
	resets := 0
	for _, sc := range []*sidecar{a, b} {
		if strings.Contains(sc.logs.String(), "restarted or failed over") {
			resets++
		}
	}
	if keepEpoch && resets > 0 {
		t.Errorf("%d sidecars declared an upstream reset although the epoch key was kept", resets)
	}
	r.note("%s; upstream_risks=eviction flagged; %d KiB of filler (%d writes refused OOM) evicted %d keys, of %d lock names; "+
		"%d of %d probe holders told lock.lost, none left believing in an evicted key; "+
		"%d of 2 sidecars took an evicted epoch key for an upstream reset (all their locks lost, quiet period); "+
		"%d violations caused by eviction (not promised), among the %d holds it disturbed; worker errors %s",
		policy, filled>>10, oom, evictedKeys, len(evicted), lost, n, resets, strict, disturbed, wl.errors())
}

// watchEvictions subscribes to the upstream's eviction events and returns a
// function that stops and reports, by lock name, when each name's keys were
// evicted, and when the epoch key was (zero: never).
func watchEvictions(t *testing.T, addr string) func() (map[string][]time.Time, time.Time) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	sub := rdb.Subscribe(t.Context(), "__keyevent@0__:evicted")
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatalf("subscribing to eviction events: %v", err)
	}
	byName := map[string][]time.Time{}
	var epoch time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range sub.Channel() {
			at := time.Now()
			if m.Payload == "lock:epoch" {
				epoch = at
				continue
			}
			if _, tagged, ok := strings.Cut(m.Payload, "{"); ok && strings.HasPrefix(m.Payload, "lock:") {
				name, _, _ := strings.Cut(tagged, "}")
				byName[name] = append(byName[name], at)
			}
		}
	}()
	return func() (map[string][]time.Time, time.Time) {
		sub.Close()
		<-done
		return byName, epoch
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fill writes 4 KiB values, one at a time so that the server can evict
// between them, until size bytes were written or the budget ran out.
// Writes refused with OOM (eviction had not caught up, or what is left is
// not keys but connection buffers) are counted and retried after a pause.
func fill(ctx context.Context, rdb *redis.Client, size int, budget time.Duration) (written, oom int, err error) {
	val := strings.Repeat("x", 4<<10)
	deadline := time.Now().Add(budget)
	for i := 0; written < size && time.Now().Before(deadline); i++ {
		// A ttl, so that volatile policies may evict the filler too.
		err := rdb.Set(ctx, "filler:"+strconv.Itoa(i), val, time.Hour).Err()
		switch {
		case err == nil:
			written += len(val)
		case strings.HasPrefix(err.Error(), "OOM"):
			oom++
			time.Sleep(5 * time.Millisecond) // back-off, not synchronisation
		default:
			return written, oom, err
		}
	}
	return written, oom, nil
}

// infoInt reads one integer field of Redis's INFO section.
func infoInt(t *testing.T, rdb *redis.Client, section, field string) int64 {
	t.Helper()
	in, err := rdb.Info(t.Context(), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	for _, line := range strings.Split(in, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}
