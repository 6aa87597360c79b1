//go:build linux

package faults

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Latency between one sidecar and the upstream of half to twice the ttl
// (round trip), while a second sidecar talks to the upstream directly. A
// grant that arrives after its validity must be an error, never a token,
// and a lock whose renewal cannot come back in time is lost, and its
// holder told, before the other sidecar's clients can have it.
func latency(t *testing.T, r *row) {
	cl := newCluster(t, r)
	rl := cl.withRelay()
	const ttl = 400 * time.Millisecond
	a := cl.sidecar("a", true, map[string]string{"UPSTREAM_TIMEOUT": "5s"})
	b := cl.sidecar("b", false, nil)
	w := workload{perSidecar: heavy(2, 4), names: names("s7-w", 2), ttl: ttl, wait: time.Second,
		hold: 2 * time.Millisecond, timeout: 15 * time.Second}
	wa, wb := w, w
	wa.sidecars, wb.sidecars = []*sidecar{a}, []*sidecar{b}
	wlA, wlB := cl.start(wa), cl.start(wb)
	holder, probe := cl.mustClient("holder-a", a), cl.mustClient("probe-a", a)
	orphans := cl.watchOrphans("s7-")
	var steps []string
	var worst time.Duration
	for i, rtt := range []time.Duration{ttl / 2, ttl, 2 * ttl} {
		// A lock taken before the latency sets in: its next renewal
		// cannot come back within its validity, so its holder must be told.
		rl.SetDelay(0)
		held := fmt.Sprintf("s7-held%d", i)
		hid, htoken := holder.mustAcquire(held, ms(ttl))
		grants, errs := wlA.grants.Load(), wlA.errCount("UPSTREAM")
		slowAt := time.Now()
		rl.SetDelay(rtt / 2) // each way
		r.injections++

		// A lock asked for under the latency: a grant that comes back
		// after its validity must be an error, never a token.
		name := fmt.Sprintf("s7-probe%d", i)
		id, token, v, err := probe.acquire(15*time.Second, name, ms(ttl))
		switch {
		case err != nil:
			t.Fatalf("RTT %v: probe acquire: %v", rtt, err)
		case rtt < ttl && id < 0 && !v.IsErr():
			t.Errorf("RTT %v (ttl %v): acquire = %v; want a token or an UPSTREAM error", rtt, ttl, v)
		case rtt >= ttl && (id >= 0 || !v.IsErr() || !strings.HasPrefix(v.Str, "UPSTREAM")):
			t.Errorf("RTT %v (ttl %v): acquire = %v; want an UPSTREAM error: the grant came back after its validity", rtt, ttl, v)
		}
		outcome := "an UPSTREAM error"
		if id >= 0 {
			outcome = "a token"
			if _, err := probe.release(15*time.Second, id, name, token); err != nil {
				t.Errorf("RTT %v: probe release: %v", rtt, err)
			}
		}
		if !holder.awaitLost(htoken, 3*ttl) {
			t.Errorf("RTT %v: the lock held since before the latency was not declared lost within %v", rtt, 3*ttl)
		} else {
			told := cl.hist.Holds()[hid].Ended.Sub(slowAt)
			worst = max(worst, told)
			outcome += fmt.Sprintf(", holder told %v after the latency began", told.Round(time.Millisecond))
		}
		time.Sleep(time.Second) // the workers run under this latency for a while
		steps = append(steps, fmt.Sprintf("RTT %v: probe got %s, a's workers %d grants %d errors", rtt, outcome,
			wlA.grants.Load()-grants, wlA.errCount("UPSTREAM")-errs))
	}
	rl.SetDelay(0)
	wlA.stop()
	wlB.stop()
	// The longest latency injected is 2×ttl a round trip: ttl each way.
	nobody := cl.checkOrphans(orphans, ttl, ttl)
	cl.finish()
	r.detect, r.detectWhat = worst, "latency → holder told"
	r.note("ttl %v; %s; b's workers %d grants; %s", ttl, strings.Join(steps, "; "), wlB.grants.Load(), nobody)
}

