package compat

import (
	"strings"
	"sync"
	"testing"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/sidecarproc"
)

// lockproxyBin is the binary TestMain builds once for every test.
var lockproxyBin string

func TestMain(m *testing.M) { sidecarproc.Main(m, "compat", &lockproxyBin) }

// backend is the store a sidecar keeps its locks in.
type backend string

const (
	embedded backend = "embedded" // no LOCKPROXY_UPSTREAM
	upstream backend = "redis"    // a redis-server of the test's own
	cluster  backend = "cluster"  // a Redis Cluster of 3 primaries of the test's own
)

// sidecar is a lockproxy child process owned by one test.
type sidecar struct {
	addr string // host:port it listens on
	*sidecarproc.Process
}

// startSidecar runs the lockproxy binary with the given store, stopped at
// cleanup (see sidecarproc.Start).
func startSidecar(t testing.TB, b backend) *sidecar {
	t.Helper()
	var env []string
	switch b {
	case upstream:
		env = append(env, "LOCKPROXY_UPSTREAM="+redistest.Start(t).URL())
	case cluster:
		env = append(env, "LOCKPROXY_UPSTREAM="+redistest.StartCluster(t, 3).URL())
	}
	p := sidecarproc.Start(t, lockproxyBin, env...)
	return &sidecar{addr: p.Addr, Process: p}
}

// Steps of the scenario every client runs, in order. A client reports each
// one as passed or failed; TestClients turns them into subtests.
const (
	stepHandshake  = "handshake"          // connect with default options; CLIENT INFO shows the protocol
	stepClientInfo = "client-info-parsed" // the client's own CLIENT INFO parser reads Redis's fields
	stepAcquire    = "acquire-info-held"  // LOCK.ACQUIRE, LOCK.INFO, LOCK.HELD on one connection
	stepRenew      = "renew"              // LOCK.RENEW without a token
	stepRelease    = "release"            // LOCK.RELEASE without a token, then again: 0
	stepWait       = "wait-handoff"       // one holds, another waits, release hands it over with a larger fence
	stepDetached   = "detached-pooled"    // DETACHED, released by token through another connection
	stepClose      = "release-on-close"   // an owned lock is free at once after its connection closes
	stepLost       = "lock-lost"          // MAXHOLD 200: at the cap the lock is gone and the connection still in step
	stepLostPush   = "lock-lost-push"     // ... and a RESP3 client receives >3 lock.lost <name> <token>
)

// commonSteps are the steps every client passes; push-capable clients add
// stepLostPush.
var commonSteps = []string{stepHandshake, stepAcquire, stepRenew, stepRelease, stepWait, stepDetached,
	stepClose, stepLost}

// stepResults collects what a scenario reported for each step.
type stepResults struct {
	mu     sync.Mutex
	status map[string]string // step -> "" when it passed, else why it failed
}

func (r *stepResults) set(step, failure string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == nil {
		r.status = map[string]string{}
	}
	if prev, seen := r.status[step]; seen && prev != "" {
		return // keep the first failure
	}
	r.status[step] = failure
}

// parseSteps reads "ok <step>" and "FAIL <step>: why" lines, as the
// scripts print them.
func parseSteps(out string) *stepResults {
	r := &stepResults{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if step, ok := strings.CutPrefix(line, "ok "); ok {
			r.set(strings.TrimSpace(step), "")
		} else if rest, ok := strings.CutPrefix(line, "FAIL "); ok {
			step, why, _ := strings.Cut(rest, ":")
			r.set(strings.TrimSpace(step), strings.TrimSpace(why))
		}
	}
	return r
}

// report turns the results into one subtest per expected step.
func (r *stepResults) report(t *testing.T, want []string, output string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, step := range want {
		failure, seen := r.status[step]
		t.Run(step, func(t *testing.T) {
			switch {
			case !seen:
				t.Errorf("step %q never reported (the scenario stopped before it)\n%s", step, output)
			case failure != "":
				t.Errorf("%s\n%s", failure, output)
			}
		})
	}
	for step := range r.status {
		if !contains(want, step) {
			t.Errorf("the scenario reported an unexpected step %q", step)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
