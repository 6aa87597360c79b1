//go:build linux

package faults

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/lockcore"
)

// Faults of a Redis Cluster upstream, with the workload split in two: names
// in the shard (or the slots) the fault hits, and names elsewhere. The
// names elsewhere must see no error at all; those hit may pause, within a
// bound, and the probe locks held there survive unless the data went.

// newRedisCluster is newCluster on a Redis Cluster; the sidecars reach it
// through go-redis's cluster URL form.
func newRedisCluster(t *testing.T, r *row, opt redistest.ClusterOptions) *cluster {
	cl := newCluster(t, r)
	cl.rc = redistest.StartClusterWith(t, opt)
	return cl
}

// slotOf is name's hash slot, as lockproxy keys it ("lock:{name}").
func slotOf(t testing.TB, rdb *redis.ClusterClient, name string) int {
	slot, err := rdb.ClusterKeySlot(context.Background(), "{"+name+"}").Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	return int(slot)
}

// namesWhere are n names prefix0, prefix1, … whose slot passes in.
func namesWhere(t testing.TB, rdb *redis.ClusterClient, prefix string, n int, in func(slot int) bool) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		name := prefix + strconv.Itoa(i)
		if in(slotOf(t, rdb, name)) {
			out = append(out, name)
		}
	}
	return out
}

// shardFault is one Cluster scenario.
type shardFault struct {
	prefix   string
	opt      redistest.ClusterOptions
	settings map[string]string
	// hit are the slots the fault touches, given the cluster.
	hit func(cl *cluster) func(slot int) bool
	// kept: the probes in hit slots survive.
	kept bool
	// hitErrors: names in hit slots may see errors.
	hitErrors bool
	// inject applies the fault and returns when the hit slots are served
	// again.
	inject func(cl *cluster) time.Time
	bound  time.Duration // the longest grants in hit slots may stop after that
}

func runShardFault(t *testing.T, r *row, f shardFault) {
	// Without full coverage required, a shard that fails stops only its
	// own slots, not the whole Cluster (docs/kubernetes.md).
	f.opt.Args = append(f.opt.Args, "--cluster-require-full-coverage", "no")
	cl := newRedisCluster(t, r, f.opt)
	rdb := cl.rc.Client(t)
	settings := map[string]string{"QUIET_PERIOD": "auto"}
	for k, v := range f.settings {
		settings[k] = v
	}
	a := cl.sidecar("a", false, settings)
	b := cl.sidecar("b", false, settings)
	in := f.hit(cl)
	// 8 names for the workload, then one probe per sidecar.
	hitNames := namesWhere(t, rdb, f.prefix+"h", 10, in)
	otherNames := namesWhere(t, rdb, f.prefix+"o", 10, func(s int) bool { return !in(s) })
	const ttl = time.Second
	w := workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, ttl: ttl, wait: ttl, hold: 2 * time.Millisecond}
	w.names = hitNames[:8]
	hitW := cl.start(w)
	w.names = otherNames[:8]
	otherW := cl.start(w)
	// Kept probes must outlast the fault without renewals; lost ones
	// bound the quiet period, as the workload's do.
	probeTTL := ttl
	if f.kept {
		probeTTL = keptProbeTTL
	}

	type probe struct {
		c           *client
		id          int
		name, token string
		hit         bool
	}
	var probes []probe
	for j, sc := range []*sidecar{a, b} {
		for i, name := range []string{hitNames[8+j], otherNames[8+j]} {
			p := probe{c: cl.mustClient(fmt.Sprintf("probe-%s-%d", sc.id, i), sc), name: name, hit: i == 0}
			p.id, p.token = p.c.mustAcquire(p.name, ms(probeTTL))
			probes = append(probes, p)
		}
	}
	waitFor(t, 10*time.Second, "workers granted", func() bool {
		return hitW.grants.Load() > 20 && otherW.grants.Load() > 20
	})

	injected := time.Now()
	answered := f.inject(cl)
	r.injections++
	waitFor(t, f.bound+5*time.Second, "grants in the hit slots after the fault", func() bool {
		return len(cl.grantsBetween(f.prefix+"h", answered, time.Now().Add(time.Hour))) > 0
	})
	resumed := firstGrant(cl, f.prefix+"h", answered)
	if resumed > f.bound {
		t.Errorf("grants in the hit slots resumed %v after the fault was over, want at most %v", resumed, f.bound)
	}
	// The other slots went on throughout.
	if g := cl.grantsBetween(f.prefix+"o", injected, answered.Add(time.Millisecond)); len(g) == 0 && answered.Sub(injected) > 200*time.Millisecond {
		t.Errorf("no grant in the other shards during the %v of the fault", answered.Sub(injected).Round(time.Millisecond))
	}
	kept := 0
	for _, p := range probes {
		if !p.hit || f.kept {
			// A lock kept through the fault: renewed all along.
			if p.c.awaitLost(p.token, 200*time.Millisecond) {
				t.Errorf("%s: lock.lost although its shard kept every lock", p.name)
				continue
			}
			v, err := p.c.renew(5*time.Second, p.id, p.name, p.token, ms(probeTTL))
			if err != nil || v.Kind != ':' || v.Num != 1 {
				t.Errorf("%s: LOCK.RENEW after the fault = %v, %v; want 1", p.name, v, err)
				continue
			}
			kept++
		} else if !p.c.awaitLost(p.token, ttl+5*time.Second) {
			t.Errorf("%s: no lock.lost after its shard lost its data", p.name)
		}
	}
	hitW.stop()
	otherW.stop()
	cl.finish()
	if n := otherW.errCount(""); n > 0 {
		t.Errorf("names in the other shards got %d error replies: %s", n, otherW.errors())
	}
	if n := hitW.errCount(""); n > 0 && !f.hitErrors {
		t.Errorf("names in the hit slots got %d error replies: %s", n, hitW.errors())
	}
	r.detect = cl.worstLost(injected, nil)
	r.note("the fault lasted %v; grants in its slots resumed %v after it; probes kept %d of %d; errors in its slots %s, elsewhere %s",
		answered.Sub(injected).Round(time.Millisecond), resumed.Round(time.Millisecond), kept, len(probes),
		orNone(hitW.errors()), orNone(otherW.errors()))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// primaryOfSlot0 hits the slots of the primary that serves slot 0.
