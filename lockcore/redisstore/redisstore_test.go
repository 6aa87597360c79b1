package redisstore_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
	"github.com/lockproxy/lockproxy/lockcore/storetest"
)

func newStore(t *testing.T, url string, opt redisstore.Options) *redisstore.Store {
	t.Helper()
	rdb, err := redisstore.NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.New(rdb, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) lockcore.Store {
		return newStore(t, srv.URL(), redisstore.Options{Prefix: "lock:"})
	})
}

// Keys of one name share one hash slot, whatever the name, so a Cluster
// runs the scripts unchanged.
func TestKeysShareSlot(t *testing.T) {
	s, err := redisstore.New(redis.NewClient(&redis.Options{}), redisstore.Options{Prefix: "lock:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := map[string]string{}
	for _, name := range []string{"a", "order:42", "}", "}x", "{", "{}", "a{b}c", "a}b", "x:fence", "\x00"} {
		lk, fk := s.Keys(name)
		if slot(lk) != slot(fk) {
			t.Errorf("name %q: %q (slot %d) and %q (slot %d) differ", name, lk, slot(lk), fk, slot(fk))
		}
		for _, k := range []string{lk, fk} {
			if other, dup := seen[k]; dup {
				t.Errorf("key %q used by names %q and %q", k, other, name)
			}
			seen[k] = name
		}
	}
	if lk, _ := s.Keys("order:42"); lk != "lock:{order:42}" {
		t.Errorf("Keys(order:42) = %q, want the readable lock:{order:42}", lk)
	}
}

// slot is Redis Cluster's key slot: CRC16 of the hash tag, or of the key.
func slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

func TestPrefixWithBracesRejected(t *testing.T) {
	if _, err := redisstore.New(redis.NewClient(&redis.Options{}), redisstore.Options{Prefix: "a{b}:"}); err == nil {
		t.Error("a prefix with braces was accepted; it would break the hash tags")
	}
}

// After SCRIPT FLUSH the scripts are loaded again on NOSCRIPT.
func TestScriptFlush(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), redisstore.Options{Prefix: "lock:"})
	ctx := context.Background()
	g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "n1", TTL: time.Minute})
	if err != nil || !g.Acquired {
		t.Fatal(g, err)
	}
	if err := srv.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if res, err := s.ReleaseAll(ctx, []lockcore.ReleaseRequest{{Name: "a", Token: g.Token}}); err != nil || !res[0].Released {
		t.Fatalf("ReleaseAll after SCRIPT FLUSH: %v, %v", res, err)
	}
	if st, _ := s.Inspect(ctx, "a"); st.Held {
		t.Error("still held after ReleaseAll")
	}
	if err := srv.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "n2", TTL: time.Minute}); err != nil || !g.Acquired {
		t.Fatalf("Acquire after SCRIPT FLUSH = %+v, %v", g, err)
	}
}

// Keys disappear on their own: the lock key with its ttl, the fence key
// after the retention, so the keyspace does not grow with names.
func TestKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), redisstore.Options{Prefix: "lock:", Retention: 50 * time.Millisecond})
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: n, Nonce: "x", TTL: 20 * time.Millisecond})
		if err != nil || !g.Acquired {
			t.Fatal(g, err)
		}
		if n == "a" {
			s.Release(ctx, lockcore.ReleaseRequest{Name: n, Token: g.Token})
		}
		// A waiter's queue entry expires too.
		s.Acquire(ctx, lockcore.AcquireRequest{Name: n, Nonce: "y", TTL: time.Second, Waiter: "w", WaiterTTL: 30 * time.Millisecond})
	}
	keys, _ := rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		// -1: no ttl. (-2, gone already, is what the test waits for below.)
		if ttl := rdb.PTTL(ctx, k).Val(); ttl == -1 {
			t.Errorf("key %q has no ttl: it would stay forever", k)
		}
	}
	// Expiry is the event under test: wait for Redis to drop the keys.
	deadline := time.Now().Add(5 * time.Second)
	for rdb.DBSize(ctx).Val() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Errorf("DBSIZE = %d after ttl + retention, want 0", n)
	}
}

