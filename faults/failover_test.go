//go:build linux

package faults

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/respclient"
)

// Restarts and failovers of the upstream, with the workload running and a
// probe lock held through each sidecar. Each says whether the probes must
// survive (nothing acknowledged was lost) or be pushed as lost (the data
// went), and bounds how long grants may stop after the upstream, or the new
// primary, answered: about a check interval when nothing was lost, the
// longest outstanding ttl (plus drift and a check interval) otherwise.

// outage is one such scenario.
type outage struct {
	prefix   string
	ttl      time.Duration     // the workload's ttl; lost probes use it too
	settings map[string]string // for every sidecar
	kept     bool              // the probes' locks survive
	// mayLose, with kept, lets the probes be lost: an asynchronous
	// replica may lack the last writes, and any lock found missing
	// makes every sidecar treat the failover as a loss.
	mayLose bool
	// inject breaks the upstream and returns when it (or the new
	// primary) answered again.
	inject func(cl *cluster) time.Time
	// bound is the longest grants may stop after that.
	bound time.Duration
	// between runs after inject, before the checks (the sidecar-down
	// scenario starts its sidecar again there).
	between func(cl *cluster, answered time.Time)
}

// keptProbeTTL outlives every outage here, so a kept probe lock shows that
// renewals went on against the upstream that came back.
const keptProbeTTL = 15 * time.Second

func runOutage(t *testing.T, cl *cluster, o outage) {
	r := cl.row
	settings := map[string]string{"QUIET_PERIOD": "auto"}
	for k, v := range o.settings {
		settings[k] = v
	}
	a := cl.sidecar("a", false, settings)
	b := cl.sidecar("b", false, settings)
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names(o.prefix+"w", 3),
		ttl: o.ttl, wait: o.ttl, hold: 2 * time.Millisecond})
	probeTTL := o.ttl
	if o.kept {
		probeTTL = keptProbeTTL
	}
	type probe struct {
		c     *client
		id    int
		name  string
		token string
	}
	var probes []probe
	for _, sc := range []*sidecar{a, b} {
		p := probe{c: cl.mustClient("probe-"+sc.id, sc), name: o.prefix + "p" + sc.id}
		p.id, p.token = p.c.mustAcquire(p.name, ms(probeTTL))
		probes = append(probes, p)
	}
	waitFor(t, 5*time.Second, "workers granted", func() bool { return wl.grants.Load() > 20 })

	injected := time.Now()
	answered := o.inject(cl)
	r.injections++
	if o.between != nil {
		o.between(cl, answered)
	}
	waitFor(t, o.bound+5*time.Second, "grants after the upstream answered", func() bool {
		return len(cl.grantsBetween(o.prefix+"w", answered, time.Now().Add(time.Hour))) > 0
	})
	resumed := firstGrant(cl, o.prefix+"w", answered)
	if resumed > o.bound {
		t.Errorf("grants resumed %v after the upstream answered, want at most %v", resumed, o.bound)
	}
	kept := 0
	for _, p := range probes {
		if o.kept {
			// A push would have come by now: renewals ran through the outage.
			if p.c.awaitLost(p.token, 200*time.Millisecond) {
				if !o.mayLose {
					t.Errorf("%s: lock.lost although the upstream kept every lock", p.name)
				}
				continue
			}
			// go-redis's pool may still answer dials with the outage's last
			// error for up to a second after the upstream is back: an
			// -UPSTREAM then is not a loss, a 0 would be.
			var v respclient.Value
			var err error
			for end := time.Now().Add(3 * time.Second); ; {
				v, err = p.c.renew(5*time.Second, p.id, p.name, p.token, ms(keptProbeTTL))
				if err != nil || v.Kind != '-' || time.Now().After(end) {
					break
				}
				time.Sleep(50 * time.Millisecond) // a retry after a transient error: no event to await
			}
			if err != nil || v.Num != 1 {
				t.Errorf("%s: LOCK.RENEW after the outage = %v, %v; want 1", p.name, v, err)
				continue
			}
			kept++
		} else if !p.c.awaitLost(p.token, o.ttl+5*time.Second) {
			t.Errorf("%s: no lock.lost after the upstream lost its data", p.name)
		}
	}
	wl.stop()
	cl.finish()
	r.detect = cl.worstLost(injected, nil)
	r.note("grants resumed %v after the upstream answered (bound %v); probe locks kept %d of %d; errors %s",
		resumed.Round(time.Millisecond), o.bound, kept, len(probes), wl.errors())
}

