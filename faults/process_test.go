//go:build linux

package faults

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/respclient"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// childAttr puts a child in its own process group, so that a Ctrl-C on the
// test does not hit it mid-test, and kills it if the test binary dies
// without running its cleanups.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// sidecar is one lockproxy process.
type sidecar struct {
	id      string
	addr    string // RESP
	metrics string // HTTP: /readyz
	cmd     *exec.Cmd
	logs    *syncbuf.Buffer // stdout and stderr
	exited  chan struct{}
	exitErr error // read after exited
}

// startSidecar runs lockproxy with the given LOCKPROXY_* settings (keys
// without the prefix) on top of a few defaults fit for tests, and waits
// until /readyz says it serves and sees its upstream. It is stopped at
// cleanup, and its log printed if the test failed.
//
// Both listeners bind 127.0.0.1:0: a port picked here and bound by the
// child later could be taken in between (by another test's server, or as
// the local port of any outgoing connection). The RESP address comes from
// the "lockproxy started" log line, the metrics address from the child's
// own listening sockets.
func startSidecar(t testing.TB, id string, settings map[string]string) *sidecar {
	t.Helper()
	sc := &sidecar{id: id, logs: &syncbuf.Buffer{}, exited: make(chan struct{})}
	env := map[string]string{
		"LISTEN": "127.0.0.1:0", "METRICS_LISTEN": "127.0.0.1:0", "LOG_FORMAT": "json",
		"QUIET_PERIOD": "2s", "MAX_TTL": "1m", "UPSTREAM_TIMEOUT": "1s", "SHUTDOWN_TIMEOUT": "5s",
	}
	for k, v := range settings {
		env[k] = v
	}
	sc.cmd = exec.Command(lockproxyBin)
	for k, v := range env {
		sc.cmd.Env = append(sc.cmd.Env, "LOCKPROXY_"+k+"="+v)
	}
	sc.cmd.Stdout, sc.cmd.Stderr = sc.logs, sc.logs
	sc.cmd.SysProcAttr = childAttr()
	if err := sc.cmd.Start(); err != nil {
		t.Fatalf("start lockproxy: %v", err)
	}
	go func() {
		sc.exitErr = sc.cmd.Wait()
		close(sc.exited)
	}()
	t.Cleanup(func() {
		sc.stop()
		if t.Failed() {
			t.Logf("sidecar %s (pid %d) log, last lines:\n%s", sc.id, sc.pid(), sc.logs.Tail(60))
		}
	})
	if err := sc.waitReady(10 * time.Second); err != nil {
		t.Fatalf("sidecar %s: %v", id, err)
	}
	return sc
}

// waitReady learns the sidecar's addresses once it has logged its start,
// then waits until its /readyz answers 200.
func (sc *sidecar) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := http.Client{Timeout: time.Second}
	for {
		select {
		case <-sc.exited:
			return fmt.Errorf("exited during start-up: %v", sc.exitErr)
		default:
		}
		if sc.addr == "" {
			if addr := startedOn(sc.logs.String()); addr != "" {
				metrics, err := otherListener(sc.pid(), addr)
				if err != nil {
					select {
					case <-sc.exited: // its /proc is gone: say why
						return fmt.Errorf("exited during start-up: %v", sc.exitErr)
					default:
						return err
					}
				}
				sc.addr, sc.metrics = addr, metrics
			}
		}
		if sc.metrics != "" {
			if resp, err := client.Get("http://" + sc.metrics + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startedOn is the RESP address of the "lockproxy started" line in a JSON
// log, or "" before it is written (it is, once every listener is bound).
func startedOn(log string) string {
	for _, line := range strings.Split(log, "\n") {
		var rec struct{ Msg, Listen string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "lockproxy started" {
			return rec.Listen
		}
	}
	return ""
}

// otherListener is the one IPv4 TCP address that process pid listens on
// besides addr: a sidecar's metrics listener, found in /proc by the inodes
// of its socket descriptors.
func otherListener(pid int, addr string) (string, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return "", err
	}
	sockets := map[string]bool{}
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			sockets[strings.TrimSuffix(inode, "]")] = true
		}
	}
	tcp, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return "", err
	}
	var found []string
	for _, line := range strings.Split(string(tcp), "\n")[1:] {
		// sl local_address rem_address st ... inode; the port is hex.
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" || !sockets[f[9]] {
			continue // not one of its sockets in LISTEN
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		port, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return "", fmt.Errorf("/proc/%d/net/tcp: %q", pid, line)
		}
		if a := "127.0.0.1:" + strconv.FormatUint(port, 10); a != addr {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("listening on %v besides RESP's %s, want one metrics address", found, addr)
	}
	return found[0], nil
}

func (sc *sidecar) pid() int { return sc.cmd.Process.Pid }

func (sc *sidecar) running() bool {
	select {
	case <-sc.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to this process only (by PID, never its group).
func (sc *sidecar) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := sc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sidecar %s: %v: %v", sc.id, sig, err)
	}
}

