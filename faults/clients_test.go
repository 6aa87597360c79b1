//go:build linux

package faults

import (
	"github.com/lockproxy/lockproxy/lockcore"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/safety"
)

// A client process killed while it holds a lock frees it at once (its
// socket closes, the sidecar releases): the next waiter, on another
// sidecar, gets it within about a round trip, not after the 30 s ttl. A
// client killed while it waits never gets the lock: it passes to the
// waiter behind it.
func clientKilled(t *testing.T, r *row) {
	cl := newCluster(t, r)
	a := cl.sidecar("a", false, nil)
	b := cl.sidecar("b", false, nil)
	ws := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s1-w", 2),
		ttl: time.Second, wait: 500 * time.Millisecond, hold: 2 * time.Millisecond})
	const promptly = time.Second // ≫ a round trip, ≪ the ttl
	obsA, obsB := cl.mustClient("observer-a", a), cl.mustClient("observer-b", b)

	// Mid-hold.
	holder := startProc(t, "proc-holder", a, cl.resSrv.Addr())
	hid, token := cl.procAcquire(holder, a, "s1-held", "30000")
	if !cl.procWrite(holder, hid, "s1-held", token, false) {
		t.Fatal("the holder's fenced write was refused")
	}
	w := cl.mustClient("waiter-held", b)
	got := w.acquireAsync(15*time.Second, "s1-held", "30000", "WAIT", "10000")
	waitFor(t, 5*time.Second, "waiter queued on b", func() bool { return waiters(t, obsB.Timed, "s1-held") == 1 })
	killedAt := time.Now()
	holder.signal(t, syscall.SIGKILL)
	<-holder.exited
	cl.hist.End(hid, safety.Unknown, killedAt) // a dead process believes nothing
	r.injections++
	g := cl.await(got, "waiter after the holder was killed", 10*time.Second)
	handoff := cl.granted(g.id).Sub(killedAt)
	if handoff > promptly {
		t.Errorf("the next waiter got the lock %v after the holder was killed; want within %v (ttl 30s)", handoff, promptly)
	}
	if _, ok, err := w.write(g.id, "s1-held", g.token); !ok || err != nil {
		t.Errorf("the new holder's fenced write: accepted %v, %v", ok, err)
	}
	w.mustRelease(g.id, "s1-held", g.token)

	// Mid-wait: the killed waiter is first in line, another waits behind it.
	h := cl.mustClient("holder-wait", a)
	hid2, token2 := h.mustAcquire("s1-wait", "30000")
	waiter := startProc(t, "proc-waiter", b, cl.resSrv.Addr())
	waiter.send(t, "cmd LOCK.ACQUIRE s1-wait 30000 WAIT 20000")
	waitFor(t, 5*time.Second, "process waiter queued on b", func() bool { return waiters(t, obsB.Timed, "s1-wait") == 1 })
	next := cl.mustClient("waiter-behind", a)
	got = next.acquireAsync(15*time.Second, "s1-wait", "30000", "WAIT", "10000")
	waitFor(t, 5*time.Second, "second waiter queued on a", func() bool { return waiters(t, obsA.Timed, "s1-wait") == 1 })
	waiter.signal(t, syscall.SIGKILL)
	<-waiter.exited
	r.injections++
	// Released at once, racing the sidecar's notice of the dead waiter.
	releasedAt := time.Now()
	h.mustRelease(hid2, "s1-wait", token2)
	g = cl.await(got, "waiter behind the killed one", 10*time.Second)
	passed := cl.granted(g.id).Sub(releasedAt)
	if passed > promptly {
		t.Errorf("the live waiter got the lock %v after the release; want within %v", passed, promptly)
	}
	if waiter.printed("reply") {
		t.Error("the killed waiter printed a reply before it died")
	}
	next.mustRelease(g.id, "s1-wait", g.token)
	waitFor(t, 2*time.Second, "s1-wait free in the upstream", func() bool {
		return cl.upstream().Exists(t.Context(), "lock:{s1-wait}").Val() == 0
	})

	ws.stop()
	cl.finish()
	r.detect, r.detectWhat = max(handoff, passed), "kill → next holder"
	r.note("hand-off after holder SIGKILL %v, after release past a killed waiter %v (ttl 30s)",
		handoff.Round(time.Millisecond), passed.Round(time.Millisecond))
}

