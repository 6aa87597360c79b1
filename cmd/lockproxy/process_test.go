package main

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
	"github.com/lockproxy/lockproxy/internal/sidecar"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// redis-cli, the demo client, works unchanged, in RESP2 and RESP3.
func TestRedisCLI(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found: install it with `sudo apt-get install -y redis-tools`, or run `make test`")
	}
	p := startProxy(t, nil)
	host, port, _ := strings.Cut(p.Addr().String(), ":")
	run := func(args ...string) string {
		out, err := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	tok := run("LOCK.ACQUIRE", "cli", "60000", "DETACHED")
	if !strings.Contains(tok, ":") {
		t.Fatalf("LOCK.ACQUIRE printed %q", tok)
	}
	if out := run("-3", "LOCK.INFO", "cli"); !strings.Contains(out, "held") || !strings.Contains(out, "other") {
		t.Errorf("redis-cli -3 LOCK.INFO printed %q", out)
	}
	if out := run("LOCK.ACQUIRE", "cli"); out != "" {
		t.Errorf("LOCK.ACQUIRE of a held lock printed %q, want the empty nil", out)
	}
	if out := run("LOCK.RELEASE", "cli", tok); out != "1" {
		t.Errorf("LOCK.RELEASE printed %q", out)
	}
	// Several commands on one connection, as in an interactive session.
	cmd := exec.Command(cli, "-h", host, "-p", port)
	cmd.Stdin = strings.NewReader("LOCK.ACQUIRE piped 30000\nLOCK.HELD\nLOCK.RELEASE piped\n")
	out, err := cmd.CombinedOutput()
	if lines := strings.Fields(string(out)); err != nil || len(lines) != 3 || lines[1] != "piped" || lines[2] != "1" {
		t.Errorf("piped session: %v\n%s", err, out)
	}
}

// The upstream URL carries user, password and database.
func TestUpstreamURLWithUserAndDB(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--user", "locker", "on", ">pw", "~lock:*", "&*", "+@all"}})
	url := "redis://locker:pw@" + srv.Addr() + "/3"
	p := startProxy(t, map[string]string{"UPSTREAM": url})
	mustToken(t, p.conn(t, 2), "in-db-3", 60000)
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "locker", Password: "pw", DB: 3})
	defer direct.Close()
	if n := direct.Exists(bg(), "lock:{in-db-3}").Val(); n != 1 {
		t.Errorf("lock key not in db 3 (EXISTS = %d)", n)
	}
	bad := []string{"LOCKPROXY_LISTEN=127.0.0.1:0", "LOCKPROXY_UPSTREAM=redis://locker:wrong@" + srv.Addr() + "/3"}
	ctx, cancel := context.WithCancel(bg())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, bad, nil, &syncbuf.Buffer{}, func(a *sidecar.Sidecar) {
			c := redis.NewClient(&redis.Options{Addr: a.Addr().String()})
			err := c.Do(bg(), "LOCK.ACQUIRE", "x").Err()
			c.Close()
			if err == nil || !strings.HasPrefix(err.Error(), "UPSTREAM ") {
				t.Errorf("with a wrong upstream password: %v, want an UPSTREAM error", err)
			}
			cancel()
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// SIGTERM to the real process: every owned lock is released in Redis and
// the process exits 0 within the shutdown timeout.
func TestSIGTERM(t *testing.T) {
	srv := redistest.Start(t)
	c := startChild(t, map[string]string{"UPSTREAM": srv.URL(), "SHUTDOWN_TIMEOUT": "5s"})
	conns := make([]*redis.Conn, 10)
	rdb := redis.NewClient(&redis.Options{Addr: c.addr, PoolSize: 20})
	defer rdb.Close()
	for i := range conns {
		conns[i] = rdb.Conn()
	}
	for i := range 100 {
		mustToken(t, conns[i%10], "term-"+strconv.Itoa(i), 60000)
	}
	direct := srv.Client(t)
	if n := len(direct.Keys(bg(), "lock:{term-*}").Val()); n != 100 {
		t.Fatalf("%d lock keys, want 100", n)
	}
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("exit took %v", d)
	}
	if n := len(direct.Keys(bg(), "lock:{term-*}").Val()); n != 0 {
		t.Errorf("%d lock keys left after SIGTERM", n)
	}
}

// A second signal stops the process at once, even while the graceful
// shutdown waits on a frozen upstream.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	r := relay.Start(t, srv.Addr())
	c := startChild(t, map[string]string{"UPSTREAM": "redis://" + r.Addr() + "/0", "SHUTDOWN_TIMEOUT": "1m",
		"UPSTREAM_TIMEOUT": "1m"})
	rdb := redis.NewClient(&redis.Options{Addr: c.addr})
	defer rdb.Close()
	conn := rdb.Conn()
	mustToken(t, conn, "stuck", 60000)
	r.Freeze() // the release at shutdown now hangs
	defer r.Thaw()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The graceful shutdown is under way once the listener is closed.
	waitFor(t, func() bool {
		nc, err := net.Dial("tcp", c.addr)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	select {
	case <-c.exited:
		t.Fatalf("exited after one signal, before the release could finish: %v", c.exitErr)
	default:
	}
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
		if c.exitErr == nil {
			t.Error("exit status 0 after an interrupted shutdown")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v to exit after the second signal", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after the second signal")
	}
}
