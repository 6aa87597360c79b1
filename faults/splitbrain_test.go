//go:build linux

package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
	"github.com/lockproxy/lockproxy/internal/safety"
)

// Split brain: the old primary P is cut off from the sentinels and its
// replicas, which reach it only through a relay, while sidecar a, an
// application whose network still reaches P but not the sentinels, talks
// to P directly (a single-Redis upstream) and keeps writing to it. Sidecar
// b goes through the sentinels: it loses P with them and follows the
// replica they promote. Both run the workload over the same names, and
// hold a probe lock each.
//
// What lockproxy promises there rests on what P will still confirm. With
// REPLICA_ACKS=1 nothing P takes alone is acknowledged: a grants nothing
// once the cut took effect, and its holders are told at their validity,
// before the promoted replica lets their locks go. With REPLICA_ACKS=0
// nothing is promised (guarantees.md, "Failover with asynchronous
// replication"); min-replicas-to-write on the data nodes only bounds how
// long P takes writes alone (splitBrainMinReplicas).

// splitBrainGrace is how long after the cut a grant may still reach a's
// client: one whose WAIT was confirmed before the cut, on its way back
// through the sidecar. No confirmation crosses the frozen relay after
// Freeze returns.
const splitBrainGrace = 250 * time.Millisecond

// newSplitBrainCluster is newSentinelCluster with the sentinels and the
// replicas reaching the first primary through a relay, which it returns.
func newSplitBrainCluster(t *testing.T, r *row, dataArgs ...string) (*cluster, *relay.Relay) {
	cl := newCluster(t, r)
	var rl *relay.Relay
	cl.sen = redistest.StartSentinel(t, redistest.SentinelOptions{
		DataArgs: append([]string{"--repl-diskless-sync-delay", "0"}, dataArgs...),
		PrimaryVia: func(t testing.TB, primaryAddr string) string {
			rl = relay.Start(t, primaryAddr)
			return rl.Addr()
		}})
	cl.up = cl.sen.Primary(t)
	cl.relay = rl
	cl.direct = nil
	return cl, rl
}

// splitBrain is one variant of the scenario.
type splitBrain struct {
	prefix   string
	acks     string // LOCKPROXY_REPLICA_ACKS of both sidecars
	dataArgs []string
	// refusedBy, when set, is the longest P may go on taking writes
	// after the cut (min-replicas-max-lag, and Redis's once-a-second
	// checks of it): a grants nothing once P refused one (plus
	// splitBrainGrace).
	refusedBy time.Duration
}

