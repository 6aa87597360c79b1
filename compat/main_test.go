package compat

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// lockproxyBin is the binary TestMain builds once for every test.
var lockproxyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lockproxy-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		os.Exit(2)
	}
	lockproxyBin = filepath.Join(dir, "lockproxy")
	build := exec.Command(goTool(), "build", "-o", lockproxyBin, "./cmd/lockproxy")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "compat: go build ./cmd/lockproxy: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goTool is the go command: the one on PATH, else the one in $GOROOT.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

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
	cmd  *exec.Cmd
	logs *syncbuf.Buffer
	done chan struct{} // closed once the process has been reaped
}

// startSidecar runs the lockproxy binary on 127.0.0.1:0 with the given
// store and stops it, by its own PID, at cleanup. It learns the port from
// the "lockproxy started" log line, so no port is probed and raced for.
func startSidecar(t testing.TB, b backend) *sidecar {
	t.Helper()
	env := append(os.Environ(), "LOCKPROXY_LISTEN=127.0.0.1:0", "LOCKPROXY_LOG_FORMAT=json",
		"LOCKPROXY_LOG_LEVEL=info", "LOCKPROXY_UPSTREAM=")
	switch b {
	case upstream:
		env = append(env, "LOCKPROXY_UPSTREAM="+redistest.Start(t).URL())
	case cluster:
		env = append(env, "LOCKPROXY_UPSTREAM="+redistest.StartCluster(t, 3).URL())
	}
	s := &sidecar{logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(lockproxyBin)
	s.cmd.Env = env
	s.cmd.SysProcAttr = sysProcAttr()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start lockproxy: %v", err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.logs.Write(append(line, '\n'))
			var rec struct{ Msg, Listen string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "lockproxy started" {
				select {
				case listening <- rec.Listen:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		s.cmd.Wait() // the only reaper of this process
		close(s.done)
	}()
	t.Cleanup(func() { s.stop(t) })
	select {
	case s.addr = <-listening:
	case <-s.done:
		t.Fatalf("lockproxy exited during start-up:\n%s", s.logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("lockproxy did not log \"lockproxy started\" within 15s:\n%s", s.logs)
	}
	return s
}

// stop sends SIGTERM to the child, then SIGKILL if it is still there after
// a few seconds, and shows its log when the test failed.
func (s *sidecar) stop(t testing.TB) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("lockproxy (pid %d) ignored SIGTERM for 5s: killed", s.cmd.Process.Pid)
	}
	if t.Failed() {
		t.Logf("lockproxy log:\n%s", s.logs)
	}
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
