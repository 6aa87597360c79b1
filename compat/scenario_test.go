package compat

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/sidecarproc"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// client is one Redis client the suite holds to the scenario.
type client struct {
	name string
	// steps it must report; commonSteps plus stepLostPush where the client
	// surfaces RESP3 pushes.
	steps []string
	// backends it runs against.
	backends []backend
	// run drives the scenario against addr (the recorder in front of a
	// sidecar) and returns what each step gave, plus the client's output.
	run func(t *testing.T, addr string) (*stepResults, string)
}

// allBackends are the embedded store, one Redis, and a Redis Cluster.
var allBackends = []backend{embedded, upstream, cluster}

func withPush(steps []string) []string { return append(append([]string(nil), steps...), stepLostPush) }

func withInfo(steps []string) []string {
	return append(append([]string{steps[0]}, stepClientInfo), steps[1:]...)
}

func clients() []client {
	return []client{
		{name: "redis-cli", steps: withPush(commonSteps), backends: allBackends, run: runRedisCLI},
		{name: "go-redis-resp3", steps: withPush(commonSteps), backends: allBackends, run: runGoRedis(3)},
		{name: "go-redis-resp2", steps: commonSteps, backends: allBackends, run: runGoRedis(2)},
		{name: "rueidis", steps: commonSteps, backends: allBackends, run: runRueidis},
		// rueidis's default options turn on client-side caching, whose
		// CLIENT TRACKING ON OPTIN lockproxy refuses; kept failing until it
		// answers it.
		{name: "rueidis-default-options", steps: []string{stepHandshake}, backends: []backend{embedded}, run: runRueidisDefaults},
		// redis-py and node-redis parse CLIENT INFO themselves.
		{name: "redis-py", steps: withInfo(commonSteps), backends: allBackends, run: runRedisPy},
		{name: "ioredis", steps: commonSteps, backends: allBackends, run: runNode("ioredis.js")},
		{name: "node-redis", steps: withInfo(commonSteps), backends: allBackends, run: runNode("node-redis.js")},
	}
}

// TestClients runs the scenario through every client, against a sidecar on
// the embedded store, one on a Redis upstream and one on a Redis Cluster. Each client gets a
// recorder in front of the shared sidecar and lock names of its own.
func TestClients(t *testing.T) {
	for _, b := range allBackends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			sc := startSidecar(t, b)
			for _, c := range clients() {
				if !contains(backendNames(c.backends), string(b)) {
					continue
				}
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					rec := startRecorder(t, sc.addr)
					res, out := c.run(t, rec.addr())
					if t.Failed() { // could not start the client at all
						return
					}
					res.report(t, c.steps, out)
					t.Run("no-error-replies", rec.check)
				})
			}
		})
	}
}

func backendNames(bs []backend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, string(b))
	}
	return out
}

// tokenRE is the token format of docs/PROTOCOL.md.
var tokenRE = regexp.MustCompile(`^[1-9][0-9]*:[0-9a-f]{16}\.[0-9a-f]{32}$`)

// fenceOf checks a token's format and returns its fence.
func fenceOf(token string) (int64, error) {
	if !tokenRE.MatchString(token) {
		return 0, fmt.Errorf("token %q is not <fence>:<32 hex digits>", token)
	}
	return strconv.ParseInt(token[:strings.IndexByte(token, ':')], 10, 64)
}

// checkInfo compares LOCK.INFO fields, given as strings, with want; a ttl
// of ">N" means more than N and at most the ttl asked for is not checked.
func checkInfo(got map[string]string, want map[string]string) error {
	var errs []error
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("LOCK.INFO has no %q (got %v)", k, got))
		case strings.HasPrefix(w, ">"):
			min, _ := strconv.ParseInt(w[1:], 10, 64)
			if n, err := strconv.ParseInt(g, 10, 64); err != nil || n <= min {
				errs = append(errs, fmt.Errorf("LOCK.INFO %s = %q, want %s", k, g, w))
			}
		case g != w:
			errs = append(errs, fmt.Errorf("LOCK.INFO %s = %q, want %q", k, g, w))
		}
	}
	if _, has := got["mode"]; has && want["owner"] != "" && want["owner"] != "self" {
		errs = append(errs, fmt.Errorf("LOCK.INFO has a mode although the owner is %s: %v", want["owner"], got))
	}
	return errors.Join(errs...)
}

// waitUntil polls cond every 10 ms for up to 5 s.
func waitUntil(what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after 5s waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goSteps runs a Go client's steps in order, each recovering from its own
// failure so that the later ones still run.
type goSteps struct {
	res stepResults
	log strings.Builder
}

func (g *goSteps) run(step string, f func() error) {
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return f()
	}()
	if err != nil {
		g.res.set(step, err.Error())
		fmt.Fprintf(&g.log, "FAIL %s: %v\n", step, err)
		return
	}
	g.res.set(step, "")
	fmt.Fprintf(&g.log, "ok %s\n", step)
}

// runScript runs one of the non-Go scenarios with LOCKPROXY_ADDR set and
// parses its step lines. The scenario exits non-zero when a step failed; an
// exit without any step line is reported too.
func runScript(t *testing.T, addr string, name string, args ...string) (*stepResults, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LOCKPROXY_ADDR="+addr)
	cmd.SysProcAttr = sidecarproc.SysProcAttr() // its own process group, for the kill below
	cmd.WaitDelay = 5 * time.Second             // a leftover grandchild must not hold Wait up
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		// The scenario and whatever it started (redis-cli sessions): the
		// process group is the one SysProcAttr made, numbered by its PID.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("%s %v still running after 60s: killed\n%s", name, args, out.String())
	}
	res := parseSteps(out.String())
	if err != nil && len(res.status) == 0 {
		t.Fatalf("%s %v: %v before reporting any step\n%s", name, args, err, out.String())
	}
	failed := false
	for _, failure := range res.status {
		failed = failed || failure != ""
	}
	switch {
	case err == nil && failed:
		t.Errorf("%s %v exited 0 although a step failed", name, args)
	case err != nil && !failed:
		t.Errorf("%s %v: %v although every step it reported passed\n%s", name, args, err, out.String())
	}
	return res, out.String()
}