func runSplitBrain(t *testing.T, r *row, sb splitBrain) {
	cl, rl := newSplitBrainCluster(t, r, sb.dataArgs...)
	const ttl = time.Second
	const aProbeTTL = 2 * time.Second
	settings := map[string]string{"QUIET_PERIOD": "auto", "REPLICA_ACKS": sb.acks}
	old := cl.up
	aSettings := map[string]string{"UPSTREAM": old.URL()}
	for k, v := range settings {
		aSettings[k] = v
	}
	a := cl.sidecar("a", false, aSettings)
	b := cl.sidecar("b", false, settings)
	w := workload{perSidecar: heavy(2, 4), names: names(sb.prefix+"w", 3), ttl: ttl, wait: ttl, hold: 2 * time.Millisecond}
	wa, wb := w, w
	wa.sidecars, wb.sidecars = []*sidecar{a}, []*sidecar{b}
	wlA, wlB := cl.start(wa), cl.start(wb)
	pa, pb := cl.mustClient("probe-a", a), cl.mustClient("probe-b", b)
	paID, _ := pa.mustAcquire(sb.prefix+"pa", ms(aProbeTTL))
	pbID, pbToken := pb.mustAcquire(sb.prefix+"pb", ms(keptProbeTTL))
	waitFor(t, 5*time.Second, "workers granted on both sidecars", func() bool {
		return wlA.grants.Load() > 10 && wlB.grants.Load() > 10
	})

	var refusedCh <-chan time.Time
	if sb.refusedBy > 0 {
		refusedCh = refusedAt(t, old)
	}
	promotedCh := promoted(cl, old)
	rl.Freeze()
	cut := time.Now()
	r.injections++
	// What the replicas have of a's probe lock is final at the cut: when
	// it runs out there, the promoted replica lets it go.
	paEnds := expiries(t, cl.sen.Nodes()[1:], sb.prefix+"pa")

	newPrimary := cl.sen.WaitNewPrimary(t, old)
	answered := <-promotedCh
	if answered.IsZero() {
		t.Fatal("no replica answered ROLE master")
	}
	paEnd := paEnds[newPrimary]
	if paEnd.IsZero() {
		t.Fatalf("a's probe lock was not on the promoted replica %s at the cut", newPrimary.Addr())
	}
	bound := settleBound + 2*time.Second // WAIT, or min-replicas, needs the other replica to follow
	waitFor(t, bound+5*time.Second, "b granting on the new primary", func() bool {
		return len(grantsVia(cl, "b", sb.prefix+"w", answered)) > 0
	})
	bResumed := time.Duration(-1)
	for _, g := range grantsVia(cl, "b", sb.prefix+"w", answered) {
		if d := g.Granted.Sub(answered); bResumed < 0 || d < bResumed {
			bResumed = d
		}
	}
	if bResumed > bound {
		t.Errorf("b granted again %v after the new primary answered, want at most %v", bResumed, bound)
	}

	// a's probe is renewed by nothing P confirms (acks), or by nothing
	// once P refuses writes (min-replicas): its validity ends.
	paLostBy := aProbeTTL + time.Second + sb.refusedBy
	paLost, paOver := time.Duration(-1), time.Duration(0)
	// The deadline may have passed while b resumed: the history, which
	// the push ends the hold in, says whether it came in time.
	for cl.hist.Believes(paID) && time.Now().Before(cut.Add(paLostBy)) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := cl.hist.Holds()[paID]; g.End == safety.Lost && !g.Ended.After(cut.Add(paLostBy)) {
		told := g.Ended
		paLost, paOver = told.Sub(cut), told.Sub(paEnd)
		// Told before the new primary can let the lock go, with a
		// little room for the push's way to the client.
		if sb.acks != "0" && paOver > 50*time.Millisecond {
			t.Errorf("a's probe was told lock.lost %v after its lock ran out on the new primary", paOver)
		}
	} else {
		t.Errorf("a's probe: no lock.lost within %v of the cut", paLostBy)
	}
	// a's workers go on against P until then.
	time.Sleep(time.Until(cut.Add(paLostBy)))
	bKept := "lost"
	if pb.awaitLost(pbToken, 100*time.Millisecond) {
		if sb.acks != "0" {
			t.Error("b's probe: lock.lost, although a replica confirmed every renewal of it")
		}
	} else if v, err := pb.renew(5*time.Second, pbID, sb.prefix+"pb", pbToken, ms(keptProbeTTL)); err != nil || v.Num != 1 {
		t.Errorf("b's probe: LOCK.RENEW after the failover = %v, %v; want 1", v, err)
	} else {
		bKept = "kept"
	}
	wlA.stop()
	wlB.stop()

	aAfter := grantsVia(cl, "a", sb.prefix+"w", cut)
	aLast := time.Duration(-1)
	for _, g := range aAfter {
		aLast = max(aLast, g.Granted.Sub(cut))
	}
	stopAt := splitBrainGrace
	refused := time.Duration(-1)
	if refusedCh != nil {
		if at := <-refusedCh; !at.IsZero() {
			refused = at.Sub(cut)
		}
		if refused < 0 || refused > sb.refusedBy {
			t.Errorf("P answered NOREPLICAS %v after the cut, want within %v", refused, sb.refusedBy)
		}
		stopAt += max(refused, 0)
	}
	if aLast > stopAt {
		t.Errorf("a granted %v after the cut, want nothing after %v (%d grants after the cut)", aLast, stopAt, len(aAfter))
	}
	// A waiter whose tries fail keeps its place until its own WAIT runs
	// out: the first refusal reaches a client that much after the cut.
	aRefusedFrom := "never"
	if at := wlA.firstErrorAfter(cut); !at.IsZero() {
		aRefusedFrom = "the first " + at.Sub(cut).Round(time.Millisecond).String() + " after the cut"
	}
	if sb.acks != "0" && wlA.errCount("UPSTREAM acquire N: only") == 0 {
		t.Errorf("no acquire on a refused for want of replica acks; errors: %s", wlA.errors())
	}

	vs := cl.finish()
	r.detect, r.detectWhat = cl.worstLost(cut, func(g safety.Hold) bool { return g.ID == paID }), "cut → a's probe lost"

	// Healed, P is a stray primary that the sentinels make a replica of
	// the new one, dropping what it took alone.
	rl.Thaw()
	thawed := time.Now()
	rdb := redis.NewClient(&redis.Options{Addr: old.Addr(), MaxRetries: -1})
	defer rdb.Close()
	waitFor(t, 20*time.Second, "the old primary a replica of the new one", func() bool {
		v, err := rdb.Do(context.Background(), "ROLE").Slice()
		return err == nil && len(v) >= 4 && v[0] == "slave" && fmt.Sprintf("%v:%v", v[1], v[2]) == newPrimary.Addr() && v[3] == "connected"
	})
	demoted := time.Since(thawed)

	// Both sides granting: from b's first grant on the new primary to
	// a's last on P.
	both := "never"
	if first := answered.Add(bResumed); aLast >= 0 && cut.Add(aLast).After(first) {
		both = "for " + cut.Add(aLast).Sub(first).Round(time.Millisecond).String()
	}
	aGranted := "none"
	if aLast >= 0 {
		aGranted = fmt.Sprintf("%d, the last %v after it", len(aAfter), aLast.Round(time.Millisecond))
	}
	refusedNote := ""
	if refusedCh != nil {
		refusedNote = fmt.Sprintf("P answered NOREPLICAS %v after the cut; ", refused.Round(time.Millisecond))
	}
	r.note("REPLICA_ACKS=%s; %snew primary answered %v after the cut; a's grants after the cut: %s; "+
		"a's acquires refused: %d, %s, when their WAIT ran out (%s); b granted again %v after the new primary answered; a and b both granting: %s; "+
		"probes: a's lost %v after the cut (%v after its lock ran out on the new primary), b's %s; "+
		"%d violations; old primary a replica of the new one %v after the thaw",
		sb.acks, refusedNote, answered.Sub(cut).Round(time.Millisecond), aGranted,
		wlA.errCount(""), aRefusedFrom, wlA.errors(), bResumed.Round(time.Millisecond), both,
		paLost.Round(time.Millisecond), paOver.Round(time.Millisecond), bKept,
		len(vs), demoted.Round(time.Millisecond))
}