// settleBound is how long grants may stop after an outage that lost
// nothing: the check interval and its 100ms margin, the verify, and room for
// a loaded machine.
const settleBound = 2 * time.Second

// restartAnswered restarts the upstream gracefully (SIGTERM: Redis writes
// its files first) and returns when it answers.
func restartAnswered(cl *cluster) time.Time {
	cl.up.Restart(cl.t)
	return time.Now()
}

// killAnswered is kill -9 and a start on the same files.
func killAnswered(cl *cluster) time.Time {
	cl.up.Kill(cl.t)
	cl.up.Restart(cl.t)
	return time.Now()
}

func restartAOF(t *testing.T, r *row) {
	cl := newCluster(t, r, "--appendonly", "yes", "--appendfsync", "everysec")
	runOutage(t, cl, outage{prefix: "r1-", ttl: time.Second, kept: true, inject: restartAnswered, bound: settleBound})
}

func restartRDB(t *testing.T, r *row) {
	cl := newCluster(t, r, "--save", "3600 1")
	runOutage(t, cl, outage{prefix: "r2-", ttl: time.Second, kept: true, inject: restartAnswered, bound: settleBound})
}

func kill9AOFAlways(t *testing.T, r *row) {
	cl := newCluster(t, r, "--appendonly", "yes", "--appendfsync", "always")
	runOutage(t, cl, outage{prefix: "r3-", ttl: time.Second, kept: true, inject: killAnswered, bound: settleBound})
}

// lostBound is how long grants may stop after an outage that lost the
// data, with leases of ttl: until the longest could have run out, plus
// drift, a check interval, and room for a loaded machine.
func lostBound(ttl time.Duration) time.Duration {
	return ttl + ttl/100 + 500*time.Millisecond + time.Second
}

func kill9Empty(t *testing.T, r *row) {
	cl := newCluster(t, r)
	const ttl = 2 * time.Second
	runOutage(t, cl, outage{prefix: "r4-", ttl: ttl, inject: killAnswered, bound: lostBound(ttl)})
}

// The upstream loses its data while sidecar c is down; the other sidecars
// announce the quiet period, and c, started afterwards, honours what is
// left of it although it never saw the old upstream.
func dataLostSidecarDown(t *testing.T, r *row) {
	cl := newCluster(t, r)
	const ttl = 2 * time.Second
	settings := map[string]string{"QUIET_PERIOD": "auto"}
	c := cl.sidecar("c", false, settings)
	cp := cl.mustClient("probe-c", c)
	cp.mustAcquire("r5-pc", ms(ttl))
	runOutage(t, cl, outage{prefix: "r5-", ttl: ttl, bound: lostBound(ttl),
		inject: func(cl *cluster) time.Time {
			c.stop()
			return killAnswered(cl)
		},
		between: func(cl *cluster, answered time.Time) {
			// The others announce the period within a check interval.
			waitFor(t, 5*time.Second, "the quiet period announced", func() bool {
				return cl.upstream().PTTL(context.Background(), "lock:quiet").Val() > 0
			})
			c2 := cl.sidecar("c2", false, settings)
			late := cl.mustClient("late", c2)
			left := cl.upstream().PTTL(context.Background(), "lock:quiet").Val()
			v, _, err := late.Do(5*time.Second, "LOCK.ACQUIRE", "r5-late", ms(ttl))
			if left > 200*time.Millisecond && (err != nil || v.Kind != '-') {
				t.Errorf("a sidecar started during the quiet period (%v left) answered %v, %v; want a refusal", left, v, err)
			}
			cl.row.note("sidecar started %v after the upstream answered, with %v of the period left: refused",
				time.Since(answered).Round(time.Millisecond), left.Round(time.Millisecond))
		}})
}

