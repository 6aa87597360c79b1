// Package sidecarproc runs the lockproxy binary as a child process, for the
// test suites that drive it from other languages' clients (compat,
// clients/node, clients/python): it builds the binary once, starts it on a
// port of its own, learns the port from its start-up log, and stops it by
// its own PID.
package sidecarproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// Build compiles cmd/lockproxy into dir and returns the binary's path. A
// test package calls it from TestMain, once for all its tests.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "lockproxy")
	out, err := exec.Command(goTool(), "build", "-o", bin, "github.com/lockproxy/lockproxy/cmd/lockproxy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/lockproxy: %v\n%s", err, out)
	}
	return bin, nil
}

// Main is a TestMain for a package whose tests start sidecars: it builds
// the binary into a temporary directory, sets *bin to it, runs the tests
// and exits with their code. pkg names the package in errors.
func Main(m *testing.M, pkg string, bin *string) {
	dir, err := os.MkdirTemp("", "lockproxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, pkg+":", err)
		os.Exit(2)
	}
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, pkg+":", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// FileExists reports whether path names a file.
func FileExists(path string) bool { return fileExists(path) }

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

// Process is a lockproxy child owned by one test.
type Process struct {
	Addr string // host:port it listens on
	cmd  *exec.Cmd
	logs *syncbuf.Buffer
	done chan struct{} // closed once the process has been reaped
}

// Start runs bin on 127.0.0.1:0, on the embedded store unless env says
// otherwise (later entries win), and stops it at cleanup. The test's own
// LOCKPROXY_* variables are left out: they would configure it. It learns the
// port from the "lockproxy started" log line, so no port is probed and
// raced for.
func Start(t testing.TB, bin string, env ...string) *Process {
	t.Helper()
	p := &Process{logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(append(WithoutLockproxyEnv(os.Environ()), "LOCKPROXY_LISTEN=127.0.0.1:0",
		"LOCKPROXY_LOG_FORMAT=json", "LOCKPROXY_LOG_LEVEL=info"), env...)
	p.cmd.SysProcAttr = SysProcAttr()
	p.cmd.Stdout = p.logs
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start lockproxy: %v", err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.logs.Write(append(bytes.Clone(line), '\n'))
			var rec struct{ Msg, Listen string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "lockproxy started" {
				select {
				case listening <- rec.Listen:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.cmd.Wait() // the only reaper of this process
		close(p.done)
	}()
	t.Cleanup(func() { p.Stop(t) })
	select {
	case p.Addr = <-listening:
	case <-p.done:
		t.Fatalf("lockproxy exited during start-up:\n%s", p.logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("lockproxy did not log \"lockproxy started\" within 15s:\n%s", p.logs)
	}
	return p
}

// Stop sends SIGTERM to the child, then SIGKILL if it is still there after
// a few seconds, and shows the end of its log when the test failed. Later
// calls wait for nothing.
func (p *Process) Stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("lockproxy (pid %d) ignored SIGTERM for 5s: killed", p.cmd.Process.Pid)
	}
	if t.Failed() {
		t.Logf("lockproxy log:\n%s", p.logs.Tail(200))
	}
}

// WithoutLockproxyEnv drops LOCKPROXY_* variables from environ, which
// would configure a sidecar, or point tests elsewhere.
func WithoutLockproxyEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "LOCKPROXY_") {
			out = append(out, kv)
		}
	}
	return out
}

// Logs is everything the child has logged so far.
func (p *Process) Logs() string { return p.logs.String() }
