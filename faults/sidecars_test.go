//go:build linux

package faults

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/safety"
)

// SIGTERM to a sidecar holding 1,000 locks: it releases every one of them
// in the upstream and exits within LOCKPROXY_SHUTDOWN_TIMEOUT, and waiters
// on another sidecar get theirs at once, not after the 60 s ttl.
func sidecarTerm(t *testing.T, r *row) {
	cl := newCluster(t, r)
	const shutdownTimeout = 5 * time.Second
	a := cl.sidecar("a", false, map[string]string{"SHUTDOWN_TIMEOUT": shutdownTimeout.String()})
	b := cl.sidecar("b", false, nil)
	const locks, conns, waited = 1000, 10, 20
	all := names("s3-", locks)
	for i := range conns {
		c := cl.mustClient(fmt.Sprintf("holder%d", i), a)
		c.acquireMany(all[i*locks/conns:(i+1)*locks/conns], "60000")
	}
	if n := len(cl.upstream().Keys(t.Context(), "lock:{s3-*}").Val()); n != locks {
		t.Fatalf("%d lock keys in the upstream; want %d", n, locks)
	}
	results := make([]<-chan grant, waited)
	ws := make([]*client, waited)
	for i := range waited {
		ws[i] = cl.mustClient("waiter"+strconv.Itoa(i), b)
		results[i] = ws[i].acquireAsync(30*time.Second, all[i], "60000", "WAIT", "20000")
	}
	waitFor(t, 5*time.Second, "every waiter queued on b", func() bool { return b.info(t)["waiters"] == strconv.Itoa(waited) })

	termAt := time.Now()
	a.signal(t, syscall.SIGTERM)
	r.injections++
	select {
	case <-a.exited:
	case <-time.After(shutdownTimeout + 2*time.Second):
		t.Fatalf("sidecar a still running %v after SIGTERM (LOCKPROXY_SHUTDOWN_TIMEOUT %v)", time.Since(termAt), shutdownTimeout)
	}
	exitTook := time.Since(termAt)
	if a.exitErr != nil {
		t.Errorf("sidecar a exited with %v after SIGTERM", a.exitErr)
	}
	if exitTook > shutdownTimeout {
		t.Errorf("sidecar a took %v to exit; LOCKPROXY_SHUTDOWN_TIMEOUT is %v", exitTook, shutdownTimeout)
	}
	// Nobody waits for these: gone by the exit, not by their 60 s ttl.
	if n := cl.upstream().Exists(t.Context(), lockKeys(all[waited:])...).Val(); n != 0 {
		t.Errorf("%d of the %d unwaited lock keys still in the upstream when sidecar a had exited", n, locks-waited)
	}
	var worst time.Duration
	for i := range waited {
		g := cl.await(results[i], "waiter "+all[i], 10*time.Second)
		worst = max(worst, cl.granted(g.id).Sub(termAt))
		if _, ok, err := ws[i].write(g.id, all[i], g.token); !ok || err != nil {
			t.Errorf("waiter %d: fenced write accepted %v, %v", i, ok, err)
		}
		ws[i].mustRelease(g.id, all[i], g.token)
	}
	if left := len(cl.upstream().Keys(t.Context(), "lock:{s3-*}").Val()); left != 0 {
		t.Errorf("%d of sidecar a's lock keys left in the upstream after SIGTERM and the waiters' releases", left)
	}

	// The holders on a were told (their connections closed) before the
	// waiters on b were granted: finish's overlap check holds the shutdown
	// to that order.
	cl.finish()
	r.detect, r.detectWhat = worst, "SIGTERM → waiter on b granted"
	r.note("exit after %v (timeout %v); all %d lock keys gone; %d waiters on b served", exitTook.Round(time.Millisecond),
		shutdownTimeout, locks, waited)
}

// holdAndQueue has one client on holders hold each of names (ttl) and one
// client on waitOn wait for it; it returns the waiters' pending grants.
func (cl *cluster) holdAndQueue(prefix string, n int, ttl time.Duration, holders, waitOn *sidecar) ([]*client, []*client, []int, []string, []<-chan grant) {
	cl.t.Helper()
	hs, ws := make([]*client, n), make([]*client, n)
	ids, tokens := make([]int, n), make([]string, n)
	results := make([]<-chan grant, n)
	obs := cl.mustClient("observer-"+waitOn.id, waitOn)
	for i, name := range names(prefix, n) {
		hs[i] = cl.mustClient("holder-"+name, holders)
		ids[i], tokens[i] = hs[i].mustAcquire(name, ms(ttl))
		ws[i] = cl.mustClient("waiter-"+name, waitOn)
		results[i] = ws[i].acquireAsync(30*time.Second, name, ms(ttl), "WAIT", "20000")
		waitFor(cl.t, 5*time.Second, "waiter for "+name+" queued", func() bool { return waiters(cl.t, obs.Timed, name) == 1 })
	}
	return hs, ws, ids, tokens, results
}