// A release whose reply is lost is repeated, and the repeat reports the
// release that already happened rather than "not held".
func TestReleaseReplyLost(t *testing.T) {
	srv := redistest.Start(t)
	r := relay.Start(t, srv.Addr())
	s := newStore(t, "redis://"+r.Addr()+"/0", redisstore.Options{Prefix: "lock:"})
	ctx := context.Background()
	g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "n1", TTL: time.Minute})
	if err != nil || !g.Acquired {
		t.Fatal(g, err)
	}
	// Load the release script first: a NOSCRIPT reply must not be the one lost.
	if _, err := s.Release(ctx, lockcore.ReleaseRequest{Name: "warm-up", Token: "1:x"}); err != nil {
		t.Fatal(err)
	}
	// The release runs in Redis, its reply is swallowed, and the relay then
	// cuts the connection, so the store sees a lost reply and repeats.
	r.DropReplies(true)
	released := make(chan struct{})
	go func() {
		defer close(released)
		r, err := s.Release(ctx, lockcore.ReleaseRequest{Name: "a", Token: g.Token})
		if err != nil || !r.Released || !r.Repeated {
			t.Errorf("Release with a lost reply = %+v, %v; want released, repeated", r, err)
		}
	}()
	waitGone(t, srv.Client(t), "lock:{a}")
	r.DropReplies(false)
	r.ResetAll()
	<-released

	// A second, deliberate release is not a repeat: it says not held.
	if r, err := s.Release(ctx, lockcore.ReleaseRequest{Name: "a", Token: g.Token}); err != nil || r.Released {
		t.Errorf("second Release = %+v, %v; want not released", r, err)
	}
}

// waitGone waits until key is deleted: the event that shows the script ran.
func waitGone(t *testing.T, rdb *redis.Client, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for rdb.Exists(context.Background(), key).Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%q still exists", key)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Fences keep rising when Redis forgets every key (a restart without
// persistence), because they come from Redis's clock.
func TestFenceAfterFlush(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), redisstore.Options{Prefix: "lock:"})
	ctx := context.Background()
	g1, _ := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "n1", TTL: time.Minute})
	srv.Kill(t)
	srv.Restart(t)
	var g2 lockcore.Grant
	var err error
	deadline := time.Now().Add(5 * time.Second)
	req := lockcore.AcquireRequest{Name: "a", Nonce: "n2", TTL: time.Minute}
	for g2, err = s.Acquire(ctx, req); err != nil && time.Now().Before(deadline); {
		g2, err = s.Acquire(ctx, req)
	}
	if err != nil || !g2.Acquired {
		t.Fatalf("Acquire after restart = %+v, %v", g2, err)
	}
	f1, _, _ := lockcore.ParseToken(g1.Token)
	f2, _, _ := lockcore.ParseToken(g2.Token)
	if f2 <= f1 {
		t.Errorf("fence after restart %d <= %d before", f2, f1)
	}
}

// Acquire checks the epoch Accept adopted: once the upstream has lost it
// (a restart without persistence, a flush), nothing is granted and OnReset
// is called; a Guard store grants nothing before its first Accept.
func TestEpoch(t *testing.T) {
	srv := redistest.Start(t)
	resets := make(chan struct{}, 10)
	s := newStore(t, srv.URL(), redisstore.Options{Prefix: "e:", Guard: true, OnReset: func() { resets <- struct{}{} }})
	ctx := context.Background()
	req := lockcore.AcquireRequest{Name: "a", Nonce: "n1", TTL: time.Minute}
	if _, err := s.Acquire(ctx, req); err == nil || errors.Is(err, lockcore.ErrStoreReset) {
		t.Fatalf("Acquire before the first check = %v, want the not-checked error", err)
	}
	<-resets

	h, err := s.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.Health(ctx)
	if again.ID != h.ID {
		t.Fatalf("Health ID changed with no restart: %q, then %q", h.ID, again.ID)
	}
	s.Accept(h)
	if g, err := s.Acquire(ctx, req); err != nil || !g.Acquired {
		t.Fatalf("Acquire after Accept = %+v, %v", g, err)
	}

	srv.Client(t).FlushAll(ctx) // what a restart without persistence leaves
	req.Name, req.Nonce = "b", "n2"
	if g, err := s.Acquire(ctx, req); !errors.Is(err, lockcore.ErrStoreReset) || g.Acquired {
		t.Fatalf("Acquire after the data was lost = %+v, %v; want ErrStoreReset", g, err)
	}
	<-resets
	if held, _ := srv.Client(t).Exists(ctx, "e:{b}").Result(); held != 0 {
		t.Error("the refused acquire wrote the lock key")
	}
	h2, err := s.Health(ctx)
	if err != nil || h2.Data == h.Data || h2.ID != h.ID {
		t.Fatalf("Health after the loss = %+v, %v; want new Data on the same server %q", h2, err, h.ID)
	}
	s.Accept(h2)
	if g, err := s.Acquire(ctx, req); err != nil || !g.Acquired {
		t.Fatalf("Acquire after accepting the new epoch = %+v, %v", g, err)
	}
}