// grantsVia are sidecar's holds of names with prefix granted from from on.
func grantsVia(cl *cluster, sidecar, prefix string, from time.Time) []safety.Hold {
	var out []safety.Hold
	for _, g := range cl.grantsBetween(prefix, from, time.Now().Add(time.Hour)) {
		if g.Sidecar == sidecar {
			out = append(out, g)
		}
	}
	return out
}

// expiries reads, on each node, when name's lock key runs out
// (PEXPIRETIME); nodes without it are left out.
func expiries(t *testing.T, nodes []*redistest.Server, name string) map[*redistest.Server]time.Time {
	out := map[*redistest.Server]time.Time{}
	for _, n := range nodes {
		at, err := n.Client(t).Do(context.Background(), "PEXPIRETIME", "lock:{"+name+"}").Int64()
		if err != nil {
			t.Fatalf("PEXPIRETIME on %s: %v", n.Addr(), err)
		}
		if at > 0 {
			out[n] = time.UnixMilli(at)
		}
	}
	return out
}

// refusedAt writes to s every 10ms from now on, and reports when a write
// is first refused with NOREPLICAS (zero: not within 10s).
func refusedAt(t *testing.T, s *redistest.Server) <-chan time.Time {
	out := make(chan time.Time, 1)
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			err := rdb.Set(context.Background(), "splitbrain:probe", "1", time.Minute).Err()
			if redis.HasErrorPrefix(err, "NOREPLICAS") {
				out <- time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond) // polling a server's state: there is no event to await
		}
		out <- time.Time{}
	}()
	return out
}

// With REPLICA_ACKS=1 every grant, renewal and hand-off waits for a
// replica. P, cut off, confirms nothing: a grants nothing and its holders
// are told at their validity, before the new primary can let their locks
// go. Any violation fails.
func splitBrainAcks(t *testing.T, r *row) {
	runSplitBrain(t, r, splitBrain{prefix: "sb1-", acks: "1"})
}

// With REPLICA_ACKS=0 and min-replicas-to-write 1, min-replicas-max-lag 1
// on the data nodes, P refuses writes (NOREPLICAS) once its replicas' lag,
// counted in whole seconds, passes one, which Redis checks once a second:
// up to 3s after the cut (0.1–2.8s measured). Until then a grants and
// renews on P alone. Its holders believe in locks the new primary lets go
// up to a ttl earlier, and if b follows the new primary before P refuses,
// a and b grant the same names at once.
//
// The checker finds those overlaps in some runs: in 1 of 37 measured (22
// with 2 workers a sidecar, 15 with -faults.long's 4), P refused 2.7s
// after the cut and b granted again 2.4s after it: 139 overlaps in 301ms.
// In 36 of them a's probe was told lock.lost 0.6–1.9s after its lock had
// run out on the new primary (in the other P refused 121ms after the
// cut), a window the checker sees only when b wants that name. Mutual
// exclusion is not promised there (guarantees.md, "Failover with
// asynchronous replication"), and the harness has no way to report
// violations without failing, so this variant runs only with
// -faults.long, where a run that meets the window fails: evidence for
// REPLICA_ACKS, not a flake.
func splitBrainMinReplicas(t *testing.T, r *row) {
	if !*long {
		r.note("runs with -faults.long: with REPLICA_ACKS=0 it finds overlaps in some runs (not promised)")
		t.Skip("with REPLICA_ACKS=0 a split brain breaks mutual exclusion in some runs; run with -faults.long")
	}
	runSplitBrain(t, r, splitBrain{prefix: "sb0-", acks: "0", refusedBy: 3500 * time.Millisecond,
		dataArgs: []string{"--min-replicas-to-write", "1", "--min-replicas-max-lag", "1"}})
}