// SIGKILL to a sidecar: its locks stay until their ttl runs out in the
// upstream (nothing releases them early), then waiters elsewhere get them.
func sidecarKilled(t *testing.T, r *row) {
	cl := newCluster(t, r)
	a := cl.sidecar("a", false, nil)
	b := cl.sidecar("b", false, nil)
	const ttl = time.Second
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{a, b}, names: names("s4k-w", 2),
		ttl: ttl, wait: ttl, hold: 2 * time.Millisecond})
	const n = 3
	_, ws, _, _, results := cl.holdAndQueue("s4k-p", n, ttl, a, b)
	// Let renewals run, so the kill finds locks renewed at most ttl/2 ago.
	time.Sleep(ttl)

	killedAt := time.Now()
	a.kill(t)
	r.injections++
	var first, last time.Duration
	for i, name := range names("s4k-p", n) {
		g := cl.await(results[i], "waiter for "+name, 10*time.Second)
		after := cl.granted(g.id).Sub(killedAt)
		// The last renewal landed at most ttl/2 before the kill, so the
		// lock cannot be free before ttl/2 after it.
		if after < ttl/2-50*time.Millisecond || after > ttl+time.Second {
			t.Errorf("%s passed to b %v after the kill; want between ttl/2 and ttl (+1s) (ttl %v)", name, after, ttl)
		}
		if first == 0 || after < first {
			first = after
		}
		last = max(last, after)
		if _, ok, err := ws[i].write(g.id, name, g.token); !ok || err != nil {
			t.Errorf("%s: fenced write accepted %v, %v", name, ok, err)
		}
		ws[i].mustRelease(g.id, name, g.token)
	}
	wl.stop()
	cl.finish()
	r.detect, r.detectWhat = last, "kill → waiters granted on expiry"
	r.note("the killed sidecar's locks passed on %v–%v after SIGKILL (ttl %v, renewed every ttl/2)",
		first.Round(time.Millisecond), last.Round(time.Millisecond), ttl)
}

// SIGSTOP to a sidecar past the ttl: the locks it held expire and pass to
// waiters elsewhere; on SIGCONT its clients hear lock.lost, and a RENEW
// that was waiting in the socket all along is answered 0, never 1.
func sidecarStopped(t *testing.T, r *row) {
	cl := newCluster(t, r)
	c := cl.sidecar("c", false, nil)
	d := cl.sidecar("d", false, nil)
	const ttl = time.Second
	wl := cl.start(workload{perSidecar: heavy(2, 4), sidecars: []*sidecar{c, d}, names: names("s4s-w", 2),
		ttl: ttl, wait: ttl, hold: 2 * time.Millisecond})
	const n = 3
	hs, ws, ids, tokens, results := cl.holdAndQueue("s4s-p", n, ttl, c, d)

	stoppedAt := time.Now()
	c.signal(t, syscall.SIGSTOP)
	cl.hist.Pause(c.id, stoppedAt)
	r.injections++
	grants := make([]grant, n)
	for i, name := range names("s4s-p", n) {
		grants[i] = cl.await(results[i], "waiter for "+name, 10*time.Second)
		// Renewed at most ttl/2 before the stop, the lock cannot expire
		// sooner than ttl/2 after it.
		if after := cl.granted(grants[i].id).Sub(stoppedAt); after < ttl/2-50*time.Millisecond || after > ttl+time.Second {
			t.Errorf("%s passed to d %v after the stop; want between ttl/2 and ttl (+1s) (ttl %v)", name, after, ttl)
		}
		if _, ok, err := ws[i].write(grants[i].id, name, grants[i].token); !ok || err != nil {
			t.Errorf("%s: fenced write accepted %v, %v", name, ok, err)
		}
	}
	// Sent while c is stopped: the first thing it reads when it runs.
	sent := make([]time.Time, n)
	for i, name := range names("s4s-p", n) {
		var err error
		if sent[i], err = hs[i].Send("LOCK.RENEW", name, ms(ttl)); err != nil {
			t.Fatal(err)
		}
	}
	resumedAt := time.Now()
	c.signal(t, syscall.SIGCONT)
	cl.hist.Resume(c.id, resumedAt)
	var worst time.Duration
	for i, name := range names("s4s-p", n) {
		v, at, err := hs[i].Next(10 * time.Second)
		if err != nil || v.Kind != ':' || v.Num != 0 {
			t.Errorf("%s: RENEW sent during the stop = %v, %v; want :0", name, v, err)
		}
		if !hs[i].awaitLost(tokens[i], 5*time.Second) {
			t.Errorf("%s: no lock.lost push within 5s of SIGCONT", name)
		}
		cl.hist.End(ids[i], safety.Lost, at) // no-op when the push came first
		if g := cl.hist.Holds()[ids[i]]; g.Ended.After(resumedAt) {
			worst = max(worst, g.Ended.Sub(resumedAt))
		}
		if ok, err := hs[i].staleWrite(ids[i], name, tokens[i]); ok || err != nil {
			t.Errorf("%s: the stopped sidecar's client's stale write: accepted %v, %v", name, ok, err)
		}
		if v, _, err := hs[i].Do(5*time.Second, "LOCK.HELD"); err != nil || len(v.Elems) != 0 {
			t.Errorf("%s: LOCK.HELD after SIGCONT = %v, %v; want empty", name, v, err)
		}
		// The stale sidecar's clean-up never touches the new holder.
		if v, err := ws[i].renew(5*time.Second, grants[i].id, name, grants[i].token, ms(ttl)); err != nil || v.Num != 1 {
			t.Errorf("%s: the new holder's RENEW = %v, %v; want 1", name, v, err)
		}
		ws[i].mustRelease(grants[i].id, name, grants[i].token)
	}
	wl.stop()
	cl.finish()
	r.detect, r.detectWhat = worst, "SIGCONT → lock.lost"
	r.note("stopped %v (ttl %v); every RENEW queued during the stop answered 0",
		resumedAt.Sub(stoppedAt).Round(time.Millisecond), ttl)
}

// lockKeys are the upstream keys of names' locks.
func lockKeys(names []string) []string {
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = "lock:{" + n + "}"
	}
	return keys
}
