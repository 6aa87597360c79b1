package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
)

// childEnv marks the test binary re-executed as a lockproxy process, so
// benchmarks measure the sidecar in a process of its own (its RSS, its
// scheduling) rather than inside the benchmark.
const childEnv = "GO_WANT_LOCKPROXY_CHILD" // not LOCKPROXY_*: the child would warn of an unknown setting

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// child is a lockproxy running as a separate process.
type child struct {
	addr    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been reaped
	exitErr error         // its exit, once exited is closed
}

// wait waits for the process to exit and returns how it did.
func (c *child) wait() error {
	<-c.exited
	return c.exitErr
}

// startChild runs lockproxy in its own process and waits until it answers.
func startChild(b testing.TB, settings map[string]string) *child {
	b.Helper()
	return startChildTo(b, settings, os.Stderr)
}

// startChildTo is startChild with the process's stderr going to stderr.
// The child listens on a port of its own choosing, which its "lockproxy
// started" log line tells: a port picked here and bound there could be
// taken in between, and a PING could then reach a stranger.
func startChildTo(b testing.TB, settings map[string]string, stderr io.Writer) *child {
	b.Helper()
	watch := &startedWatch{w: stderr, addr: make(chan string, 1)}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", "LOCKPROXY_LISTEN=127.0.0.1:0", "LOCKPROXY_LOG_LEVEL=info")
	for k, v := range settings {
		cmd.Env = append(cmd.Env, "LOCKPROXY_"+k+"="+v)
	}
	cmd.Stderr = watch
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.exitErr = cmd.Wait()
		close(c.exited)
	}()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = c.wait()
	})
	select {
	case c.addr = <-watch.addr:
	case <-c.exited:
		b.Fatalf("child lockproxy exited before it started: %v", c.exitErr)
	case <-time.After(10 * time.Second):
		b.Fatal("child lockproxy did not start within 10s")
	}
	return c
}

// startedWatch passes a child's log on to w, but for its info lines, and
// sends the address of the "lockproxy started" line to addr.
type startedWatch struct {
	w    io.Writer
	addr chan string
	mu   sync.Mutex
	part []byte // guarded by mu; a line not yet ended
	seen bool   // guarded by mu
}

func (s *startedWatch) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.part = append(s.part, p...)
	for {
		i := strings.IndexByte(string(s.part), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(s.part[:i+1])
		s.part = s.part[i+1:]
		if addr, ok := startedAddr(line); ok && !s.seen {
			s.seen = true
			s.addr <- addr
		}
		if !strings.Contains(line, "level=INFO") && !strings.Contains(line, `"level":"INFO"`) {
			_, _ = io.WriteString(s.w, line)
		}
	}
}

// startedAddr is the listen address of a "lockproxy started" log line,
// text or JSON.
func startedAddr(line string) (string, bool) {
	if !strings.Contains(line, "lockproxy started") {
		return "", false
	}
	for _, key := range []string{"listen=", `"listen":"`} {
		if _, rest, ok := strings.Cut(line, key); ok {
			return strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '"' })[0], true
		}
	}
	return "", false
}

// rss is the child's resident set size in bytes.
func (c *child) rss(b testing.TB) int64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

const benchConns = 32

