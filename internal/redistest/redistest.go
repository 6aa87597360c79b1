// Package redistest starts throwaway redis-server processes for tests.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// readyTimeout bounds how long a freshly started redis-server may take to
	// answer PING; generous because CI machines under -race can be slow.
	readyTimeout = 10 * time.Second
	// pollInterval is short because an empty Redis is usually ready in a few
	// milliseconds and tests start many servers.
	pollInterval = 10 * time.Millisecond
	// stopGrace is how long SIGTERM gets before we fall back to SIGKILL.
	stopGrace = 5 * time.Second
	// bindAttempts covers the window between releasing a probed port and
	// redis-server binding it, in which another process may take it.
	bindAttempts = 5
	// maxSocketPath stays below sun_path (108 on Linux, 104 on macOS).
	maxSocketPath = 100
	// maxClusterPort is the highest port a Cluster node takes: its bus
	// listens 10,000 above it.
	maxClusterPort = 55535
)

const notFoundMsg = "redis-server not found: install it with " +
	"`sudo apt-get install -y redis-server`, or run `make test`, which installs it"

// Options tunes the server started by Start.
type Options struct {
	Args []string // extra redis-server arguments, e.g. {"--maxmemory-policy", "allkeys-lru"}
	// PortArgs are more port arguments, e.g. {"--tls-port"}, each given a
	// free port of its own at every attempt, as the main port is (see
	// Server.Port): a port picked once, ahead of the start, could be taken
	// by then.
	PortArgs []string
	// Env is extra environment for the redis-server process, on top of the
	// test's own, e.g. FakeTime's to run the server's clock behind.
	Env []string
	// Password is set as requirepass. Readiness checks and Client
	// authenticate with it, so a protected server starts like any other.
	Password string
}

// Server is a redis-server child process owned by one test.
type Server struct {
	bin    string
	dir    string
	port   int
	socket string
	args   []string
	extra  map[string]int // PortArgs, by argument
	env    []string
	pass   string
	// lead goes before every other argument: a config file, which
	// redis-server takes only as its first argument, and --sentinel.
	lead []string

	mu   sync.Mutex
	proc *os.Process
	done chan struct{} // closed once the current process has been reaped
}

// errAddrInUse marks a start that failed only because the port was taken,
// which is worth retrying with another port.
var errAddrInUse = errors.New("address already in use")

// Start runs redis-server in t.TempDir() on a free TCP port on 127.0.0.1 and a
// unix socket in the same dir, and stops it in t.Cleanup. It fails the test,
// never skips it, when redis-server is missing: a silently skipped suite
// hides exactly the lock behaviour these servers exist to check.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	s, portArgs := newServer(t, opts)
	s.start(t, portArgs)
	return s
}

// newServer prepares a Server, its dir and its socket path without starting
// it, so that a caller can first write files, such as a config file, into
// its dir.
func newServer(t testing.TB, opts []Options) (s *Server, portArgs []string) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("%s", notFoundMsg)
	}
	s = &Server{bin: bin, dir: t.TempDir(), extra: map[string]int{}}
	for _, o := range opts {
		s.args = append(s.args, o.Args...)
		portArgs = append(portArgs, o.PortArgs...)
		s.env = append(s.env, o.Env...)
		if o.Password != "" {
			s.pass = o.Password
		}
	}
	if s.pass != "" {
		s.args = append(s.args, "--requirepass", s.pass)
	}
	s.socket = filepath.Join(s.dir, "redis.sock")
	if len(s.socket) > maxSocketPath {
		// A long TMPDIR (macOS) or test name can push the path past
		// sun_path, so fall back to a short directory just for the socket.
		sockDir, err := os.MkdirTemp("/tmp", "rt")
		if err != nil {
			t.Fatalf("redistest: socket dir: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(sockDir) })
		s.socket = filepath.Join(sockDir, "redis.sock")
	}
	// Registered before the first launch so that a failing start still
	// reaps whatever it spawned.
	t.Cleanup(s.stop)
	return s, portArgs
}

// start launches the server on a free port, trying other ports while the
// picked one turns out to be taken.
func (s *Server) start(t testing.TB, portArgs []string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		for err == nil && slices.Contains(s.args, "--cluster-enabled") && port > maxClusterPort {
			port, err = freePort()
		}
		if err != nil {
			t.Fatalf("redistest: pick port: %v", err)
		}
		s.port = port
		for _, arg := range portArgs {
			p, err := freePort()
			for err == nil && slices.Contains(s.args, "--cluster-enabled") && p > maxClusterPort {
				p, err = freePort()
			}
			if err != nil {
				t.Fatalf("redistest: pick port: %v", err)
			}
			s.extra[arg] = p
		}
		err = s.launch()
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || attempt == bindAttempts {
			t.Fatalf("redistest: start redis-server: %v\n%s", err, s.logTail())
		}
	}
}

// Port is the port given to one of Options.PortArgs.
func (s *Server) Port(arg string) int { return s.extra[arg] }

// Addr is the TCP address, "127.0.0.1:port"; it survives Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Socket is the unix socket path; it survives Restart.
func (s *Server) Socket() string { return s.socket }

