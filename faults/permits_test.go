//go:build linux

package faults

import (
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/safety"
	"github.com/lockproxy/lockproxy/lockcore"
)

// Permits and read locks whose holders die or stop. Under a load of a
// semaphore of 3 and of readers and writers on one name, over two
// sidecars: a client process killed while it holds a permit frees it at
// once (the waiter on the other sidecar gets it within about a round
// trip, not after the 30 s ttl); a process stopped while it holds the one
// permit of a semaphore, or a read lock, keeps it until its MAXHOLD, then
// the waiter (a writer, for the read lock) gets it, and the resumed
// process finds lock.lost. The checker holds every name to counted
// exclusion: never more than the limit, never a writer with a reader.
func permitHolders(t *testing.T, r *row) {
	cl := newCluster(t, r)
	a := cl.sidecar("a", false, nil)
	b := cl.sidecar("b", false, nil)
	both := []*sidecar{a, b}
	load := []*workers{
		cl.start(workload{perSidecar: heavy(3, 5), sidecars: both, names: []string{"s3-sem"},
			ttl: time.Second, wait: 500 * time.Millisecond, hold: 2 * time.Millisecond, extra: []string{"LIMIT", "3"}}),
		cl.start(workload{perSidecar: heavy(2, 4), sidecars: both, names: []string{"s3-rw"},
			ttl: time.Second, wait: 500 * time.Millisecond, hold: 2 * time.Millisecond, extra: []string{"SHARED"}}),
		cl.start(workload{perSidecar: 1, sidecars: both, names: []string{"s3-rw"},
			ttl: time.Second, wait: 500 * time.Millisecond, hold: 2 * time.Millisecond}),
	}
	const promptly = time.Second // ≫ a round trip, ≪ the ttl
	obsB := cl.mustClient("observer-b", b)

	// Killed mid-hold: the process holds one permit of two, a client the
	// other, and a third waits on the other sidecar.
	holder := startProc(t, "proc-permit", a, cl.resSrv.Addr())
	hid, _ := cl.procAcquire(holder, a, "s3-held", "30000", "LIMIT", "2")
	other := cl.mustClient("permit-other", a)
	oid, otoken := other.mustAcquire("s3-held", "30000", "LIMIT", "2")
	w := cl.mustClient("permit-waiter", b)
	got := w.acquireAsync(15*time.Second, "s3-held", "30000", "LIMIT", "2", "WAIT", "10000")
	waitFor(t, 5*time.Second, "permit waiter queued on b", func() bool { return waiters(t, obsB.Timed, "s3-held") == 1 })
	killedAt := time.Now()
	holder.signal(t, syscall.SIGKILL)
	<-holder.exited
	cl.hist.End(hid, safety.Unknown, killedAt) // a dead process believes nothing
	r.injections++
	g := cl.await(got, "permit waiter after the holder was killed", 10*time.Second)
	handoff := cl.granted(g.id).Sub(killedAt)
	if handoff > promptly {
		t.Errorf("the waiter got the permit %v after its holder was killed; want within %v (ttl 30s)", handoff, promptly)
	}
	w.mustRelease(g.id, "s3-held", g.token)
	other.mustRelease(oid, "s3-held", otoken)

	// Stopped with MAXHOLD: the one permit of a semaphore, then a read
	// lock a writer waits for.
	const ttl, maxHold = 2 * time.Second, 3 * time.Second
	early := lockcore.Drift(maxHold) + min(maxHold/10, 100*time.Millisecond) + 50*time.Millisecond
	var capped []time.Duration
	for _, c := range []struct {
		name, proc string
		kind       []string // the stopped holder's
		waiter     []string // the waiter's
	}{
		{"s3-cap", "proc-permit-max", []string{"LIMIT", "1"}, []string{"LIMIT", "1"}},
		{"s3-read", "proc-reader-max", []string{"SHARED"}, nil},
	} {
		q := startProc(t, c.proc, a, cl.resSrv.Addr())
		qid, qtoken := cl.procAcquire(q, a, c.name, append([]string{ms(ttl), "MAXHOLD", ms(maxHold)}, c.kind...)...)
		stoppedAt := time.Now()
		q.signal(t, syscall.SIGSTOP)
		cl.hist.Pause(q.id, stoppedAt)
		r.injections++
		w := cl.mustClient("waiter-"+c.name, b)
		wid, wtoken := w.mustAcquire(c.name, append([]string{ms(ttl), "WAIT", ms(10 * maxHold)}, c.waiter...)...)
		passed := cl.granted(wid).Sub(cl.granted(qid))
		if passed < maxHold-early || passed > maxHold+time.Second {
			t.Errorf("%s: the waiter got it %v after the stopped holder; want at its MAXHOLD %v", c.name, passed, maxHold)
		}
		capped = append(capped, passed)
		// Queued while it is stopped, so it acts the moment it runs again.
		q.send(t, "cmd LOCK.RENEW "+c.name+" "+ms(ttl))
		q.signal(t, syscall.SIGCONT)
		cl.hist.Resume(q.id, time.Now())
		push := q.next(t, "push", 5*time.Second)
		if push.rest != c.name+" "+qtoken {
			t.Errorf("%s: push = %q; want lock.lost", c.name, push.rest)
		}
		cl.hist.LostToken(qtoken, push.recv)
		cl.pushes.Add(1)
		if l := q.next(t, "reply", 5*time.Second); l.rest != ":0" {
			t.Errorf("%s: RENEW after MAXHOLD = %s; want :0", c.name, l.rest)
		}
		w.mustRelease(wid, c.name, wtoken)
	}

	for _, ws := range load {
		ws.stop()
		if ws.grants.Load() == 0 {
			t.Errorf("a workload made no grants (errors: %s)", ws.errors())
		}
	}
	cl.finish()
	r.detect, r.detectWhat = handoff, "kill → next permit holder"
	r.note("permit passed on %v after its holder's SIGKILL (ttl 30s); stopped permit and read lock passed on at MAXHOLD %v: after %v, %v",
		handoff.Round(time.Millisecond), maxHold, capped[0].Round(time.Millisecond), capped[1].Round(time.Millisecond))
}