// BenchmarkAcquireRelease measures uncontended acquire+release pairs per
// second with 32 connections: straight EVALSHA of the same scripts to
// redis-server (the baseline), through the sidecar on that redis-server,
// and through the sidecar on its embedded store. Each connection has its
// own lock name.
func BenchmarkAcquireRelease(b *testing.B) {
	srv := redistest.Start(b)

	b.Run("direct-evalsha", func(b *testing.B) {
		rdb, err := redisstore.NewClient(srv.URL() + "?pool_size=" + strconv.Itoa(benchConns))
		if err != nil {
			b.Fatal(err)
		}
		store, _ := redisstore.New(rdb, redisstore.Options{Prefix: "bench:"})
		defer store.Close()
		var next atomic.Int64
		runPairs(b, func() func() error {
			name := "direct-" + strconv.FormatInt(next.Add(1), 10)
			ctx := context.Background()
			return func() error {
				g, err := store.Acquire(ctx, lockcore.AcquireRequest{Name: name, Nonce: "nonce-" + name, TTL: 30 * time.Second})
				if err != nil || !g.Acquired {
					return fmt.Errorf("acquire: %v %v", g, err)
				}
				_, err = store.Release(ctx, lockcore.ReleaseRequest{Name: name, Token: g.Token})
				return err
			}
		})
	})
	for _, tc := range []struct {
		name     string
		settings map[string]string
	}{
		{"sidecar-redis", map[string]string{"UPSTREAM": srv.URL() + "?pool_size=" + strconv.Itoa(benchConns)}},
		{"sidecar-embedded", map[string]string{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := startChild(b, tc.settings)
			rdb := redis.NewClient(&redis.Options{Addr: c.addr, Protocol: 2, PoolSize: benchConns})
			defer rdb.Close()
			var next atomic.Int64
			runPairs(b, func() func() error {
				conn := rdb.Conn()
				name := tc.name + "-" + strconv.FormatInt(next.Add(1), 10)
				ctx := context.Background()
				return func() error {
					if err := conn.Do(ctx, "LOCK.ACQUIRE", name).Err(); err != nil {
						return err
					}
					n, err := conn.Do(ctx, "LOCK.RELEASE", name).Int()
					if n != 1 {
						return fmt.Errorf("release = %d, %v", n, err)
					}
					return err
				}
			})
		})
	}
}