// shorten cuts s for messages.
func shorten(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// partition cuts sidecar a from the upstream in one of three ways while b
// keeps its link. Holders on a are told at their validity, b's waiters get
// the locks once they expired in the upstream, and a serves again once the
// link heals.
func partition(t *testing.T, r *row, mode string) {
	cl := newCluster(t, r)
	rl := cl.withRelay()
	const ttl = time.Second
	settings := map[string]string{"UPSTREAM_TIMEOUT": "500ms"}
	a := cl.sidecar("a", true, settings)
	b := cl.sidecar("b", false, settings)
	w := workload{perSidecar: heavy(2, 4), names: names("s8-w", 2), ttl: ttl, wait: ttl, hold: 2 * time.Millisecond}
	wa, wb := w, w
	wa.sidecars, wb.sidecars = []*sidecar{a}, []*sidecar{b}
	wlA, wlB := cl.start(wa), cl.start(wb)
	const n = 2
	hs, ws, ids, tokens, results := cl.holdAndQueue("s8-p", n, ttl, a, b)
	if mode == "reset" {
		// Nobody needs to queue: the locks are meant to survive.
		for _, c := range ws {
			c.Close()
		}
	}

	orphans := cl.watchOrphans("s8-")
	cutAt := time.Now()
	switch mode {
	case "frozen":
		rl.Freeze()
		r.injections++
	case "refused":
		rl.Refuse(true)
		rl.ResetAll()
		r.injections++
	case "reset":
		for range 3 {
			rl.ResetAll()
			r.injections++
			time.Sleep(ttl / 4) // spaced resets, a flapping link
		}
	}
	if mode == "reset" {
		time.Sleep(time.Until(cutAt.Add(2 * ttl)))
		for i, name := range names("s8-p", n) {
			if !cl.hist.Believes(ids[i]) {
				t.Errorf("%s: lost although the link only reset (the sidecar retries)", name)
				continue
			}
			if v, err := hs[i].renew(5*time.Second, ids[i], name, tokens[i], ms(ttl)); err != nil || v.Num != 1 {
				t.Errorf("%s: RENEW after the resets = %v, %v; want 1", name, v, err)
			}
			hs[i].mustRelease(ids[i], name, tokens[i])
		}
		grants := wlA.grants.Load()
		waitFor(t, 5*time.Second, "sidecar a granting after the resets", func() bool { return wlA.grants.Load() > grants+5 })
		wlA.stop()
		wlB.stop()
		nobody := cl.checkOrphans(orphans, ttl, 0)
		cl.finish()
		r.note("3 resets %v apart (ttl %v): held locks kept, a's workers served throughout (%d grants); a's errors %s; %s",
			ttl/4, ttl, wlA.grants.Load(), wlA.errors(), nobody)
		return
	}

	var handoff time.Duration
	for i, name := range names("s8-p", n) {
		if !hs[i].awaitLost(tokens[i], ttl+time.Second) {
			t.Errorf("%s: no lock.lost within ttl+1s of the partition", name)
		}
		g := cl.await(results[i], "waiter on b for "+name, 10*time.Second)
		after := cl.granted(g.id).Sub(cutAt)
		if after < ttl/2-50*time.Millisecond {
			t.Errorf("%s passed to b %v after the cut; the lock was renewed under ttl/2 before it (ttl %v)", name, after, ttl)
		}
		handoff = max(handoff, after)
		if _, ok, err := ws[i].write(g.id, name, g.token); !ok || err != nil {
			t.Errorf("%s: fenced write accepted %v, %v", name, ok, err)
		}
		ws[i].mustRelease(g.id, name, g.token)
	}
	time.Sleep(time.Until(cutAt.Add(2 * ttl)))
	switch mode {
	case "frozen":
		rl.Thaw()
	case "refused":
		rl.Refuse(false)
	}
	healedAt := time.Now()
	grants := wlA.grants.Load()
	waitFor(t, 10*time.Second, "sidecar a granting after the heal", func() bool { return wlA.grants.Load() > grants })
	recovered := time.Since(healedAt)
	wlA.stop()
	wlB.stop()
	nobody := cl.checkOrphans(orphans, ttl, 0)
	cl.finish()
	r.detect = cl.worstLost(cutAt, nil)
	r.note("cut %v (ttl %v): a's holders told, b's waiters granted %v after the cut; a granted again %v after the heal; a's errors %s; %s",
		healedAt.Sub(cutAt).Round(time.Millisecond), ttl, handoff.Round(time.Millisecond),
		recovered.Round(time.Millisecond), wlA.errors(), nobody)
}

func partitionFrozen(t *testing.T, r *row)  { partition(t, r, "frozen") }
func partitionRefused(t *testing.T, r *row) { partition(t, r, "refused") }
func partitionReset(t *testing.T, r *row)   { partition(t, r, "reset") }

// Replies lost after the script ran: the sidecar cannot know whether an
// acquire took the lock, so it must fail it and give back whatever it may
// hold, by token. Never two holders, and no lock held by nobody for longer
// than its ttl.
func replyLost(t *testing.T, r *row) { replyLostWith(t, r, nil) }

// The same with local hand-offs ahead of the other sidecar's waiters
// allowed: a hand-off that skips the queue is a transfer whose reply can be
// lost like any other, and must be as safe.
func replyLostLocalHandoffs(t *testing.T, r *row) {
	replyLostWith(t, r, map[string]string{"LOCAL_HANDOFFS": "2"})
}

func replyLostWith(t *testing.T, r *row, settings map[string]string) {
	cl := newCluster(t, r)
	rl := cl.withRelay()
	const ttl = time.Second
	aSettings := map[string]string{"UPSTREAM_TIMEOUT": "300ms"}
	for k, v := range settings {
		aSettings[k] = v
	}
	a := cl.sidecar("a", true, aSettings)
	b := cl.sidecar("b", false, settings)
	w := workload{perSidecar: heavy(3, 6), names: names("s9-w", 3), ttl: ttl, wait: ttl, hold: 2 * time.Millisecond}
	wa, wb := w, w
	wa.sidecars, wb.sidecars = []*sidecar{a}, []*sidecar{b}
	wb.perSidecar = heavy(2, 4)
	wlA, wlB := cl.start(wa), cl.start(wb)
	orphans := cl.watchOrphans("s9-")
	var dropEnd time.Time
	for range heavy(3, 6) {
		time.Sleep(400 * time.Millisecond) // normal running between drops
		rl.DropReplies(true)
		time.Sleep(300 * time.Millisecond) // the drop itself: its length is the fault
		rl.DropReplies(false)
		dropEnd = time.Now()
		r.injections++
	}
	time.Sleep(400 * time.Millisecond)
	wlA.stop()
	wlB.stop()
	// Every client has let go; any lock key left is held by nobody. It
	// must go within its ttl of the last drop.
	orphan := cl.orphans(t, "s9-", time.Until(dropEnd.Add(ttl+500*time.Millisecond)))
	nobody := cl.checkOrphans(orphans, ttl, 0)
	var ahead int
	if settings["LOCAL_HANDOFFS"] != "" {
		for _, sc := range []*sidecar{a, b} {
			n, _ := strconv.Atoi(sc.info(t)["handoffs_local_ahead_total"])
			ahead += n
		}
		if ahead == 0 {
			t.Errorf("no hand-off went ahead of the other sidecar's waiters: the scenario tested nothing new")
		}
	}
	cl.finish()
	r.note("%d drops of 300ms; a's errors %s; %s; keys gone %v after the clients let go%s",
		r.injections, wlA.errors(), nobody, orphan.Round(time.Millisecond), map[bool]string{
			true: fmt.Sprintf("; %d local hand-offs ahead of an earlier waiter", ahead), false: ""}[ahead > 0])
}