// kill is SIGKILL, waiting until the process is reaped.
func (sc *sidecar) kill(t testing.TB) {
	t.Helper()
	sc.signal(t, syscall.SIGKILL)
	<-sc.exited
}

// stop asks with SIGTERM (after SIGCONT, in case it is stopped), and
// insists with SIGKILL after the shutdown timeout's worth of patience.
func (sc *sidecar) stop() {
	if !sc.running() {
		return
	}
	_ = sc.cmd.Process.Signal(syscall.SIGCONT)
	_ = sc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sc.exited:
	case <-time.After(10 * time.Second):
		_ = sc.cmd.Process.Signal(syscall.SIGKILL)
		<-sc.exited
	}
}

// info returns INFO's fields as a map, through a connection of its own.
func (sc *sidecar) info(t testing.TB) map[string]string {
	t.Helper()
	c, err := respclient.DialTimed(sc.addr, 5*time.Second, nil, nil)
	if err != nil {
		t.Fatalf("sidecar %s: %v", sc.id, err)
	}
	defer c.Close()
	v, _, err := c.Do(5*time.Second, "INFO", "all")
	if err != nil || v.IsErr() {
		t.Fatalf("sidecar %s: INFO: %v %v", sc.id, v, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimPrefix(v.Str, "txt:"), "\r\n") {
		if k, val, ok := strings.Cut(line, ":"); ok {
			m[k] = val
		}
	}
	return m
}

// lostTotal is INFO's locks_lost_total.
func (sc *sidecar) lostTotal(t testing.TB) int64 {
	t.Helper()
	n, err := strconv.ParseInt(sc.info(t)["locks_lost_total"], 10, 64)
	if err != nil {
		t.Fatalf("sidecar %s: locks_lost_total: %v", sc.id, err)
	}
	return n
}

// rss is the process's resident set size in bytes.
func (sc *sidecar) rss(t testing.TB) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sc.pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// proc is a client process (see clientProcess), driven over its stdin.
type proc struct {
	id     string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncbuf.Buffer
	exited chan struct{}

	mu      sync.Mutex
	lines   []procLine    // guarded by mu; unconsumed output
	changed chan struct{} // guarded by mu; closed when lines grows
}

// procLine is one line a client process printed.
type procLine struct {
	kind       string    // reply, push, fenced, ready, error
	sent, recv time.Time // reply, fenced: sent and received; push: recv
	rest       string    // the value, or "NAME TOKEN" for a push
}

// startProc starts a client process connected to sc, and waits until it
// has said HELLO.
func startProc(t testing.TB, id string, sc *sidecar, res string) *proc {
	t.Helper()
	p := &proc{id: id, stderr: &syncbuf.Buffer{}, exited: make(chan struct{}), changed: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), procEnv+"="+sc.addr, resourceEnv+"="+res)
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = childAttr()
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.add(parseProcLine(sc.Text()))
		}
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("client process %s stderr:\n%s", p.id, p.stderr.Tail(20))
		}
	})
	p.next(t, "ready", 10*time.Second)
	return p
}

func parseProcLine(s string) procLine {
	kind, rest, _ := strings.Cut(s, " ")
	l := procLine{kind: kind, rest: rest}
	stamp := func() {
		f, r, _ := strings.Cut(l.rest, " ")
		n, _ := strconv.ParseInt(f, 10, 64)
		l.rest = r
		if l.sent.IsZero() && kind != "push" {
			l.sent = time.Unix(0, n)
		} else {
			l.recv = time.Unix(0, n)
		}
	}
	switch kind {
	case "reply", "fenced":
		stamp()
		stamp()
	case "push":
		stamp()
	}
	return l
}

func (p *proc) add(l procLine) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, l)
	close(p.changed)
	p.changed = make(chan struct{})
}

// send writes one command line to the process.
func (p *proc) send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("client process %s: %v", p.id, err)
	}
}

// next consumes the first line of kind, waiting up to timeout for it.
func (p *proc) next(t testing.TB, kind string, timeout time.Duration) procLine {
	t.Helper()
	l, err := p.await(kind, timeout)
	if err != nil {
		t.Fatalf("client process %s: %v", p.id, err)
	}
	return l
}

func (p *proc) await(kind string, timeout time.Duration) (procLine, error) {
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for i, l := range p.lines {
			if l.kind == kind {
				p.lines = append(p.lines[:i], p.lines[i+1:]...)
				p.mu.Unlock()
				return l, nil
			}
			if l.kind == "error" {
				p.mu.Unlock()
				return l, errors.New(l.rest)
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.exited:
			return procLine{}, fmt.Errorf("exited before printing %q", kind)
		case <-deadline:
			return procLine{}, fmt.Errorf("no %q line within %v", kind, timeout)
		}
	}
}

// printed reports whether the process printed a line of kind not yet
// consumed.
func (p *proc) printed(kind string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if l.kind == kind {
			return true
		}
	}
	return false
}

func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("client process %s: %v: %v", p.id, sig, err)
	}
}