// newSentinelCluster is newCluster on a Sentinel topology (1 primary, 2
// replicas, 3 sentinels); the sidecars reach it through the sentinels.
func newSentinelCluster(t *testing.T, r *row, dataArgs ...string) *cluster {
	cl := newCluster(t, r)
	cl.sen = redistest.StartSentinel(t, redistest.SentinelOptions{
		DataArgs: append([]string{"--repl-diskless-sync-delay", "0"}, dataArgs...)})
	cl.up = cl.sen.Primary(t)
	cl.direct = nil
	return cl
}

// promoted watches the data nodes from now on, and reports when one other
// than old first answers ROLE as a master.
func promoted(cl *cluster, old *redistest.Server) <-chan time.Time {
	out := make(chan time.Time, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	var clients []*redis.Client
	for _, n := range cl.sen.Nodes() {
		if n != old {
			clients = append(clients, redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1}))
		}
	}
	go func() {
		defer cancel()
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		for ctx.Err() == nil {
			for _, c := range clients {
				if role, err := c.Do(ctx, "ROLE").Slice(); err == nil && len(role) > 0 && role[0] == "master" {
					out <- time.Now()
					return
				}
			}
			time.Sleep(5 * time.Millisecond) // polling a server's role: there is no event to await
		}
		out <- time.Time{}
	}()
	return out
}

// Sentinel's failover is not coordinated: the old primary takes writes
// until Sentinel demotes it, a second or more after the promotion, and a
// sidecar still connected to it grants there while another grants on the
// new primary. What protects a grant is REPLICA_ACKS:
//   - 2, every replica: the promoted one stops confirming the old primary's
//     writes the moment it is promoted, so the old primary grants nothing
//     more; the new one grants once both replicas (the old primary, once
//     demoted, is one) follow it. Safe: this row is in the suite.
//   - 1: the replica not promoted still follows the old primary for a
//     moment and may confirm a grant there, which its resync from the new
//     primary then discards. The sidecar that granted it finds it missing
//     and stops every grant, but another may have granted the name first.
//   - 0: any write to the old primary after the promotion may be lost.
//
// The last two break mutual exclusion in some runs (not promised, as with
// asynchronous replication): they run with -faults.long, for evidence.
func sentinelFailover(t *testing.T, r *row, acks string) {
	if acks != "2" && !*long {
		r.note("runs with -faults.long: REPLICA_ACKS=%s below the number of replicas lets the old primary's grants through until Sentinel demotes it (not promised)", acks)
		t.Skip("REPLICA_ACKS below the number of replicas breaks mutual exclusion in some Sentinel failovers; run with -faults.long")
	}
	cl := newSentinelCluster(t, r)
	bound := settleBound
	switch acks {
	case "0", "1":
		bound = lostBound(keptProbeTTL)
	case "2":
		bound = settleBound + 3*time.Second // until the old primary is demoted and follows
	}
	runOutage(t, cl, outage{prefix: "f" + acks + "-", ttl: time.Second, kept: true, mayLose: acks != "2", bound: bound,
		settings: map[string]string{"REPLICA_ACKS": acks},
		inject: func(cl *cluster) time.Time {
			ch := promoted(cl, cl.sen.Primary(cl.t))
			cl.sen.Failover(cl.t)
			return <-ch
		}})
}

func sentinelFailoverAcks0(t *testing.T, r *row) { sentinelFailover(t, r, "0") }
func sentinelFailoverAcks1(t *testing.T, r *row) { sentinelFailover(t, r, "1") }
func sentinelFailoverAcks2(t *testing.T, r *row) { sentinelFailover(t, r, "2") }

// kill -9 of the primary: the sentinels promote a replica after
// down-after. With REPLICA_ACKS=1 every acknowledged grant is on a
// replica, so the probes survive if their ttl outlasts the outage. Grants
// also wait for the other replica to follow the new primary, since WAIT
// needs one: the bound allows for its resync.
func sentinelKillPrimary(t *testing.T, r *row) {
	cl := newSentinelCluster(t, r)
	runOutage(t, cl, outage{prefix: "f2-", ttl: time.Second, kept: true, bound: settleBound + 2*time.Second,
		settings: map[string]string{"REPLICA_ACKS": "1"},
		inject: func(cl *cluster) time.Time {
			old := cl.sen.Primary(cl.t)
			ch := promoted(cl, old)
			old.Kill(cl.t)
			cl.sen.WaitNewPrimary(cl.t, old)
			return <-ch
		}})
}
