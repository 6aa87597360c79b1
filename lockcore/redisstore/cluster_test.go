package redisstore_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
)

// newClusterStore is a Store on cl through NewClusterClient, as the
// sidecar makes it, guarded until its first Accept.
func newClusterStore(t *testing.T, cl *redistest.Cluster) *redisstore.Store {
	t.Helper()
	rdb, err := redisstore.NewClusterClient(cl.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := redisstore.New(rdb, redisstore.Options{Prefix: "lock:", Guard: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// health is a Health that every shard answered.
func health(t *testing.T, s *redisstore.Store) lockcore.Health {
	t.Helper()
	h, err := s.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range h.Shards {
		if sh.Err != nil {
			t.Fatalf("shard %s: %v", sh.Node, sh.Err)
		}
	}
	return h
}

func shardOf(h lockcore.Health, slot int) lockcore.Shard {
	for _, sh := range h.Shards {
		for _, r := range sh.Slots {
			if r.First <= slot && slot <= r.Last {
				return sh
			}
		}
	}
	return lockcore.Shard{}
}

// Health on a Cluster is one Health per shard: its primary's node id and
// run_id, its epoch, its slots, and its group. A coordinated failover
// changes the primary and its run_id, keeps the epoch (the replica has
// it), and lists the old primary in the group.
func TestClusterHealthPerShard(t *testing.T) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, Replicas: 1})
	s := newClusterStore(t, cl)
	h := health(t, s)
	if len(h.Shards) != 3 {
		t.Fatalf("%d shards, want 3", len(h.Shards))
	}
	covered := 0
	for _, sh := range h.Shards {
		if sh.ID == "" || sh.Data == "" || sh.Outstanding < 0 || !slices.Contains(sh.Group, sh.Node) {
			t.Errorf("shard %+v: want a run_id, an epoch, an outstanding time and a group with its primary", sh)
		}
		for _, r := range sh.Slots {
			covered += r.Last - r.First + 1
		}
	}
	if covered != lockcore.Slots {
		t.Errorf("the shards cover %d slots, want %d", covered, lockcore.Slots)
	}
	if again := health(t, s); shardOf(again, 0).Data != shardOf(h, 0).Data {
		t.Errorf("a second check read epoch %q, the first %q", shardOf(again, 0).Data, shardOf(h, 0).Data)
	}

	before := shardOf(h, 0)
	old := cl.Primary(t, 0)
	cl.Failover(t, cl.ReplicaOf(t, old))
	var after lockcore.Shard
	for deadline := time.Now().Add(10 * time.Second); ; {
		h, err := s.Health(context.Background())
		if err == nil {
			after = shardOf(h, 0)
		}
		// Which shard the old primary belongs to is gossip, which may lag
		// the takeover (lockcore compares the new primary with the old
		// one by their slots meanwhile).
		if (after.Err == nil && after.Node != before.Node && slices.Contains(after.Group, before.Node)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // go-redis's view of the topology catches up: no event to await
	}
	if after.Node == before.Node || after.ID == before.ID || after.Data != before.Data || !slices.Contains(after.Group, before.Node) {
		t.Errorf("after the failover shard of slot 0 is %+v; before %+v: want a new primary and run_id, the same epoch, the old primary in its group", after, before)
	}
}

// An acquire checks, in its script, the primary it runs on: a name whose
// slot moved to another accepted primary is granted there at once, with
// no new check; one on a primary that was not accepted waits for one.
func TestClusterAcquireFollowsReshard(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	s := newClusterStore(t, cl)
	s.Accept(health(t, s))
	name := "moving"
	slot := s.Slot(name)
	var to *redistest.Server
	for _, p := range cl.Primaries(t) {
		if p != cl.Primary(t, slot) {
			to = p
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: name, Nonce: "n1", TTL: 10 * time.Second})
	if err != nil || !g.Acquired {
		t.Fatalf("acquire before the reshard: %+v, %v", g, err)
	}
	cl.MigrateSlots(t, []int{slot}, to, nil)
	// The lock moved with its slot: held, so a second nonce is refused...
	g2, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: name, Nonce: "n2", TTL: 10 * time.Second})
	if err != nil || g2.Acquired {
		t.Fatalf("acquire of a held name after the reshard: %+v, %v; want refused, no error", g2, err)
	}
	// ...and a free name in the moved slot is granted on the new primary.
	if _, err := s.Release(ctx, lockcore.ReleaseRequest{Name: name, Token: g.Token}); err != nil {
		t.Fatal(err)
	}
	g3, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: name, Nonce: "n3", TTL: 10 * time.Second})
	if err != nil || !g3.Acquired {
		t.Fatalf("acquire after the reshard: %+v, %v", g3, err)
	}
	if f1, _, _ := lockcore.ParseToken(g.Token); func() bool { f3, _, _ := lockcore.ParseToken(g3.Token); return f3 <= f1 }() {
		t.Errorf("fence %s after the reshard is not above %s", g3.Token, g.Token)
	}
}

// A name's sharded wake subscription follows its slot to its new primary:
// Redis ends it when the slot moves, and the watcher subscribes again
// there, telling the watch to look again meanwhile.
func TestClusterWakesFollowReshard(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	s := newClusterStore(t, cl)
	rdb := cl.Client(t)
	name := "wakes"
	slot := s.Slot(name)
	wakes := make(chan lockcore.Wake, 16)
	stop, err := s.Watch(context.Background(), name, func(w lockcore.Wake) { wakes <- w })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var to *redistest.Server
	for _, p := range cl.Primaries(t) {
		if p != cl.Primary(t, slot) {
			to = p
		}
	}
	cl.MigrateSlots(t, []int{slot}, to, nil)
	select {
	case w := <-wakes:
		if w != (lockcore.Wake{}) {
			t.Fatalf("first wake after the reshard %+v, want a look-again", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no look-again after the slot moved")
	}
	// Published on the new primary once the new subscription is there.
	channel := "lock:{" + name + "}:wake"
	for deadline := time.Now().Add(5 * time.Second); ; {
		n, err := rdb.SPublish(context.Background(), channel, "w1").Result()
		if err == nil && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SPUBLISH on the new primary reached %d subscribers, %v", n, err)
		}
		time.Sleep(20 * time.Millisecond) // until the resubscription lands: no event outside the store to await
	}
	for {
		select {
		case w := <-wakes:
			if w.Waiter == "w1" {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the wake published on the new primary never came")
		}
	}
}

// On a Cluster, the upstream's settings are every primary's: one primary
// without persistence is a risk, and the Cluster keeps only what it keeps.
func TestClusterRisksOfEveryPrimary(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	s := newClusterStore(t, cl)
	ctx := context.Background()
	primaries := cl.Primaries(t)
	for _, p := range primaries[1:] {
		if err := p.Client(t).ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Persistence(ctx)
	if err != nil || got != "none" {
		t.Errorf("Persistence = %q, %v; want none, the first primary's", got, err)
	}
	risks, err := s.Risks(ctx)
	if err != nil || len(risks) != 1 || risks[0].Kind != "no_persistence" || !strings.HasPrefix(risks[0].Detail, primaries[0].Addr()) {
		t.Errorf("Risks = %+v, %v; want no_persistence, of %s", risks, err, primaries[0].Addr())
	}
	if err := primaries[0].Client(t).ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Persistence(ctx); err != nil || got != "aof-everysec" {
		t.Errorf("Persistence with AOF on every primary = %q, %v; want aof-everysec", got, err)
	}
}
