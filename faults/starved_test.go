//go:build linux

package faults

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/respclient"
	"github.com/lockproxy/lockproxy/internal/safety"
)

// hogEnv, set to a number n, makes the test binary a CPU hog: n goroutines
// that spin until the process is killed.
const hogEnv = "FAULTS_CPU_HOG"

// hogProcess is the test binary running as a CPU hog (see cpuHog).
func hogProcess(n int) int {
	runtime.GOMAXPROCS(n)
	for range n - 1 {
		go spin()
	}
	fmt.Println("spinning")
	spin()
	return 0
}

func spin() {
	//lint:ignore SA5002 spinning is what a hog is for
	for {
	}
}

// cpuHog starts a process that keeps n CPUs busy, as another program on
// the same machine would, and returns once it spins. It is killed at
// cleanup (and by the kernel if the test binary dies first).
func cpuHog(t testing.TB, n int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hogEnv+"="+strconv.Itoa(n))
	cmd.SysProcAttr = childAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the CPU hog: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "spinning\n" {
		t.Fatalf("the CPU hog did not start: %q, %v", line, err)
	}
}

// The upstream link freezes (a black hole) while every CPU is kept busy
// by another process, and the holder of an owned lock pipelines
// LOCK.RENEW, LOCK.INFO and LOCK.HELD every 50ms on its connection. The
// connection must keep being answered, each command within one upstream
// timeout of reaching the head of the connection's queue, and the holder
// must be told lock.lost by the lock's validity deadline, after which
// LOCK.HELD no longer lists it. Nothing may claim the lock once the
// upstream could have expired it, and once the link thaws every command
// still queued is answered.
func frozenStarved(t *testing.T, r *row) {
	cl := newCluster(t, r)
	rl := cl.withRelay()
	const (
		ttl = time.Second
		// upstreamTimeout is LOCKPROXY_UPSTREAM_TIMEOUT's default.
		upstreamTimeout = 2 * time.Second
		every           = 50 * time.Millisecond
		frozenFor       = 6 * time.Second
		// slack is what a starved machine may add to a reply or a push on
		// top of the sidecar's own bound: the sidecar, this process and the
		// hog share the CPUs, so each hop (a deadline fires, a goroutine
		// runs, a write, the client's reader wakes) can wait out a
		// scheduler period of a few tens of ms. 300ms is several such
		// periods, and far below the second-long stalls this looks for.
		slack = 300 * time.Millisecond
	)
	a := cl.sidecar("a", true, map[string]string{"UPSTREAM_TIMEOUT": upstreamTimeout.String()})
	holder := cl.mustClient("holder", a)
	const name = "s15-held"
	id, token := holder.mustAcquire(name, ms(ttl))
	cpuHog(t, runtime.NumCPU())

	// One writer pipelines the three commands every 50ms; one reader pairs
	// each reply with its command, in order, as a client library does.
	type sent struct {
		cmd string
		at  time.Time
	}
	type answered struct {
		sent
		v    respclient.Value
		recv time.Time
	}
	var (
		mu      sync.Mutex
		pending []sent     // guarded by mu
		got     []answered // guarded by mu
		stopped bool       // guarded by mu; the writer is done
	)
	stop, drained := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	// Nothing else uses the holder's connection while the pipeline runs.
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		reqs := [][]string{{"LOCK.RENEW", name, ms(ttl)}, {"LOCK.INFO", name}, {"LOCK.HELD"}}
		for {
			select {
			case <-stop:
				mu.Lock()
				stopped = true
				if len(pending) == 0 {
					close(drained)
				}
				mu.Unlock()
				return
			case <-tick.C:
			}
			mu.Lock()
			now := time.Now()
			pending = append(pending, sent{"RENEW", now}, sent{"INFO", now}, sent{"HELD", now})
			mu.Unlock()
			for _, req := range reqs {
				if _, err := holder.Send(req...); err != nil {
					t.Errorf("holder: write: %v", err)
					return
				}
			}
		}
	})
	wg.Go(func() {
		for {
			// Ended by the connection's end (Shut, below), not a timeout.
			v, at, err := holder.Next(time.Hour)
			if err != nil {
				return
			}
			mu.Lock()
			s := pending[0]
			pending = pending[1:]
			got = append(got, answered{s, v, at})
			if stopped && len(pending) == 0 {
				close(drained)
			}
			mu.Unlock()
			if s.cmd == "RENEW" && v.Kind == ':' && v.Num == 0 {
				cl.hist.End(id, safety.Lost, at)
				holder.forget(token)
			}
		}
	})

	time.Sleep(500 * time.Millisecond) // the pipeline runs under the hog before the fault
	frozeAt := time.Now()
	rl.Freeze()
	r.injections++
	// The last renewal that can reach the upstream was sent before the
	// freeze: the upstream expires the lock by frozeAt+ttl at the latest,
	// and the sidecar's validity ends by frozeAt+ttl-drift.
	validUntil := frozeAt.Add(ttl - (time.Millisecond + ttl/100))
	expiry := frozeAt.Add(ttl)
	var pushAt time.Time
	select {
	case tok := <-holder.lostCh:
		if tok != token {
			t.Errorf("lock.lost for %s, want %s", tok, token)
		}
		pushAt = time.Now()
	case <-time.After(frozenFor):
	}
	time.Sleep(time.Until(frozeAt.Add(frozenFor))) // the fault's length
	close(stop)
	thawedAt := time.Now()
	rl.Thaw()
	select {
	case <-drained:
	case <-holder.Done():
	case <-time.After(15 * time.Second):
	}
	holder.Shut()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()

	// Each reply is due one upstream timeout after its command reached
	// the head of the connection's queue: when it was sent or when the
	// reply before it came, whichever is later. Commands wait for those
	// ahead of them, as on any Redis connection, so that is the bound a
	// client can count on; a stall that holds back every reply breaks it.
	var worst time.Duration
	var worstAt answered
	var prev time.Time
	var claims, late int
	for i, g := range got {
		head := g.at
		if prev.After(head) {
			head = prev
		}
		prev = g.recv
		if d := g.recv.Sub(head); d > worst {
			worst, worstAt = d, g
		}
		if g.recv.Sub(head) > upstreamTimeout+slack {
			late++
			if late <= 5 {
				t.Errorf("reply %d (%s sent %v after the freeze) came %v after it reached the head of the queue, want ≤ %v+%v",
					i, g.cmd, g.at.Sub(frozeAt).Round(time.Millisecond), g.recv.Sub(head).Round(time.Millisecond), upstreamTimeout, slack)
			}
		}
		claim := false
		switch g.cmd {
		case "RENEW":
			claim = g.v.Kind == ':' && g.v.Num == 1
		case "INFO":
			claim = strings.Contains(g.v.String(), "self")
		case "HELD":
			claim = strings.Contains(g.v.String(), name)
			if claim && !pushAt.IsZero() && g.at.After(pushAt) {
				t.Errorf("LOCK.HELD sent %v after the lock.lost push still lists %s", g.at.Sub(pushAt).Round(time.Millisecond), name)
			}
		}
		if claim && g.recv.After(expiry) {
			claims++
			if claims <= 5 {
				t.Errorf("%s received %v after the freeze claims the lock (%v); the upstream may have expired it %v after the freeze",
					g.cmd, g.recv.Sub(frozeAt).Round(time.Millisecond), g.v, ttl)
			}
		}
	}
	if late > 5 || claims > 5 {
		t.Errorf("... %d late replies and %d false claims in all", late, claims)
	}
	if len(pending) > 0 {
		t.Errorf("%d of %d commands never answered, the oldest a %s sent %v after the freeze", len(pending),
			len(pending)+len(got), pending[0].cmd, pending[0].at.Sub(frozeAt).Round(time.Millisecond))
	}
	switch {
	case pushAt.IsZero():
		t.Errorf("no lock.lost push within %v of the freeze", frozenFor)
	case pushAt.After(validUntil.Add(slack)):
		t.Errorf("lock.lost came %v after the freeze; the validity ended by %v, want it by then + %v",
			pushAt.Sub(frozeAt).Round(time.Millisecond), validUntil.Sub(frozeAt).Round(time.Millisecond), slack)
	}
	cl.finish()
	if !pushAt.IsZero() {
		r.detect = pushAt.Sub(frozeAt)
	}
	var inFreeze int
	for _, g := range got {
		if g.recv.Before(thawedAt) {
			inFreeze++
		}
	}
	r.note("ttl %v, UPSTREAM_TIMEOUT %v, %d CPUs hogged, frozen %v: %d replies during the freeze, the slowest %v after reaching the head of the queue (%s, sent %v after the freeze); all %d commands answered %v after the thaw",
		ttl, upstreamTimeout, runtime.NumCPU(), frozenFor, inFreeze, worst.Round(time.Millisecond), worstAt.cmd,
		worstAt.at.Sub(frozeAt).Round(time.Millisecond), len(got), prev.Sub(thawedAt).Round(time.Millisecond))
}

