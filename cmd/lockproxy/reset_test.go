package main

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
)

// infoField is one field of the sidecar's INFO locks.
func infoField(t testing.TB, c doer, field string) string {
	t.Helper()
	in, err := do(t, c, "INFO", "locks").Text()
	if err != nil {
		t.Fatalf("INFO locks: %v", err)
	}
	for _, line := range strings.Split(in, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO locks has no %s:\n%s", field, in)
	return ""
}

// acquireErr is LOCK.ACQUIRE's error; a token or a null fails the test.
func acquireErr(t testing.TB, c doer, args ...any) string {
	t.Helper()
	v, err := do(t, c, append([]any{"LOCK.ACQUIRE"}, args...)...).Result()
	if err == nil || err == redis.Nil {
		t.Fatalf("LOCK.ACQUIRE %v = %v, %v; want an error", args, v, err)
	}
	return err.Error()
}

// A Redis without persistence that restarts forgets every lock. The
// sidecar that held locks through it declares them lost (a RESP3 push),
// grants nothing during the quiet period, and tells sidecars started later;
// after the period, locks are granted again.
func TestUpstreamRestartQuietPeriod(t *testing.T) {
	srv := redistest.Start(t)
	const quiet = 3 * time.Second
	settings := map[string]string{"UPSTREAM": srv.URL(), "QUIET_PERIOD": quiet.String()}
	a := startProxy(t, settings)

	push, tok := holder(t, a, "before-restart", 60000)
	plain := a.conn(t, 2)
	mustToken(t, plain, "resp2-held", 60000)
	if got := infoField(t, plain, "upstream_risks"); got != "no_persistence" {
		t.Errorf("upstream_risks = %q, want no_persistence (redistest runs without persistence)", got)
	}

	srv.Restart(t)
	restarted := time.Now()
	// The first acquire after the restart may come before the sidecar's
	// periodic check: the epoch the acquire script checks is gone with the
	// data, so it is refused all the same.
	msg := acquireErr(t, plain, "after-restart", 60000)
	if !strings.HasPrefix(msg, "UPSTREAM ") {
		t.Errorf("acquire right after the restart: %q", msg)
	}

	want := []string{">3", "$9", "lock.lost", "$14", "before-restart", "$" + strconv.Itoa(len(tok)), tok}
	if got := push.frame(t); !slices.Equal(got, want) {
		t.Fatalf("push: got %q, want %q", got, want)
	}
	if took := time.Since(restarted); took > 2*time.Second {
		t.Errorf("lock.lost came %v after the restart", took)
	}
	// Sessions are told one after another: the push above may come first.
	waitFor(t, func() bool { return len(held(t, plain)) == 0 })
	mustInt(t, 0, plain, "LOCK.RENEW", "resp2-held", 60000)

	msg = acquireErr(t, plain, "after-restart", 60000)
	if !strings.Contains(msg, "quiet period") || !strings.Contains(msg, "LOCKPROXY_QUIET_PERIOD") {
		t.Errorf("acquire during the quiet period: %q", msg)
	}
	// WAIT is refused too rather than left to sit out the period.
	msg = acquireErr(t, plain, "after-restart", 60000, "WAIT", 100)
	if !strings.Contains(msg, "quiet period") {
		t.Errorf("WAIT during the quiet period: %q", msg)
	}
	if left, _ := strconv.Atoi(infoField(t, plain, "quiet_period_left_ms")); left <= 0 || left > int(quiet.Milliseconds()) {
		t.Errorf("quiet_period_left_ms = %d, want in (0, %d]", left, quiet.Milliseconds())
	}
	if n := infoField(t, plain, "locks_lost_total"); n != "2" {
		t.Errorf("locks_lost_total = %s, want 2", n)
	}

	// A sidecar that starts now never saw the old upstream, and learns of
	// the period from the upstream.
	b := startProxy(t, settings)
	late := b.conn(t, 2)
	msg = acquireErr(t, late, "after-restart", 60000)
	if !strings.Contains(msg, "quiet period") {
		t.Errorf("a sidecar started during the quiet period grants: %q", msg)
	}

	// The period runs from each sidecar's detection, not from the restart.
	for _, c := range []doer{plain, late} {
		waitFor(t, func() bool { return infoField(t, c, "quiet_period_left_ms") == "0" })
	}
	// Both sidecars grant again, in turn.
	mustToken(t, plain, "after-restart", 60000)
	mustNull(t, late, "after-restart")
	mustInt(t, 1, plain, "LOCK.RELEASE", "after-restart")
	mustToken(t, late, "after-restart", 60000)
}

// A waiter blocked when the upstream restarts is answered with an error at
// once (the reset, or the quiet period, whichever it meets first), instead
// of being left to time out.
func TestUpstreamRestartAnswersWaiters(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, map[string]string{"UPSTREAM": srv.URL(), "QUIET_PERIOD": "1m"})
	holder, waiter := p.conn(t, 2), p.conn(t, 2)
	mustToken(t, holder, "contended", 60000)
	done := make(chan error, 1)
	go func() {
		done <- waiter.Do(context.Background(), "LOCK.ACQUIRE", "contended", 60000, "WAIT", 60000).Err()
	}()
	waitFor(t, func() bool { return info(t, holder, "contended")["waiters"] == int64(1) })
	srv.Restart(t)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "restarted or failed over") {
			t.Errorf("the waiter got %v, want the upstream reset error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not answered within 10s of the restart")
	}
}