// Risks reads the settings that can lose locks.
func TestRisks(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--maxmemory-policy", "volatile-ttl"}})
	s := newStore(t, srv.URL(), redisstore.Options{})
	risks, err := s.Risks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range risks {
		kinds = append(kinds, r.Kind)
	}
	if !slices.Equal(kinds, []string{"eviction", "no_persistence"}) {
		t.Errorf("risks %+v", risks)
	}
}

// The same contract on a Redis Cluster of three masters: every script's
// keys share one slot, and wakes travel by sharded pub/sub (SPUBLISH and
// SSUBSCRIBE on the slot's node). Revocations go to a sidecar's own classic
// channel, which a Cluster broadcasts to every node.
func TestConformanceCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	storetest.Run(t, func(t *testing.T) lockcore.Store {
		s, err := redisstore.New(cl.Client(t), redisstore.Options{Prefix: "lock:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
	// Wakes went by sharded pub/sub only, so that each stays on its slot's
	// node; the classic PUBLISH and SUBSCRIBE, one each, are the two revoke
	// tests' (Revoke, PermitRevoke), on a sidecar's own channel.
	calls := map[string]int{}
	for _, n := range cl.Nodes {
		stats, err := n.Client(t).Info(context.Background(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"spublish", "ssubscribe", "publish", "subscribe"} {
			if _, rest, ok := strings.Cut(stats, "cmdstat_"+cmd+":calls="); ok {
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				calls[cmd] += n
			}
		}
	}
	t.Logf("pub/sub calls on the cluster: %v", calls)
	if calls["spublish"] == 0 || calls["ssubscribe"] == 0 || calls["publish"] != 2 || calls["subscribe"] != 2 {
		t.Errorf("pub/sub calls on the cluster %v: want sharded ones only", calls)
	}
}

// A Redis out of memory refuses every grant the same way: a waiter's try,
// whose first write would be a dequeue (which frees memory, and after which
// Redis lets every write of the script through), as much as a plain one.
// Releases still work.
func TestOutOfMemoryRefusesEveryGrant(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), redisstore.Options{Prefix: "lock:"})
	rdb := srv.Client(t)
	ctx := context.Background()
	holder := mustGrant(t, s, lockcore.AcquireRequest{Name: "oom", Nonce: "h", TTL: time.Minute})
	waiter := lockcore.AcquireRequest{Name: "oom", Nonce: "w", TTL: time.Minute, Waiter: "elsewhere:1", WaiterTTL: time.Minute}
	if g, err := s.Acquire(ctx, waiter); err != nil || g.Acquired {
		t.Fatalf("waiter while held = %+v, %v; want queued", g, err)
	}
	used, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(used, "used_memory:")
	n, _ := strconv.Atoi(strings.TrimSpace(rest[:strings.IndexByte(rest, '\n')]))
	// Below what is used: every write that may use memory is refused.
	if err := rdb.ConfigSet(ctx, "maxmemory", strconv.Itoa(n/2)).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.ConfigSet(ctx, "maxmemory", "0") })
	if r, err := s.Release(ctx, lockcore.ReleaseRequest{Name: "oom", Token: holder}); err != nil || !r.Released {
		t.Fatalf("release under OOM = %+v, %v; want released", r, err)
	}
	for _, req := range []lockcore.AcquireRequest{waiter, {Name: "oom-free", Nonce: "p", TTL: time.Minute}} {
		g, err := s.Acquire(ctx, req)
		if err == nil || !strings.Contains(err.Error(), "OOM") || g.Acquired {
			t.Errorf("acquire %+v under OOM = %+v, %v; want an OOM error", req, g, err)
		}
	}
	if st, _ := s.Inspect(ctx, "oom"); st.Held || st.Queued != 1 {
		t.Errorf("after the refused acquire: %+v; want free, the waiter still queued", st)
	}
}