// A paused client process keeps its connection, so without MAXHOLD its
// lock is renewed and nobody else gets it. With MAXHOLD the lock is
// released at the cap and passes on; the paused client, resumed, finds
// lock.lost and RENEW 0, and its stale write is refused by the fence.
func clientPaused(t *testing.T, r *row) {
	cl := newCluster(t, r)
	a := cl.sidecar("a", false, nil)
	b := cl.sidecar("b", false, nil)
	ws := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s2-w", 2),
		ttl: 500 * time.Millisecond, wait: 500 * time.Millisecond, hold: 2 * time.Millisecond})
	// The paused holders' locks live only while their sidecar renews them,
	// at half the ttl, within what is left of it: 1s is a margin that a
	// starved machine does not eat (with 500ms, a 250ms stall of the
	// sidecar or the upstream lost the lock, and failed the scenario).
	const ttl = 2 * time.Second

	// Without MAXHOLD.
	p := startProc(t, "proc-nomax", a, cl.resSrv.Addr())
	pid, ptoken := cl.procAcquire(p, a, "s2-nomax", ms(ttl))
	pfence, _ := safety.ParseFence(ptoken)
	cl.procWrite(p, pid, "s2-nomax", ptoken, false)
	stoppedAt := time.Now()
	p.signal(t, syscall.SIGSTOP)
	cl.hist.Pause(p.id, stoppedAt)
	r.injections++
	w := cl.mustClient("waiter-nomax", b)
	if id, _, v, err := w.acquire(10*time.Second, "s2-nomax", ms(ttl), "WAIT", ms(2*ttl)); id >= 0 || err != nil {
		t.Errorf("a waiter got %v, %v while the paused holder's connection lived (ttl %v, paused %v)",
			v, err, ttl, time.Since(stoppedAt))
	}
	if in := lockInfo(t, w.Timed, "s2-nomax"); in["held"].Num != 1 || in["fence"].Num != pfence {
		t.Errorf("LOCK.INFO after %v paused: %v; want held with fence %d", time.Since(stoppedAt), in, pfence)
	}
	p.signal(t, syscall.SIGCONT)
	cl.hist.Resume(p.id, time.Now())
	p.send(t, "cmd LOCK.RENEW s2-nomax "+ms(ttl))
	if l := p.next(t, "reply", 5*time.Second); l.rest != ":1" {
		t.Errorf("RENEW after the pause = %s; want :1 (the lock was kept)", l.rest)
	}
	p.send(t, "cmd LOCK.RELEASE s2-nomax")
	l := p.next(t, "reply", 5*time.Second)
	cl.hist.End(pid, safety.Released, l.sent)
	if l.rest != ":1" || p.printed("push") {
		t.Errorf("RELEASE after the pause = %s (lock.lost pushed: %v); want :1, no push", l.rest, p.printed("push"))
	}

	// With MAXHOLD.
	const maxHold = 3 * ttl / 2 // past the ttl: renewed until the cap ends it
	q := startProc(t, "proc-maxhold", a, cl.resSrv.Addr())
	qid, qtoken := cl.procAcquire(q, a, "s2-max", ms(ttl), "MAXHOLD", ms(maxHold))
	if !cl.procWrite(q, qid, "s2-max", qtoken, false) {
		t.Fatal("the first holder's fenced write was refused")
	}
	stoppedAt = time.Now()
	q.signal(t, syscall.SIGSTOP)
	cl.hist.Pause(q.id, stoppedAt)
	r.injections++
	w2 := cl.mustClient("waiter-max", b)
	wid, wtoken := w2.mustAcquire("s2-max", ms(ttl), "WAIT", ms(10*maxHold))
	handoff := cl.granted(wid).Sub(cl.granted(qid))
	// The sidecar ends the lease at the cap, less the drift margin and the
	// lead with which it tells a loss (a tenth of the ttl, at most 100ms).
	early := lockcore.Drift(maxHold) + min(maxHold/10, 100*time.Millisecond) + 50*time.Millisecond
	if handoff < maxHold-early || handoff > maxHold+time.Second {
		t.Errorf("the waiter got the lock %v after the paused holder; want at its MAXHOLD %v", handoff, maxHold)
	}
	if _, ok, err := w2.write(wid, "s2-max", wtoken); !ok || err != nil {
		t.Fatalf("the new holder's fenced write: accepted %v, %v", ok, err)
	}
	// Queued while it is stopped, so it acts the moment it runs again.
	fence, _ := safety.ParseFence(qtoken)
	q.send(t, "fenced s2-max "+itoa(fence)+" "+qtoken)
	q.send(t, "cmd LOCK.RENEW s2-max "+ms(ttl))
	resumedAt := time.Now()
	q.signal(t, syscall.SIGCONT)
	cl.hist.Resume(q.id, resumedAt)
	fl := q.next(t, "fenced", 5*time.Second)
	sw := cl.hist.StaleWrite(qid, fl.sent)
	cl.hist.WriteDone(sw, fl.rest == "1")
	if fl.rest != "0" {
		t.Errorf("the resumed holder's stale write = %s; want 0 (refused by the fence)", fl.rest)
	}
	push := q.next(t, "push", 5*time.Second)
	if push.rest != "s2-max "+qtoken {
		t.Errorf("push = %q; want lock.lost for s2-max", push.rest)
	}
	cl.hist.LostToken(qtoken, push.recv)
	cl.pushes.Add(1)
	if l := q.next(t, "reply", 5*time.Second); l.rest != ":0" {
		t.Errorf("RENEW after MAXHOLD = %s; want :0", l.rest)
	}
	if v, err := w2.renew(5*time.Second, wid, "s2-max", wtoken, ms(ttl)); err != nil || v.Num != 1 {
		t.Errorf("the new holder's RENEW = %v, %v; want 1 (untouched by the old one)", v, err)
	}
	w2.mustRelease(wid, "s2-max", wtoken)
	capOuts := 1 - a.lostTotal(t) // pushed, and counted as lost or not

	ws.stop()
	cl.finish()
	r.detect, r.detectWhat = handoff-maxHold, "MAXHOLD cap → next holder"
	r.note("no MAXHOLD: kept through a %v pause (ttl %v); MAXHOLD %v: passed on after %v, stale write refused, push seen on resume",
		(2 * ttl).Round(time.Millisecond), ttl, maxHold, handoff.Round(time.Millisecond))
	if capOuts > 0 {
		r.note("the MAXHOLD end is pushed as lock.lost but not counted in locks_lost_total")
	}
}