// URL is a redis:// URL for database 0, as lockproxy's config expects.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// PID is the process id of the latest redis-server; it changes on Restart.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}

// Client returns a go-redis client to Addr, closed in t.Cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.pass})
	t.Cleanup(func() { c.Close() })
	return c
}

// Kill simulates a crash: SIGKILL, then wait until the process is reaped so
// that the port is free for Restart. Killing a dead server is a no-op.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

// Restart starts a new redis-server on the same port and socket, stopping the
// current one first if it is still running. Data does not survive: the
// server runs without persistence.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	// No retry on another port: callers hold on to Addr. Redis sets
	// SO_REUSEADDR, so only a real stranger on the port can make this fail.
	if err := s.launch(); err != nil {
		t.Fatalf("redistest: restart redis-server on %s: %v\n%s", s.Addr(), err, s.logTail())
	}
}

// Pause freezes the server with SIGSTOP: connections stay open but nothing is
// answered, like a server stuck in a long fork or a GC-paused host.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
}

// Resume undoes Pause.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
}

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.runningLocked() {
		t.Fatalf("redistest: %v: redis-server is not running", sig)
	}
	if err := s.proc.Signal(sig); err != nil {
		t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// launch starts a process and waits for it to answer PING. On failure the
// process is reaped before returning.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()

	// Logs are appended across restarts, so only output written after this
	// point says why this particular launch failed.
	logStart := s.logSizes()
	out, err := os.OpenFile(filepath.Join(s.dir, "redis.stdout"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := append(slices.Clip(s.lead),
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--unixsocket", s.socket,
		"--unixsocketperm", "700",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
	)
	for arg, port := range s.extra {
		args = append(args, arg, strconv.Itoa(port))
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	// Fatal config errors are printed before the logfile is opened.
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = s.dir
	if len(s.env) > 0 {
		// Later entries win, so s.env overrides the test's own.
		cmd.Env = append(os.Environ(), s.env...)
	}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		// The only reaper of this process: everything else waits on done
		// instead of calling Wait, so it is reaped exactly once.
		cmd.Wait()
		out.Close()
		close(done)
	}()
	s.proc, s.done = cmd.Process, done

	if err := s.waitReady(done); err != nil {
		s.killLocked()
		if s.logSince(logStart, "already in use") {
			return fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return err
	}
	return nil
}

// waitReady polls until the server answers PING over both transports. The
// unix socket goes first because its path is private to this server: a PONG
// from the TCP port alone might come from a stranger that grabbed the port
// while our server is about to exit on "Address already in use".
func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		select {
		case <-done:
			return errors.New("redis-server exited during startup")
		default:
		}
		if lastErr = ping("unix", s.socket, s.pass); lastErr == nil {
			if lastErr = ping("tcp", s.Addr(), s.pass); lastErr == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not answer PING within %v: %v", readyTimeout, lastErr)
		}
		select {
		case <-done:
		case <-time.After(pollInterval):
		}
	}
}

// ping speaks raw RESP so readiness does not depend on client pooling,
// retries or handshakes. A password is sent with AUTH first.
func ping(network, addr, password string) error {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(c)
	if password != "" {
		auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		if _, err := c.Write([]byte(auth)); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if line != "+OK\r\n" {
			return fmt.Errorf("AUTH answered %q", strings.TrimSpace(line))
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// running reports whether the process is up, paused or not: false after
// Kill until Restart.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runningLocked()
}

func (s *Server) runningLocked() bool {
	if s.proc == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) killLocked() {
	if !s.runningLocked() {
		return
	}
	s.proc.Signal(syscall.SIGKILL)
	<-s.done
}

// stop is the t.Cleanup hook.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// stopLocked asks politely, then insists. It signals only our own PID, never
// the process group, so nothing else can be hit if the PID is reused.
func (s *Server) stopLocked() {
	if !s.runningLocked() {
		return
	}
	s.proc.Signal(syscall.SIGTERM)
	// A paused server cannot act on SIGTERM until it is continued.
	s.proc.Signal(syscall.SIGCONT)
	select {
	case <-s.done:
	case <-time.After(stopGrace):
		s.killLocked()
	}
}

// logTail returns the end of the server's output for failure messages.
func (s *Server) logTail() string {
	var b bytes.Buffer
	for _, name := range logFiles {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-20):]
		fmt.Fprintf(&b, "--- tail of %s ---\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}

var logFiles = []string{"redis.stdout", "redis.log"}

// logSizes snapshots the size of each output file, in logFiles order.
func (s *Server) logSizes() []int64 {
	sizes := make([]int64, len(logFiles))
	for i, name := range logFiles {
		if fi, err := os.Stat(filepath.Join(s.dir, name)); err == nil {
			sizes[i] = fi.Size()
		}
	}
	return sizes
}

// logSince reports whether output written after the snapshot mentions substr.
func (s *Server) logSince(sizes []int64, substr string) bool {
	for i, name := range logFiles {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil || int64(len(data)) < sizes[i] {
			continue
		}
		if bytes.Contains(data[sizes[i]:], []byte(substr)) {
			return true
		}
	}
	return false
}

// freePort asks the kernel for an unused port. Redis cannot do this itself:
// --port 0 means "no TCP", not "any port".
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