// Upstream settings that can lose locks are reported in INFO and in
// lockproxy_upstream_risk; a safe upstream reports none.
func TestUpstreamRisks(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"evicting, no persistence", []string{"--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"}, "eviction,no_persistence"},
		{"safe", []string{"--appendonly", "yes", "--maxmemory-policy", "noeviction"}, ""},
		{"snapshots count as persistence", []string{"--save", "3600 1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{Args: tc.args})
			p := startProxy(t, map[string]string{"UPSTREAM": srv.URL(), "METRICS_LISTEN": "127.0.0.1:0"})
			if got := infoField(t, p.conn(t, 2), "upstream_risks"); got != tc.want {
				t.Errorf("upstream_risks = %q, want %q", got, tc.want)
			}
			body := scrape(t, p)
			for _, kind := range []string{"eviction", "no_persistence", "unknown"} {
				v := "0"
				if slices.Contains(strings.Split(tc.want, ","), kind) {
					v = "1"
				}
				if line := `lockproxy_upstream_risk{kind="` + kind + `"} ` + v; !strings.Contains(body, line) {
					t.Errorf("metrics lack %q", line)
				}
			}
		})
	}
}

// A persistent upstream that restarts cleanly (SHUTDOWN saves) comes back
// with every lock. The sidecar checks that its locks are there, keeps them
// (no lock.lost, renewals go on), and grants again within about a second:
// a check interval for the other sidecars, not a quiet period.
func TestUpstreamCleanRestartKeepsLocks(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--appendonly", "yes"}})
	a := startProxy(t, map[string]string{"UPSTREAM": srv.URL()})
	push, _ := holder(t, a, "kept", 10000)
	plain := a.conn(t, 2)
	mustToken(t, plain, "detached", 10000, "DETACHED")
	waitFor(t, func() bool { return infoField(t, plain, "upstream_persistence") != "" })
	if p, acks := infoField(t, plain, "upstream_persistence"), infoField(t, plain, "replica_acks"); p != "aof-everysec" || acks != "0" {
		t.Errorf("INFO says upstream_persistence:%s replica_acks:%s, want aof-everysec and 0", p, acks)
	}

	srv.Restart(t) // SIGTERM: Redis writes its AOF and exits, then starts on it
	resumed := untilGranted(t, plain, "after", 10000, time.Now())
	if resumed > 5*time.Second {
		t.Errorf("grants resumed %v after the restart; a restart that kept every lock should stop them for about a second", resumed)
	}
	// Had the lock been declared lost, its push would come before this reply.
	push.send(t, cmd("LOCK.HELD"))
	if got := push.frame(t); !slices.Equal(got, []string{"*1", "$4", "kept"}) {
		t.Fatalf("LOCK.HELD on the holder's connection after the restart = %q, want kept and no push", got)
	}
	mustInt(t, 1, plain, "LOCK.RENEW", "detached", 10000)
	mustNull(t, plain, "kept")
	if n := infoField(t, plain, "locks_lost_total"); n != "0" {
		t.Errorf("locks_lost_total = %s, want 0", n)
	}
	t.Logf("grants resumed %v after the restart", resumed.Round(time.Millisecond))
}

// An upstream without persistence that restarts has lost every lock, so
// the sidecar declares them lost and stops grants; with the default
// LOCKPROXY_QUIET_PERIOD=auto the stop lasts as long as the longest lease
// granted could still run (2 s here), not LOCKPROXY_MAX_TTL (a day).
func TestUpstreamEmptyRestartShortQuiet(t *testing.T) {
	srv := redistest.Start(t)
	a := startProxy(t, map[string]string{"UPSTREAM": srv.URL()})
	push, tok := holder(t, a, "short", 2000)
	plain := a.conn(t, 2)

	srv.Kill(t)
	srv.Restart(t)
	restarted := time.Now()
	if got := push.frame(t); len(got) < 7 || got[2] != "lock.lost" || got[6] != tok {
		t.Fatalf("push after the restart = %q, want lock.lost for short", got)
	}
	msg := acquireErr(t, plain, "after", 2000)
	if !strings.HasPrefix(msg, "UPSTREAM ") {
		t.Errorf("acquire right after the restart: %q", msg)
	}
	left, _ := strconv.Atoi(infoField(t, plain, "quiet_period_left_ms"))
	if left > 3500 {
		t.Errorf("quiet_period_left_ms = %d after losing 2s leases; want at most the lease, drift and a check interval", left)
	}
	resumed := untilGranted(t, plain, "after", 2000, restarted)
	t.Logf("quiet period %dms; grants resumed %v after the restart", left, resumed.Round(time.Millisecond))
}