// The upstream link freezes while a lock with a long ttl is held, and the
// holder sends LOCK.RENEW just after the sidecar's own background renewal
// of it began: the client's renewal must not wait for the background one
// beyond one upstream timeout, and the holder is told lock.lost by the
// validity deadline.
func renewBehindRenewal(t *testing.T, r *row) {
	cl := newCluster(t, r)
	rl := cl.withRelay()
	const (
		ttl = 10 * time.Second
		// upstreamTimeout is LOCKPROXY_UPSTREAM_TIMEOUT's default.
		upstreamTimeout = 2 * time.Second
		// slack: an idle machine's scheduling and loopback, with room.
		slack = 300 * time.Millisecond
	)
	a := cl.sidecar("a", true, map[string]string{"UPSTREAM_TIMEOUT": upstreamTimeout.String()})
	holder := cl.mustClient("holder", a)
	const name = "s16-held"
	id, token := holder.mustAcquire(name, ms(ttl))
	grantedAt := cl.granted(id)
	frozeAt := time.Now()
	rl.Freeze()
	r.injections++
	// The acquire was sent before its grant came back: the validity ends
	// by then, and the background renewal starts by ttl/2 after it.
	validUntil := grantedAt.Add(ttl - (time.Millisecond + ttl/100))
	renewAt := grantedAt.Add(ttl/2 + 500*time.Millisecond)
	time.Sleep(time.Until(renewAt)) // the fault's timing: the background renewal is waiting on the upstream
	v, recv, err := holder.Do(ttl, "LOCK.RENEW", name, ms(ttl))
	took := recv.Sub(renewAt)
	switch {
	case err != nil:
		t.Fatalf("LOCK.RENEW: %v", err)
	case v.Kind == ':' && v.Num == 1:
		t.Errorf("LOCK.RENEW = 1 through a frozen upstream")
	case v.Kind == ':' && v.Num == 0:
		cl.hist.End(id, safety.Lost, recv)
		holder.forget(token)
	}
	if took > upstreamTimeout+slack {
		t.Errorf("LOCK.RENEW answered %v (%v) after it was sent, want ≤ %v+%v: it waited for the background renewal",
			took.Round(time.Millisecond), v, upstreamTimeout, slack)
	}
	if !holder.awaitLost(token, time.Until(validUntil.Add(slack))) {
		t.Errorf("no lock.lost by the validity deadline (%v after the grant) + %v", validUntil.Sub(grantedAt).Round(time.Millisecond), slack)
	}
	lostAt := time.Now()
	rl.Thaw()
	cl.finish()
	r.detect = lostAt.Sub(frozeAt)
	r.note("ttl %v, UPSTREAM_TIMEOUT %v: LOCK.RENEW sent %v after the grant answered %v in %v; lock.lost %v after the grant",
		ttl, upstreamTimeout, renewAt.Sub(grantedAt).Round(time.Millisecond), v, took.Round(time.Millisecond),
		lostAt.Sub(grantedAt).Round(time.Millisecond))
}
