package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
)

// noRetry fails fast so that a dead or paused server shows up as an error
// instead of go-redis quietly retrying past it.
func noRetry(network, addr string) *redis.Options {
	return &redis.Options{
		Network:     network,
		Addr:        addr,
		MaxRetries:  -1,
		DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond,
	}
}

func newClient(t *testing.T, o *redis.Options) *redis.Client {
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStartAnswersOnTCPAndUnixSocket(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Args: []string{"--maxmemory-policy", "allkeys-lru"}})
	ctx := context.Background()

	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over TCP: %v", err)
	}
	unix := newClient(t, &redis.Options{Network: "unix", Addr: s.Socket()})
	if err := unix.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over unix socket: %v", err)
	}

	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s.URL(), err)
	}
	if opt.Addr != s.Addr() || opt.DB != 0 {
		t.Fatalf("URL %q parses to %s db %d, want %s db 0", s.URL(), opt.Addr, opt.DB, s.Addr())
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":6379") {
		t.Fatalf("Addr() = %q, want a private port on 127.0.0.1", s.Addr())
	}

	policy, err := s.Client(t).ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		t.Fatal(err)
	}
	if policy["maxmemory-policy"] != "allkeys-lru" {
		t.Fatalf("Options.Args not applied: maxmemory-policy = %q", policy["maxmemory-policy"])
	}
	persistence, err := s.Client(t).ConfigGet(ctx, "save").Result()
	if err != nil {
		t.Fatal(err)
	}
	if persistence["save"] != "" {
		t.Fatalf("save = %q, want persistence off", persistence["save"])
	}
}

// A server with a password starts (its readiness check authenticates),
// refuses clients without it, and Client and Restart use it.
func TestPassword(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "a secret"})
	ctx := context.Background()
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING through Client: %v", err)
	}
	if err := newClient(t, noRetry("tcp", s.Addr())).Ping(ctx).Err(); err == nil {
		t.Fatal("PING without the password succeeded")
	}
	s.Restart(t)
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING through Client after Restart: %v", err)
	}
}

func TestKillThenRestartOnSameAddr(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	ctx := context.Background()
	tcp := newClient(t, noRetry("tcp", s.Addr()))
	if err := tcp.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	oldPID := s.PID()

	s.Kill(t)
	if err := tcp.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	if err := syscall.Kill(oldPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("killed pid %d still exists (zombie?): kill(0) = %v", oldPID, err)
	}
	s.Kill(t) // idempotent

	s.Restart(t)
	if s.PID() == oldPID || s.PID() == 0 {
		t.Fatalf("PID after Restart = %d, old %d", s.PID(), oldPID)
	}
	// A fresh client proves the address itself is reused, independent of
	// go-redis reconnect logic.
	fresh := newClient(t, noRetry("tcp", s.Addr()))
	if err := fresh.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	unix := newClient(t, noRetry("unix", s.Socket()))
	if err := unix.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over unix socket after Restart: %v", err)
	}
	if n, err := fresh.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS k after crash = %d, %v; want 0 (no persistence)", n, err)
	}

	// Restart of a running server replaces it.
	s.Restart(t)
	if err := newClient(t, noRetry("tcp", s.Addr())).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after second Restart: %v", err)
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := newClient(t, noRetry("tcp", s.Addr()))
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}

	s.Pause(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := c.Ping(ctx).Err()
	cancel()
	if err == nil {
		t.Fatal("PING succeeded while paused")
	}

	s.Resume(t)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}

func TestCleanupReapsProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, s *redistest.Server)
	}{
		{"running", func(*testing.T, *redistest.Server) {}},
		// SIGTERM alone would sit in a stopped process until the grace
		// period ran out.
		{"paused", func(t *testing.T, s *redistest.Server) { s.Pause(t) }},
		{"killed", func(t *testing.T, s *redistest.Server) { s.Kill(t) }},
		{"restarted", func(t *testing.T, s *redistest.Server) { s.Kill(t); s.Restart(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pid int
			var dir string
			start := time.Now()
			t.Run("server", func(t *testing.T) {
				s := redistest.Start(t)
				tc.before(t, s)
				pid = s.PID()
				dir = s.Socket()
			})
			if pid == 0 {
				t.Fatal("no PID recorded")
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Fatalf("pid %d survives cleanup: kill(0) = %v", pid, err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("socket %s survives cleanup: %v", dir, err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Fatalf("start+cleanup took %v; SIGTERM probably fell back to SIGKILL", d)
			}
		})
	}
}

// fatalTB records Fatalf instead of failing the real test, so the
// missing-binary path can be observed.
type fatalTB struct {
	testing.TB
	msg     string
	skipped bool
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Skip(...any)          { f.skipped = true; runtime.Goexit() }
func (f *fatalTB) Skipf(string, ...any) { f.skipped = true; runtime.Goexit() }
func (f *fatalTB) SkipNow()             { f.skipped = true; runtime.Goexit() }

func TestMissingBinaryFailsWithInstallHint(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		redistest.Start(f)
		f.msg = "Start returned"
	}()
	<-done
	if f.skipped {
		t.Fatal("Start skipped instead of failing")
	}
	want := "redis-server not found: install it with `sudo apt-get install -y redis-server`, or run `make test`, which installs it"
	if f.msg != want {
		t.Fatalf("Fatalf message = %q\nwant %q", f.msg, want)
	}
}

func TestRestartOnStolenPortFailsWithLog(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	s.Kill(t)
	thief, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("take over %s: %v", s.Addr(), err)
	}
	defer thief.Close()

	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Restart(f)
		f.msg = "Restart returned"
	}()
	<-done
	if !strings.Contains(f.msg, "already in use") {
		t.Fatalf("Restart on a taken port: Fatalf message %q lacks the redis log", f.msg)
	}
	if testing.Verbose() {
		t.Logf("Restart on a taken port reported:\n%s", f.msg)
	}
}

// A started cluster has every slot assigned, and a cluster client reaches
// keys on every node.
func TestStartCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	rdb := cl.Client(t)
	ctx := context.Background()
	info, err := rdb.ClusterInfo(ctx).Result()
	if err != nil || !strings.Contains(info, "cluster_slots_assigned:16384\r\n") {
		t.Fatalf("CLUSTER INFO = %q, %v", info, err)
	}
	nodes := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprintf("k%d", i)
		if err := rdb.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		slot, _ := rdb.ClusterKeySlot(ctx, key).Result()
		nodes[fmt.Sprint(slot*3/16384)] = true
	}
	if len(nodes) != 3 {
		t.Errorf("30 keys landed in the slots of %d nodes, want all 3", len(nodes))
	}
}

// StartReplica returns a replica the primary already counts as online:
// a WAIT for one replica after a write is met at once.
func TestStartReplica(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	ctx := context.Background()
	rdb := primary.Client(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v; want 1", n, err)
	}
	if v, err := replica.Client(t).Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("the replica has k = %q, %v; want v", v, err)
	}
}

// A Cluster with replicas: each master has an online replica, a
// coordinated failover swaps the two, and a migrated slot takes its keys
// to the new owner.
func TestClusterFailoverAndMigrate(t *testing.T) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, Replicas: 1})
	if len(cl.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(cl.Nodes))
	}
	ctx := context.Background()
	rdb := cl.Client(t)
	slot, err := rdb.ClusterKeySlot(ctx, "k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	old := cl.Primary(t, int(slot))
	replica := cl.ReplicaOf(t, old)
	cl.Failover(t, replica)
	if p := cl.Primary(t, int(slot)); p != replica {
		t.Fatalf("after the failover slot %d is served by %s, want %s", slot, p.Addr(), replica.Addr())
	}
	var to *redistest.Server
	for _, p := range cl.Primaries(t) {
		if p != replica {
			to = p
		}
	}
	batches := 0
	cl.MigrateSlots(t, []int{int(slot)}, to, func() { batches++ })
	if p := cl.Primary(t, int(slot)); p != to || batches != 1 {
		t.Fatalf("after the migration slot %d is served by %s in %d batches, want %s in 1", slot, p.Addr(), batches, to.Addr())
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("k = %q, %v after a failover and a migration; want v", v, err)
	}
}