func primaryOfSlot0(cl *cluster) func(int) bool {
	p := cl.rc.Primary(cl.t, 0)
	ranges := cl.rc.SlotsOf(cl.t, p)
	return func(slot int) bool {
		for _, r := range ranges {
			if r[0] <= slot && slot <= r[1] {
				return true
			}
		}
		return false
	}
}

// A third of the slots, half of each of two primaries', move to the third,
// one at a time, while clients hold, renew and wait on names in them.
func reshardSlots() []int {
	var slots []int
	for s := range lockcore.Slots / 6 {
		slots = append(slots, s, lockcore.Slots/3+s)
	}
	return slots
}

func clusterReshard(t *testing.T, r *row) {
	runShardFault(t, r, shardFault{
		prefix: "cr-", opt: redistest.ClusterOptions{Masters: 3}, kept: true, bound: settleBound,
		hit: func(cl *cluster) func(int) bool {
			return func(s int) bool {
				return s < lockcore.Slots/6 || (s >= lockcore.Slots/3 && s < lockcore.Slots/3+lockcore.Slots/6)
			}
		},
		inject: func(cl *cluster) time.Time {
			slots := reshardSlots()
			to := cl.rc.Primary(cl.t, lockcore.Slots-1)
			start := time.Now()
			cl.rc.MigrateSlots(cl.t, slots, to, nil)
			cl.row.note("moved %d slots in %v", len(slots), time.Since(start).Round(time.Millisecond))
			return time.Now()
		},
	})
}

// CLUSTER FAILOVER of one shard, every grant confirmed by its replica.
func clusterFailover(t *testing.T, r *row) {
	runShardFault(t, r, shardFault{
		prefix: "cf-", opt: redistest.ClusterOptions{Masters: 3, Replicas: 1}, kept: true, hitErrors: true,
		settings: map[string]string{"REPLICA_ACKS": "1"}, bound: settleBound, hit: primaryOfSlot0,
		inject: func(cl *cluster) time.Time {
			old := cl.rc.Primary(cl.t, 0)
			cl.rc.Failover(cl.t, cl.rc.ReplicaOf(cl.t, old))
			return time.Now()
		},
	})
}

// kill -9 of one shard's primary: its replica takes over after the node
// timeout. Every grant was confirmed by the replica. The old primary comes
// back, as a pod would, and follows the new one: until then the shard has
// no replica to confirm a grant, so the bound allows for its resync.
func clusterKillPrimary(t *testing.T, r *row) {
	runShardFault(t, r, shardFault{
		prefix: "ck-", opt: redistest.ClusterOptions{Masters: 3, Replicas: 1}, kept: true, hitErrors: true,
		settings: map[string]string{"REPLICA_ACKS": "1"}, bound: settleBound + 2*time.Second, hit: primaryOfSlot0,
		inject: func(cl *cluster) time.Time {
			old := cl.rc.Primary(cl.t, 0)
			old.Kill(cl.t)
			cl.rc.WaitTakeover(cl.t, old)
			took := time.Now()
			cl.rc.Restart(cl.t, old)
			cl.row.note("the old primary followed the new one %v after the takeover", time.Since(took).Round(time.Millisecond))
			return took
		},
	})
}

// One primary restarts without persistence: its slots lose their locks
// and pause for the quiet period; the others go on.
func clusterRestartEmpty(t *testing.T, r *row) {
	runShardFault(t, r, shardFault{
		prefix: "ce-", opt: redistest.ClusterOptions{Masters: 3}, hitErrors: true,
		bound: lostBound(time.Second), hit: primaryOfSlot0,
		inject: func(cl *cluster) time.Time {
			cl.rc.Restart(cl.t, cl.rc.Primary(cl.t, 0))
			return time.Now()
		},
	})
}
