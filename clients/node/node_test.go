// Package node_test runs the tests of the Node.js client (the npm package
// "lockproxy" in this folder) with `node --test` against real lockproxy
// sidecars: one on the embedded store, one on a redis-server of its own.
// It builds the package (npm run build, npm run build:test) first, so the
// tests always run the current sources. Node.js, npm and this folder's
// node_modules (`make deps`) are required: without them the test fails, it
// never skips.
package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/sidecarproc"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// lockproxyBin is the binary TestMain builds once.
var lockproxyBin string

func TestMain(m *testing.M) { sidecarproc.Main(m, "clients/node", &lockproxyBin) }

// TestNodeClient builds the package and runs every test/*.test.{cjs,mjs}
// file against each store.
func TestNodeClient(t *testing.T) {
	node := need(t, "node")
	npm := need(t, "npm")
	checkNodeModules(t)

	// The tests import the package by its name, which resolves to dist/
	// through package.json's exports, and load the NestJS test application
	// from test/build: build both from the current sources.
	runNpm(t, npm, "run", "build")
	runNpm(t, npm, "run", "build:test")

	files, err := filepath.Glob(filepath.Join("test", "*.test.*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test/*.test.* files (%v)", err)
	}
	for _, b := range []backend{embedded, upstream} {
		t.Run(string(b), func(t *testing.T) {
			admin := randomHex(t, 16)
			s := startSidecar(t, b, "LOCKPROXY_ADMIN_PASSWORD="+admin)
			out, err := runNodeTests(t, node, files,
				"LOCKPROXY_URL=redis://"+s.addr, "LOCKPROXY_ADMIN_PASSWORD="+admin)
			sum := tapSummary(out)
			if err != nil {
				t.Fatalf("node --test on the %s store: %v (%s)\nfailed:\n%s\n\nfull output:\n%s",
					b, err, sum, strings.Join(notOK(out), "\n"), out)
			}
			if !strings.Contains(sum, "pass ") || strings.Contains(sum, "pass 0") {
				t.Fatalf("node --test ran no test on the %s store (%s):\n%s", b, sum, out)
			}
			t.Logf("node --test on the %s store: %s", b, sum)
		})
	}
}

// need returns the path of tool, or fails the test with how to install it.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install Node.js and npm (`sudo apt-get install -y nodejs npm`), or run `make deps`", tool)
	}
	return p
}

// checkNodeModules fails the test when `npm ci` has not installed this
// folder's package-lock.json.
func checkNodeModules(t *testing.T) {
	t.Helper()
	const fix = "run `make deps` (or `npm ci --prefix clients/node`)"
	for _, pkg := range []string{"ioredis", "typescript", "@nestjs/common", "@nestjs/core", "reflect-metadata", "rxjs"} {
		if !sidecarproc.FileExists(filepath.Join("node_modules", pkg, "package.json")) {
			t.Fatalf("clients/node/node_modules/%s is missing: %s", pkg, fix)
		}
	}
	lock, err1 := os.Stat("package-lock.json")
	installed, err2 := os.Stat(filepath.Join("node_modules", ".package-lock.json"))
	if err1 != nil || err2 != nil {
		t.Fatalf("clients/node/node_modules was not installed from package-lock.json (%v): %s", errors.Join(err1, err2), fix)
	}
	if lock.ModTime().After(installed.ModTime()) {
		t.Fatalf("clients/node/node_modules is older than package-lock.json: %s", fix)
	}
}

// runNpm runs npm in this folder, where package.json is.
func runNpm(t *testing.T, npm string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, append([]string{"--silent"}, args...)...)
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm %s in clients/node: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// runNodeTests runs node's test runner on files, with env added, in a
// process group of its own (node --test starts a process per file), which
// it kills if it runs for more than 5 minutes.
func runNodeTests(t *testing.T, node string, files []string, env ...string) (string, error) {
	t.Helper()
	args := append([]string{"--test", "--test-reporter=tap"}, files...)
	cmd := exec.Command(node, args...)
	cmd.Env = append(sidecarproc.WithoutLockproxyEnv(os.Environ()), env...)
	cmd.SysProcAttr = sidecarproc.SysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node --test: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(5 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), errors.New("still running after 5 minutes: killed")
	}
}

var tapCount = regexp.MustCompile(`(?m)^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$`)

// tapSummary is the counts at the end of node's TAP report: "tests 40,
// pass 40, fail 0, …".
func tapSummary(out string) string {
	var parts []string
	for _, m := range tapCount.FindAllStringSubmatch(out, -1) {
		parts = append(parts, m[1]+" "+m[2])
	}
	if len(parts) == 0 {
		return "no TAP summary"
	}
	return strings.Join(parts, ", ")
}

// notOK is the TAP lines of failed tests.
func notOK(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "not ok ") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// backend is the store a sidecar keeps its locks in.
type backend string

const (
	embedded backend = "embedded" // no LOCKPROXY_UPSTREAM
	upstream backend = "redis"    // a redis-server of the test's own
)

// sidecar is a lockproxy child process owned by one test.
type sidecar struct {
	addr string // host:port it listens on
	*sidecarproc.Process
}

// startSidecar runs the lockproxy binary with the given store and
// settings, stopped at cleanup (see sidecarproc.Start).
func startSidecar(t *testing.T, b backend, settings ...string) *sidecar {
	t.Helper()
	var env []string
	if b == upstream {
		env = append(env, "LOCKPROXY_UPSTREAM="+redistest.Start(t).URL())
	}
	p := sidecarproc.Start(t, lockproxyBin, append(env, settings...)...)
	return &sidecar{addr: p.Addr, Process: p}
}