func mustGrant(t *testing.T, s *redisstore.Store, req lockcore.AcquireRequest) string {
	t.Helper()
	g, err := s.Acquire(context.Background(), req)
	if err != nil || !g.Acquired {
		t.Fatalf("Acquire(%+v) = %+v, %v", req, g, err)
	}
	return g.Token
}

// Subscribing is network I/O, which must hold up no other watch's wakes:
// on a Cluster each name's sharded subscription dials its slot's node, and
// a node that does not answer must not stall the wakes of names elsewhere.
func TestSlowSubscribeBlocksNoWakes(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	var stuck atomic.Value // the address whose dials hang, until released
	stuck.Store("")
	release := make(chan struct{})
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), MaxRetries: -1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == stuck.Load() {
				select { // a node that takes no connections, until released
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	s, err := redisstore.New(rdb, redisstore.Options{Prefix: "lock:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer close(release) // before Close, which waits for the hung subscription
	// A name on the first node's slots, and one on the second's (each node
	// has a third of the slots, in order).
	onNode := func(i int) string {
		for n := 0; ; n++ {
			name := "slow" + strconv.Itoa(n)
			if int(slot(name))*3/16384 == i {
				return name
			}
		}
	}
	near, far := onNode(0), onNode(1)
	wakes := make(chan lockcore.Wake, 4)
	stop, err := s.Watch(context.Background(), near, func(w lockcore.Wake) { wakes <- w })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	stuck.Store(cl.Nodes[1].Addr())
	farDone := make(chan struct{})
	go func() {
		defer close(farDone)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if stop, err := s.Watch(ctx, far, func(lockcore.Wake) {}); err == nil {
			stop()
		}
	}()
	defer func() { <-farDone }()
	// The far watch is dialing its node, which hangs. A release of the
	// near name wakes its waiter all the same.
	holder := mustGrant(t, s, lockcore.AcquireRequest{Name: near, Nonce: "h", TTL: time.Minute})
	if g, err := s.Acquire(context.Background(), lockcore.AcquireRequest{Name: near, Nonce: "w", TTL: time.Minute, Waiter: "elsewhere:1", WaiterTTL: time.Minute}); err != nil || g.Acquired {
		t.Fatalf("waiter = %+v, %v", g, err)
	}
	if r, err := s.Release(context.Background(), lockcore.ReleaseRequest{Name: near, Token: holder}); err != nil || !r.Released {
		t.Fatalf("release = %+v, %v", r, err)
	}
	select {
	case w := <-wakes:
		if w.Waiter != "elsewhere:1" {
			t.Errorf("wake %+v", w)
		}
	case <-time.After(2 * time.Second): // far below go-redis's 5s dial timeout
		t.Fatal("no wake within 2s while another name's subscription hangs")
	}
}

// With ReplicaAcks, a grant is answered only once WAIT confirms a replica
// has it. With the replica frozen, the grant is given back (the lock is
// free again) and the call fails; a renewal fails but leaves the lock held
// (its holder keeps the validity of the earlier ttl, which the replica has).
func TestReplicaAcks(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	ctx := context.Background()
	s := newStore(t, primary.URL(), redisstore.Options{Prefix: "lock:", ReplicaAcks: 1})
	g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "n1", TTL: time.Minute})
	if err != nil || !g.Acquired {
		t.Fatalf("Acquire with the replica up = %+v, %v", g, err)
	}

	replica.Pause(t)
	defer replica.Resume(t)
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = s.Acquire(short, lockcore.AcquireRequest{Name: "b", Nonce: "n2", TTL: time.Minute})
	var nr *redisstore.NotReplicatedError
	if !errors.As(err, &nr) || nr.Acked != 0 || nr.Want != 1 {
		t.Fatalf("Acquire with the replica frozen = %v, want a NotReplicatedError", err)
	}
	if st, err := s.Inspect(ctx, "b"); err != nil || st.Held {
		t.Errorf("the grant that was not replicated is still held: %+v, %v", st, err)
	}
	short2, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	_, err = s.Renew(short2, lockcore.RenewRequest{Name: "a", Token: g.Token, TTL: 2 * time.Minute})
	if !errors.As(err, &nr) {
		t.Fatalf("Renew with the replica frozen = %v, want a NotReplicatedError", err)
	}
	if st, err := s.Inspect(ctx, "a"); err != nil || !st.Held || st.Token != g.Token {
		t.Errorf("a renewal that was not replicated lost the lock: %+v, %v", st, err)
	}
}

// Fences keep rising across a failover to a replica whose clock is an
// hour behind: the state hash it replicated carries the largest fence, so
// even a sidecar that never saw one gets a larger one; and after that
// replica lost its data too, a sidecar's own floor carries it.
func TestFencesRiseOnClockBehindReplica(t *testing.T) {
	primary := redistest.Start(t)
	behind := redistest.StartReplica(t, primary, redistest.Options{Env: redistest.FakeTime(t, "-1h")})
	ctx := context.Background()
	rdb := primary.Client(t)
	before := lockcore.AcquireRequest{Name: "before", Nonce: "n1", TTL: time.Minute}
	s1 := newStore(t, primary.URL(), redisstore.Options{Prefix: "lock:"})
	g1, err := s1.Acquire(ctx, before)
	if err != nil || !g1.Acquired {
		t.Fatal(g1, err)
	}
	// WAIT covers this connection's own writes: one first, after s1's.
	rdb.Set(ctx, "sync", 1, 0)
	if n, err := rdb.Do(ctx, "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}
	br := behind.Client(t)
	if n, _ := br.Exists(ctx, "lock:state").Result(); n != 1 {
		t.Fatal("the replica does not have the state hash: not in sync")
	}
	if err := br.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	now, _ := br.Time(ctx).Result()
	if lag := time.Since(now); lag < 59*time.Minute {
		t.Fatalf("the replica's clock is %v behind, want an hour: is libfaketime working?", lag)
	}
	f1, _, _ := lockcore.ParseToken(g1.Token)

	// A sidecar that never saw a fence, on the promoted replica, a name
	// whose fence key never existed.
	s2 := newStore(t, behind.URL(), redisstore.Options{Prefix: "lock:"})
	g2, err := s2.Acquire(ctx, lockcore.AcquireRequest{Name: "after", Nonce: "n2", TTL: time.Minute})
	if err != nil || !g2.Acquired {
		t.Fatal(g2, err)
	}
	f2, _, _ := lockcore.ParseToken(g2.Token)
	if f2 <= f1 {
		t.Fatalf("fence on the clock-behind replica %d <= %d before the failover", f2, f1)
	}

	// The replica loses every key: only s2's floor remembers.
	br.FlushAll(ctx)
	g3, err := s2.Acquire(ctx, lockcore.AcquireRequest{Name: "lost", Nonce: "n3", TTL: time.Minute})
	if err != nil || !g3.Acquired {
		t.Fatal(g3, err)
	}
	if f3, _, _ := lockcore.ParseToken(g3.Token); f3 <= f2 {
		t.Fatalf("fence after the data was lost %d <= %d before", f3, f2)
	}
}

// The state hash expires like a fence key from the very first grant that
// creates it: one grant, and it has a ttl of the lease plus the retention.
func TestStateKeyExpiresFromFirstGrant(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), redisstore.Options{Prefix: "lock:", Retention: time.Minute})
	ctx := context.Background()
	if g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "n", TTL: time.Second}); err != nil || !g.Acquired {
		t.Fatal(g, err)
	}
	if ttl := srv.Client(t).PTTL(ctx, "lock:state").Val(); ttl <= 0 || ttl > time.Minute+time.Second {
		t.Errorf("lock:state ttl after one grant = %v, want about 1m1s", ttl)
	}
}