// runPairs runs b.N pairs spread over benchConns workers, each made by
// newWorker, and reports pairs/s.
func runPairs(b *testing.B, newWorker func() func() error) {
	workers := make([]func() error, benchConns)
	for i := range workers {
		workers[i] = newWorker()
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, w := range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := w(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pairs/s")
}

// BenchmarkRSSHeldLocks reports the sidecar's resident memory while it
// holds 10,000 owned locks (each renewed in the background), against the
// same process idle, spread as 100 connections × 100 locks and as 10,000
// connections × 1 lock. The timed loop is a LOCK.INFO, for scale.
func BenchmarkRSSHeldLocks(b *testing.B) {
	srv := redistest.Start(b)
	for _, shape := range []struct{ conns, perConn int }{{100, 100}, {10000, 1}} {
		b.Run(fmt.Sprintf("%dx%d", shape.conns, shape.perConn), func(b *testing.B) {
			c := startChild(b, map[string]string{"UPSTREAM": srv.URL(), "MAX_CLIENTS": "20000"})
			idle := c.rss(b)
			ctx := context.Background()
			conns := make([]net.Conn, shape.conns)
			for i := range conns {
				nc, err := net.Dial("tcp", c.addr)
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				conns[i] = nc
			}
			// Pipeline each connection's acquires, then read the replies.
			var wg sync.WaitGroup
			for i, nc := range conns {
				wg.Go(func() {
					var req strings.Builder
					for j := range shape.perConn {
						name := "rss-" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
						fmt.Fprintf(&req, "*3\r\n$12\r\nLOCK.ACQUIRE\r\n$%d\r\n%s\r\n$5\r\n30000\r\n", len(name), name)
					}
					if _, err := nc.Write([]byte(req.String())); err != nil {
						b.Error(err)
						return
					}
					buf := make([]byte, 64<<10)
					lines := 0
					for lines < 2*shape.perConn {
						n, err := nc.Read(buf)
						if err != nil {
							b.Error(err)
							return
						}
						lines += strings.Count(string(buf[:n]), "\n")
					}
				})
			}
			wg.Wait()
			direct := srv.Client(b)
			if n := len(direct.Keys(ctx, "lock:{rss-*}").Val()); n != shape.conns*shape.perConn {
				b.Fatalf("%d lock keys in Redis, want %d", n, shape.conns*shape.perConn)
			}
			held := c.rss(b)

			rdb := redis.NewClient(&redis.Options{Addr: c.addr, Protocol: 2})
			defer rdb.Close()
			for b.Loop() {
				if err := rdb.Do(ctx, "LOCK.INFO", "rss-0-0").Err(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(idle)/(1<<20), "idle-MiB")
			b.ReportMetric(float64(held)/(1<<20), "held-MiB")
			b.ReportMetric(float64(held-idle)/float64(shape.conns*shape.perConn), "bytes/lock")
			for _, nc := range conns {
				nc.Close()
			}
			// Give the keys back before the next shape runs on the same Redis.
			deadline := time.Now().Add(30 * time.Second)
			for len(direct.Keys(ctx, "lock:{rss-*}").Val()) > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// BenchmarkReplicaAcks measures acquire+release pairs through the sidecar
// on a Redis with one replica, with LOCKPROXY_REPLICA_ACKS=0 and =1, and
// reports the acquire's latency percentiles: what waiting for a replica
// costs. Run with -count to alternate the two.
func BenchmarkReplicaAcks(b *testing.B) {
	primary := redistest.Start(b)
	redistest.StartReplica(b, primary)
	for _, acks := range []string{"0", "1"} {
		b.Run("acks="+acks, func(b *testing.B) {
			c := startChild(b, map[string]string{"UPSTREAM": primary.URL() + "?pool_size=" + strconv.Itoa(benchConns), "REPLICA_ACKS": acks})
			cl := redis.NewClient(&redis.Options{Addr: c.addr, Protocol: 2, PoolSize: benchConns})
			defer cl.Close()
			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			runPairs(b, func() func() error {
				conn := cl.Conn()
				name := "acks" + acks + "-" + strconv.FormatInt(next.Add(1), 10)
				ctx := context.Background()
				return func() error {
					start := time.Now()
					if err := conn.Do(ctx, "LOCK.ACQUIRE", name).Err(); err != nil {
						return err
					}
					took := time.Since(start)
					mu.Lock()
					lat = append(lat, took)
					mu.Unlock()
					if n, err := conn.Do(ctx, "LOCK.RELEASE", name).Int(); n != 1 {
						return fmt.Errorf("release = %d, %v", n, err)
					}
					return nil
				}
			})
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkClusterPrimaries runs uncontended acquire+release pairs over
// many names (32 connections, each cycling through 64 names of its own),
// through one sidecar on a Redis Cluster of 1 primary and then of 3, in
// the same run, and reports each primary's CPU use (INFO's used_cpu_user +
// used_cpu_sys over the timed run, as a % of one CPU). With
// BENCH_REDIS_CPU set (e.g. 1), every redis-server is pinned to that CPU
// list; run the benchmark itself under taskset for the sidecar's CPU.
func BenchmarkClusterPrimaries(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run("primaries="+strconv.Itoa(n), func(b *testing.B) {
			cl := redistest.StartClusterWith(b, redistest.ClusterOptions{Masters: n})
			if cpus := os.Getenv("BENCH_REDIS_CPU"); cpus != "" {
				for _, s := range cl.Nodes {
					if out, err := exec.Command("taskset", "-p", "-c", cpus, strconv.Itoa(s.PID())).CombinedOutput(); err != nil {
						b.Fatalf("taskset: %v: %s", err, out)
					}
				}
			}
			// One node's URL has no query yet; auto finds it a Cluster's.
			sep := "&"
			if n == 1 {
				sep = "?"
			}
			c := startChild(b, map[string]string{"UPSTREAM": cl.URL() + sep + "pool_size=" + strconv.Itoa(benchConns)})
			rc := redis.NewClient(&redis.Options{Addr: c.addr, Protocol: 2, PoolSize: benchConns})
			defer rc.Close()
			cpu := func() []float64 {
				out := make([]float64, n)
				for i, s := range cl.Nodes {
					info, err := s.Client(b).Info(context.Background(), "cpu").Result()
					if err != nil {
						b.Fatal(err)
					}
					for _, line := range strings.Split(info, "\r\n") {
						if k, v, ok := strings.Cut(line, ":"); ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
							f, _ := strconv.ParseFloat(v, 64)
							out[i] += f
						}
					}
				}
				return out
			}
			var next atomic.Int64
			before, start := cpu(), time.Now()
			runPairs(b, func() func() error {
				conn := rc.Conn()
				w := strconv.FormatInt(next.Add(1), 10)
				k := 0
				ctx := context.Background()
				return func() error {
					k++
					name := "spread-" + w + "-" + strconv.Itoa(k%64)
					if err := conn.Do(ctx, "LOCK.ACQUIRE", name).Err(); err != nil {
						return err
					}
					if v, err := conn.Do(ctx, "LOCK.RELEASE", name).Int(); v != 1 {
						return fmt.Errorf("release = %d, %v", v, err)
					}
					return nil
				}
			})
			took := time.Since(start).Seconds()
			for i, after := range cpu() {
				b.ReportMetric(100*(after-before[i])/took, "cpu%-primary"+strconv.Itoa(i+1))
			}
		})
	}
}
