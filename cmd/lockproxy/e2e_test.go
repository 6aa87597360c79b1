package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
	"github.com/lockproxy/lockproxy/internal/sidecar"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
	"github.com/lockproxy/lockproxy/lockcore"
)

// stores runs fn on the embedded store, on a real Redis, and on a Redis
// Cluster of three primaries named by go-redis's cluster URL form.
func stores(t *testing.T, fn func(t *testing.T, settings map[string]string)) {
	t.Run("embedded", func(t *testing.T) { fn(t, map[string]string{}) })
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		fn(t, map[string]string{"UPSTREAM": srv.URL()})
	})
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.StartCluster(t, 3)
		fn(t, map[string]string{"UPSTREAM": cl.URL()})
	})
}

// protocols runs fn over RESP2 and RESP3.
func protocols(t *testing.T, fn func(t *testing.T, proto int)) {
	for _, proto := range []int{2, 3} {
		t.Run("resp"+strconv.Itoa(proto), func(t *testing.T) { fn(t, proto) })
	}
}

func TestLockLifecycle(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		protocols(t, func(t *testing.T, proto int) {
			a, b := p.conn(t, proto), p.conn(t, proto)
			name := "order:" + t.Name()

			tok := mustToken(t, a, name, 10000)
			fence, _, ok := lockcore.ParseToken(tok)
			if !ok {
				t.Fatalf("token %q is not <fence>:<random>", tok)
			}
			mustNull(t, b, name)
			if got := held(t, a); !slices.Equal(got, []string{name}) {
				t.Errorf("LOCK.HELD = %v, want [%s]", got, name)
			}
			if got := held(t, b); len(got) != 0 {
				t.Errorf("LOCK.HELD on another connection = %v, want []", got)
			}

			in := info(t, a, name)
			if in["held"] != int64(1) || in["fence"] != fence || in["owner"] != "self" || in["mode"] != "owned" || in["waiters"] != int64(0) {
				t.Errorf("LOCK.INFO from the holder = %v", in)
			}
			if ttl := in["ttl"].(int64); ttl <= 5000 || ttl > 10000 {
				t.Errorf("ttl = %d, want about 10000", ttl)
			}
			in = info(t, b, name)
			if in["owner"] != "other" || in["held"] != int64(1) {
				t.Errorf("LOCK.INFO from another connection = %v", in)
			}
			if _, has := in["mode"]; has {
				t.Errorf("LOCK.INFO shows mode to a non-holder: %v", in)
			}

			// Acquiring again on the same connection keeps the token.
			if again := mustToken(t, a, name, 20000); again != tok {
				t.Errorf("re-acquire gave %q, want the same token %q", again, tok)
			}
			if ttl := info(t, a, name)["ttl"].(int64); ttl <= 10000 {
				t.Errorf("re-acquire left ttl %d, want it reset to about 20000", ttl)
			}

			mustInt(t, 1, a, "LOCK.RENEW", name, 30000)
			if ttl := info(t, a, name)["ttl"].(int64); ttl <= 20000 {
				t.Errorf("after LOCK.RENEW ttl = %d, want about 30000", ttl)
			}
			mustInt(t, 0, b, "LOCK.RENEW", name, 30000)
			mustInt(t, 0, b, "LOCK.RELEASE", name)

			mustInt(t, 1, a, "LOCK.RELEASE", name)
			mustInt(t, 0, a, "LOCK.RELEASE", name)
			in = info(t, a, name)
			// The embedded store forgets a free name at once (its fences come
			// from one counter); Redis keeps the last fence for an hour.
			if in["held"] != int64(0) || in["ttl"] != int64(-2) || in["owner"] != "none" ||
				(in["fence"] != fence && !(settings["UPSTREAM"] == "" && in["fence"] == int64(0))) {
				t.Errorf("LOCK.INFO after release = %v, want free, ttl -2, the last fence (or 0 on the embedded store)", in)
			}
			tok2 := mustToken(t, b, name)
			if f2, _, _ := lockcore.ParseToken(tok2); f2 <= fence {
				t.Errorf("next fence %d <= %d", f2, fence)
			}
		})
	})
}

func TestTokensFromAnyConnection(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		a, b := p.conn(t, 3), p.conn(t, 2)
		name := "job:" + t.Name()
		tok := mustToken(t, a, name, 5000)
		mustInt(t, 1, b, "LOCK.RENEW", name, 60000, tok)
		if ttl := info(t, a, name)["ttl"].(int64); ttl <= 30000 {
			t.Errorf("renew by token from another connection left ttl %d", ttl)
		}
		mustInt(t, 1, b, "LOCK.RELEASE", name, tok)
		if got := held(t, a); len(got) != 0 {
			t.Errorf("holder still lists %v after a release by token elsewhere", got)
		}
	})
}

func TestWrongTokenNeverTouchesHolder(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		a, b := p.conn(t, 3), p.conn(t, 3)
		name := "pay:" + t.Name()
		tok := mustToken(t, a, name, 60000)
		fence, nonce, _ := lockcore.ParseToken(tok)
		for _, wrong := range []string{
			strconv.FormatInt(fence, 10) + ":0123456789abcdef0123456789abcdef", // right fence
			strconv.FormatInt(fence+1, 10) + ":" + nonce,                       // right random part
			strconv.FormatInt(fence-1, 10) + ":" + nonce,
		} {
			mustInt(t, 0, b, "LOCK.RENEW", name, 10, wrong) // the shortest ttl there is
			mustInt(t, 0, b, "LOCK.RELEASE", name, wrong)
			mustInt(t, 0, a, "LOCK.RELEASE", name, wrong) // not even the holder's connection
		}
		for _, malformed := range []string{"x", ":" + nonce, "-1:x", "1:", "abc:def"} {
			if err := do(t, b, "LOCK.RELEASE", name, malformed).Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR invalid token") {
				t.Errorf("LOCK.RELEASE with %q: %v, want ERR invalid token", malformed, err)
			}
		}
		in := info(t, a, name)
		if in["owner"] != "self" || in["ttl"].(int64) < 50000 {
			t.Errorf("holder's lock was touched: %v", in)
		}
		mustNull(t, b, name)
	})
}

func TestReleaseOnClose(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		protocols(t, func(t *testing.T, proto int) {
			name := "close:" + t.Name()
			// go-redis's Conn.Close only returns the connection to the pool;
			// closing the client closes the socket.
			rdb := redis.NewClient(&redis.Options{Addr: p.Addr().String(), Protocol: proto})
			a := rdb.Conn()
			mustToken(t, a, name, 60000)
			a.Close()
			rdb.Close()
			// WAIT 250 bounds the time the release may take.
			mustToken(t, p.conn(t, proto), name, 10000, "WAIT", 250)
		})
	})
}

// A raw socket closed abruptly (RST, no QUIT) releases the same way.
func TestReleaseOnReset(t *testing.T) {
	p := startProxy(t, nil)
	r := dialRaw(t, p.Addr().String())
	r.send(t, cmd("LOCK.ACQUIRE", "reset-me", "60000"))
	if l := r.line(t); !strings.HasPrefix(l, "$") {
		t.Fatalf("acquire: %q", l)
	}
	r.line(t)
	r.Conn.(interface{ SetLinger(int) error }).SetLinger(0)
	r.Close()
	mustToken(t, p.conn(t, 2), "reset-me", 1000, "WAIT", 250)
}

func TestIdleLockStaysHeld(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		a, b := p.conn(t, 2), p.conn(t, 2)
		name := "idle:" + t.Name()
		tok := mustToken(t, a, name, 600)
		// Let the 600 ms ttl pass three times over with the holder idle:
		// only the background renewal can keep it.
		time.Sleep(2 * time.Second)
		mustNull(t, b, name)
		if got := mustToken(t, a, name); got != tok {
			t.Errorf("token after 2s = %q, want %q", got, tok)
		}
		if in := info(t, a, name); in["owner"] != "self" {
			t.Errorf("LOCK.INFO after 2s = %v, want owner self", in)
		}
	})
}

func TestDetached(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		name := "detached:" + t.Name()
		rdb := redis.NewClient(&redis.Options{Addr: p.Addr().String()})
		a := rdb.Conn()
		tok := mustToken(t, a, name, 60000, "DETACHED")
		if in := info(t, a, name); in["owner"] != "self" || in["mode"] != "detached" {
			t.Errorf("LOCK.INFO = %v, want owner self, mode detached", in)
		}
		a.Close()
		rdb.Close()
		// A pooled client: any connection will do, with the token.
		pool := p.client(t, 2)
		mustNull(t, pool, name)
		mustInt(t, 1, pool, "LOCK.RENEW", name, 60000, tok)
		mustInt(t, 1, pool, "LOCK.RELEASE", name, tok)
		mustToken(t, pool, name, 1000, "DETACHED")
	})
}

func TestWait(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		a, b, watcher := p.conn(t, 2), p.conn(t, 2), p.conn(t, 2)
		name := "wait:" + t.Name()
		mustToken(t, a, name, 60000)

		start := time.Now()
		mustNull(t, b, name, 1000, "WAIT", 100)
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("WAIT 100 returned after %v", d)
		}

		got := make(chan string, 1)
		go func() {
			tok, _ := do(t, b, "LOCK.ACQUIRE", name, 1000, "WAIT", 10000).Text()
			got <- tok
		}()
		waitFor(t, func() bool { return info(t, watcher, name)["waiters"] == int64(1) })
		mustInt(t, 1, a, "LOCK.RELEASE", name)
		if tok := <-got; tok == "" {
			t.Error("the waiter did not get the lock after its release")
		}
		if in := info(t, b, name); in["owner"] != "self" || in["waiters"] != int64(0) {
			t.Errorf("after the hand-off LOCK.INFO = %v", in)
		}
	})
}

// waitFor polls cond, for state the test can only observe from outside.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A waiter whose connection closes leaves at once and never acquires.
func TestWaiterDisconnects(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		a, c := p.conn(t, 2), p.conn(t, 2)
		name := "gone:" + t.Name()
		mustToken(t, a, name, 60000)

		r := dialRaw(t, p.Addr().String())
		r.send(t, cmd("LOCK.ACQUIRE", name, "60000", "WAIT", "60000"))
		waitFor(t, func() bool { return info(t, c, name)["waiters"] == int64(1) })
		r.Close()
		waitFor(t, func() bool { return info(t, c, name)["waiters"] == int64(0) })

		mustInt(t, 1, a, "LOCK.RELEASE", name)
		// The departed waiter took nothing, or gave it straight back. With
		// WAIT, because the store may still hold the waiter's queue entry
		// for a round trip (its removal is sent on close), and a try-once
		// acquire would see the lock reserved for it.
		mustToken(t, c, name, 60000, "WAIT", 5000)
	})
}

func TestResetAndQuit(t *testing.T) {
	p := startProxy(t, nil)
	a, b := p.conn(t, 3), p.conn(t, 2)
	mustToken(t, a, "owned-r", 60000)
	mustToken(t, a, "detached-r", 60000, "DETACHED")
	if s, err := do(t, a, "RESET").Text(); err != nil || s != "RESET" {
		t.Fatalf("RESET = %q, %v", s, err)
	}
	if got := held(t, a); len(got) != 0 {
		t.Errorf("LOCK.HELD after RESET = %v", got)
	}
	mustToken(t, b, "owned-r")   // released
	mustNull(t, b, "detached-r") // left to its ttl

	r := dialRaw(t, p.Addr().String())
	r.send(t, cmd("LOCK.ACQUIRE", "quit-r", "60000")+cmd("QUIT"))
	r.line(t)
	r.line(t)
	if l := r.line(t); l != "+OK" {
		t.Errorf("QUIT = %q", l)
	}
	if !r.closed(t) {
		t.Error("QUIT did not close the connection")
	}
	mustToken(t, b, "quit-r", 1000, "WAIT", 250)
}

// Two sidecars on one Redis never grant one name to two clients: every
// holder does a read-modify-write of a plain counter, and none is lost.
func TestMutualExclusionAcrossSidecars(t *testing.T) {
	srv := redistest.Start(t)
	settings := map[string]string{"UPSTREAM": srv.URL(), "RETRY_BASE": "1ms", "RETRY_MAX": "5ms"}
	proxies := []*proxy{startProxy(t, settings), startProxy(t, settings)}
	direct := srv.Client(t)
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		c := proxies[w%2].conn(t, 2)
		wg.Go(func() {
			for range rounds {
				tok, err := do(t, c, "LOCK.ACQUIRE", "counter", 5000, "WAIT", 10000).Text()
				if err != nil {
					t.Error(err)
					return
				}
				n, _ := direct.Get(bg(), "counter").Int()
				time.Sleep(100 * time.Microsecond) // widen the window a second holder would use
				direct.Set(bg(), "counter", n+1, 0)
				if r, _ := do(t, c, "LOCK.RELEASE", "counter", tok).Int64(); r != 1 {
					t.Error("release of a held lock returned", r)
				}
			}
		})
	}
	wg.Wait()
	if n, _ := direct.Get(bg(), "counter").Int(); n != workers*rounds {
		t.Errorf("counter = %d, want %d: updates were lost, so two clients held the lock at once", n, workers*rounds)
	}
	a, b := proxies[0].conn(t, 2), proxies[1].conn(t, 2)
	mustToken(t, a, "x-sidecar", 60000)
	mustNull(t, b, "x-sidecar")
}

// Fences rise across sidecars and across a sidecar restart.
func TestFencesAcrossSidecars(t *testing.T) {
	srv := redistest.Start(t)
	settings := map[string]string{"UPSTREAM": srv.URL()}
	var last int64
	for i := range 3 {
		p := startProxy(t, settings)
		c := p.conn(t, 2)
		tok := mustToken(t, c, "fenced", 1000)
		f, _, _ := lockcore.ParseToken(tok)
		if f <= last {
			t.Fatalf("sidecar %d: fence %d <= %d", i, f, last)
		}
		last = f
		c.Close()
		if err := p.stop(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestShutdownReleasesLocks(t *testing.T) {
	srv := redistest.Start(t)
	p := startProxy(t, map[string]string{"UPSTREAM": srv.URL(), "SHUTDOWN_TIMEOUT": "5s"})
	const n = 100
	conns := make([]*redis.Conn, 10)
	for i := range conns {
		conns[i] = p.conn(t, 2)
	}
	for i := range n {
		mustToken(t, conns[i%10], "shut:"+strconv.Itoa(i), 60000)
	}
	// One client is blocked in WAIT: shutdown must answer it.
	waiting := make(chan error, 1)
	go func() {
		waiting <- do(t, p.conn(t, 2), "LOCK.ACQUIRE", "shut:0", 1000, "WAIT", 60000).Err()
	}()
	waitFor(t, func() bool { return info(t, conns[1], "shut:0")["waiters"] == int64(1) })
	direct := srv.Client(t)
	if k := direct.Keys(bg(), "lock:{shut:*}").Val(); len(k) != n {
		t.Fatalf("%d lock keys before shutdown, want %d", len(k), n)
	}
	start := time.Now()
	if err := p.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v, over LOCKPROXY_SHUTDOWN_TIMEOUT", d)
	}
	if k := direct.Keys(bg(), "lock:{shut:*}").Val(); len(k) != 0 {
		t.Errorf("%d lock keys left after shutdown: %v", len(k), k[:min(len(k), 5)])
	}
	if err := <-waiting; err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("the blocked WAIT got %v, want an error saying lockproxy is shutting down", err)
	}
}

func TestConnectionCommands(t *testing.T) {
	p := startProxy(t, nil)
	protocols(t, func(t *testing.T, proto int) {
		c := p.conn(t, proto)
		for _, tc := range []struct {
			args []any
			want any
		}{
			{[]any{"PING"}, "PONG"},
			{[]any{"ping", "hi"}, "hi"},
			{[]any{"ECHO", "a\r\nb"}, "a\r\nb"},
			{[]any{"SELECT", 0}, "OK"},
			{[]any{"CLIENT", "SETNAME", "worker-1"}, "OK"},
			{[]any{"CLIENT", "GETNAME"}, "worker-1"},
			{[]any{"CLIENT", "SETINFO", "LIB-NAME", "x"}, "OK"},
			{[]any{"COMMAND", "COUNT"}, int64(17)},
		} {
			got, err := do(t, c, tc.args...).Result()
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%v = %v, %v; want %v", tc.args, got, err, tc.want)
			}
		}
		id, _ := do(t, c, "CLIENT", "ID").Int64()
		ci, _ := do(t, c, "CLIENT", "INFO").Text()
		if !strings.Contains(ci, "id="+strconv.FormatInt(id, 10)+" ") || !strings.Contains(ci, "name=worker-1") ||
			!strings.Contains(ci, "resp="+strconv.Itoa(proto)) {
			t.Errorf("CLIENT INFO = %q", ci)
		}
		infoText, _ := do(t, c, "INFO").Text()
		for _, want := range []string{"# Server", "redis_version:", "# Clients", "# Locks", "locks_held:", "store:embedded"} {
			if !strings.Contains(infoText, want) {
				t.Errorf("INFO lacks %q", want)
			}
		}
		if s, _ := do(t, c, "INFO", "locks").Text(); strings.Contains(s, "# Server") || !strings.Contains(s, "# Locks") {
			t.Errorf("INFO locks = %q", s)
		}
		docs, err := do(t, c, "COMMAND", "DOCS", "lock.acquire").Result()
		if err != nil || !strings.Contains(fmt.Sprint(docs), "WAIT") {
			t.Errorf("COMMAND DOCS lock.acquire = %v, %v", docs, err)
		}
		infoCmd, err := do(t, c, "COMMAND", "INFO", "lock.acquire", "nope").Slice()
		if err != nil || len(infoCmd) != 2 || infoCmd[1] != nil || infoCmd[0].([]any)[0] != "lock.acquire" {
			t.Errorf("COMMAND INFO = %v, %v", infoCmd, err)
		}
	})
}

// Every error reply of the command table, through the wire.
func TestErrorReplies(t *testing.T) {
	p := startProxy(t, map[string]string{"MAX_NAME_BYTES": "16", "MAX_TTL": "1m", "MAX_WAIT": "10s"})
	c := p.conn(t, 2)
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"NOPE", "a", "b"}, "ERR unknown command 'NOPE', with args beginning with: 'a' 'b' "},
		{[]any{"LOCK.ACQUIRE"}, "ERR wrong number of arguments for 'lock.acquire' command"},
		{[]any{"LOCK.RENEW", "a"}, "ERR wrong number of arguments for 'lock.renew' command"},
		{[]any{"LOCK.RELEASE"}, "ERR wrong number of arguments for 'lock.release' command"},
		{[]any{"LOCK.INFO"}, "ERR wrong number of arguments for 'lock.info' command"},
		{[]any{"LOCK.HELD", "x"}, "ERR wrong number of arguments for 'lock.held' command"},
		{[]any{"LOCK.ACQUIRE", "a", "ten"}, "ERR value is not an integer or out of range"},
		{[]any{"LOCK.ACQUIRE", "a", "0"}, "ERR invalid ttl in 'lock.acquire' command: it must be 10..60000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{[]any{"LOCK.ACQUIRE", "a", "-5"}, "ERR invalid ttl in 'lock.acquire' command: it must be 10..60000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{[]any{"LOCK.ACQUIRE", "a", "60001"}, "ERR invalid ttl in 'lock.acquire' command: it must be 10..60000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{[]any{"LOCK.ACQUIRE", "a", "1"}, "ERR invalid ttl in 'lock.acquire' command: it must be 10..60000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{[]any{"LOCK.ACQUIRE", "a", "MAXHOLD", "1"}, "ERR invalid MAXHOLD in 'lock.acquire' command: it must be 10..9223372036854 ms (LOCKPROXY_MIN_TTL)"},
		{[]any{"LOCK.ACQUIRE", "a", "MAXHOLD", "9223372036854775807"}, "ERR invalid MAXHOLD in 'lock.acquire' command: it must be 10..9223372036854 ms (LOCKPROXY_MIN_TTL)"},
		{[]any{"LOCK.ACQUIRE", "a", "MAXHOLD", "288230376151711745", "MAXHOLD", "50"}, "ERR syntax error"},
		{[]any{"LOCK.RENEW", "a", "1"}, "ERR invalid ttl in 'lock.renew' command: it must be 10..60000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{[]any{"LOCK.ACQUIRE", "a", "99999999999999999999"}, "ERR value is not an integer or out of range"},
		{[]any{"LOCK.ACQUIRE", "a", "1.5"}, "ERR value is not an integer or out of range"},
		{[]any{"LOCK.ACQUIRE", "a", "WAIT"}, "ERR syntax error"},
		{[]any{"LOCK.ACQUIRE", "a", "WAIT", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"LOCK.ACQUIRE", "a", "WAIT", "-1"}, "ERR timeout is negative"},
		{[]any{"LOCK.ACQUIRE", "a", "WAIT", "10001"}, "ERR timeout is out of range: WAIT is at most 10000 ms (LOCKPROXY_MAX_WAIT)"},
		{[]any{"LOCK.ACQUIRE", "a", "WAIT", "1", "WAIT", "1"}, "ERR syntax error"},
		{[]any{"LOCK.ACQUIRE", "a", "DETACHED", "DETACHED"}, "ERR syntax error"},
		{[]any{"LOCK.ACQUIRE", "a", "1000", "1000"}, "ERR syntax error"},
		{[]any{"LOCK.ACQUIRE", "a", "NOWAIT"}, "ERR value is not an integer or out of range"},
		{[]any{"LOCK.ACQUIRE", "a", "1000", "NOWAIT"}, "ERR syntax error"},
		{[]any{"LOCK.ACQUIRE", ""}, "ERR invalid lock name: it is empty"},
		{[]any{"LOCK.ACQUIRE", "seventeen-bytes!!"}, "ERR invalid lock name: it is longer than 16 bytes (LOCKPROXY_MAX_NAME_BYTES)"},
		{[]any{"LOCK.RENEW", "a", "0"}, "ERR invalid ttl in 'lock.renew' command: it must be 10..60000 ms (LOCKPROXY_MIN_TTL, LOCKPROXY_MAX_TTL)"},
		{[]any{"LOCK.RENEW", "a", "10", "1:x", "extra"}, "ERR syntax error"},
		{[]any{"LOCK.RENEW", "a", "10", "nocolon"}, "ERR invalid token: expected <fence>:<random>, as LOCK.ACQUIRE returned it"},
		{[]any{"LOCK.RELEASE", "a", "1:x", "extra"}, "ERR syntax error"},
		{[]any{"SELECT", "1"}, "ERR DB index is out of range"},
		{[]any{"SELECT", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"CLIENT"}, "ERR wrong number of arguments for 'client' command"},
		{[]any{"CLIENT", "KILL"}, "ERR unknown subcommand 'KILL'. Try CLIENT HELP."},
		{[]any{"CLIENT", "SETNAME"}, "ERR wrong number of arguments for 'client|setname' command"},
		{[]any{"CLIENT", "SETNAME", "a b"}, "ERR Client names cannot contain spaces, newlines or special characters."},
		{[]any{"CLIENT", "SETINFO", "x", "y"}, "ERR Unrecognized option 'x'"},
		{[]any{"COMMAND", "NOPE"}, "ERR unknown subcommand 'NOPE'. Try COMMAND HELP."},
		{[]any{"HELLO", "4"}, "NOPROTO unsupported protocol version"},
		{[]any{"HELLO", "x"}, "ERR Protocol version is not an integer or out of range"},
		{[]any{"HELLO", "3", "AUTH", "u"}, "ERR Syntax error in HELLO option 'AUTH'"},
		{[]any{"AUTH", "pw"}, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{[]any{"AUTH", "nobody", "pw"}, "WRONGPASS invalid username-password pair or user is disabled."},
		{[]any{"ECHO", "a\r\n:1"}, ""}, // echoed back as a bulk string: fine
		{[]any{"NOPE\r\n+OK"}, "ERR unknown command 'NOPE  +OK', with args beginning with: "},
		// Names and options fold in ASCII only, as in Redis: a dotless ı is
		// no i, and a Kelvin sign no k.
		{[]any{"LOCK.ACQUIRE", "a", "1000", "wa\u0131t", "100"}, "ERR syntax error"},
		{[]any{"LOC\u212a.HELD"}, "ERR unknown command 'LOC\u212a.HELD', with args beginning with: "},
		{[]any{"CLIENT", "TRAC\u212aING", "on"}, "ERR unknown subcommand 'TRAC\u212aING'. Try CLIENT HELP."},
		{[]any{"CLIENT", "CACHING", "ye\u017f"}, "ERR syntax error"}, // a long s is no s
	} {
		err := do(t, c, tc.args...).Err()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.args, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.args, err, tc.want)
		}
	}
	// Bad input changed nothing and the connection still works.
	if got := held(t, c); len(got) != 0 {
		t.Errorf("LOCK.HELD after bad input = %v", got)
	}
	mustToken(t, c, "a")
}

func TestPassword(t *testing.T) {
	p := startProxy(t, map[string]string{"PASSWORD": "s3cret"})
	r := dialRaw(t, p.Addr().String())
	for _, step := range []struct{ send, want string }{
		{cmd("LOCK.ACQUIRE", "a"), "-NOAUTH Authentication required."},
		{cmd("HELLO", "3"), "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"},
		{cmd("AUTH", "wrong"), "-WRONGPASS invalid username-password pair or user is disabled."},
		{cmd("AUTH", "default", "wrong"), "-WRONGPASS invalid username-password pair or user is disabled."},
		{cmd("AUTH", "s3cret"), "+OK"},
		{cmd("PING"), "+PONG"},
	} {
		r.send(t, step.send)
		if got := r.line(t); got != step.want {
			t.Errorf("%q: got %q, want %q", step.send, got, step.want)
		}
	}
	// go-redis authenticates through HELLO 3 AUTH, and falls back to AUTH on RESP2.
	for _, proto := range []int{2, 3} {
		rdb := redis.NewClient(&redis.Options{Addr: p.Addr().String(), Password: "s3cret", Protocol: proto})
		if err := rdb.Ping(bg()).Err(); err != nil {
			t.Errorf("go-redis RESP%d with the password: %v", proto, err)
		}
		rdb.Close()
		rdb = redis.NewClient(&redis.Options{Addr: p.Addr().String(), Password: "nope", Protocol: proto})
		if err := rdb.Ping(bg()).Err(); err == nil {
			t.Errorf("go-redis RESP%d with a wrong password connected", proto)
		}
		rdb.Close()
	}
}

// The server survives hostile input: each case gets a protocol error and
// is disconnected, and a lock held meanwhile by another client stays.
func TestInputLimits(t *testing.T) {
	p := startProxy(t, map[string]string{"MAX_QUERY_BYTES": "65536", "MAX_BULK_BYTES": "4096", "MAX_INLINE_BYTES": "4096", "MAX_ARGS": "64"})
	holder := p.conn(t, 2)
	tok := mustToken(t, holder, "survivor", 60000)
	for _, tc := range []struct {
		name, send, want string
	}{
		{"huge multibulk count", "*1000000000\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"too many args", "*65\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"huge bulk", "*2\r\n$4\r\nECHO\r\n$1000000000\r\n", "-ERR Protocol error: invalid bulk length"},
		{"bulk over limit", "*2\r\n$4\r\nECHO\r\n$4097\r\n", "-ERR Protocol error: invalid bulk length"},
		{"inline without newline", strings.Repeat("A", 5000), "-ERR Protocol error: too big inline request"},
		{"not a bulk", "*1\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'"},
		{"unbalanced quotes", "ECHO \"abc\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{"request over the query limit", "*17\r\n" + strings.Repeat("$4096\r\n"+strings.Repeat("x", 4096)+"\r\n", 16) + "$4096\r\n",
			"-ERR Protocol error: too big request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, p.Addr().String())
			r.send(t, tc.send)
			if got := r.line(t); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if !r.closed(t) {
				t.Error("connection left open after a protocol error")
			}
		})
	}
	// One byte at a time: a slow but valid client is served, not punished.
	r := dialRaw(t, p.Addr().String())
	msg := cmd("ECHO", strings.Repeat("z", 3000))
	for i := range len(msg) {
		r.send(t, msg[i:i+1])
	}
	if got := r.line(t); got != "$3000" {
		t.Errorf("dripped ECHO: %q", got)
	}
	// Inline commands work, as in redis-cli's telnet mode.
	r2 := dialRaw(t, p.Addr().String())
	r2.send(t, "PING\r\nECHO \"a b\"\r\n")
	if l1, l2, l3 := r2.line(t), r2.line(t), r2.line(t); l1 != "+PONG" || l2 != "$3" || l3 != "a b" {
		t.Errorf("inline: %q %q %q", l1, l2, l3)
	}
	if got := mustToken(t, holder, "survivor"); got != tok {
		t.Errorf("the holder's lock changed: %q, want %q", got, tok)
	}
}

func TestMaxClientsAndLocksPerConn(t *testing.T) {
	p := startProxy(t, map[string]string{"MAX_CLIENTS": "2", "MAX_LOCKS_PER_CONN": "2"})
	a := dialRaw(t, p.Addr().String())
	a.send(t, cmd("PING"))
	a.line(t)
	b := dialRaw(t, p.Addr().String())
	b.send(t, cmd("LOCK.ACQUIRE", "l1")+cmd("LOCK.ACQUIRE", "l2")+cmd("LOCK.ACQUIRE", "l3")+cmd("LOCK.ACQUIRE", "l1"))
	for range 2 {
		b.line(t)
		b.line(t)
	}
	if got := b.line(t); got != "-ERR max locks per connection reached (LOCKPROXY_MAX_LOCKS_PER_CONN=2)" {
		t.Errorf("third lock: %q", got)
	}
	if got := b.line(t); !strings.HasPrefix(got, "$") {
		t.Errorf("re-acquiring a held lock at the limit: %q", got)
	}
	b.line(t)
	c := dialRaw(t, p.Addr().String())
	if got := c.line(t); got != "-ERR max number of clients reached" {
		t.Errorf("third client: %q", got)
	}
	if !c.closed(t) {
		t.Error("third client left open")
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"LOCKPROXY_DEFAULT_TTL=abc", "LOCKPROXY_DEFAULT_TTL"},
		{"LOCKPROXY_MAX_CLIENTS=many", "LOCKPROXY_MAX_CLIENTS"},
		{"LOCKPROXY_RENEW_FRACTION=1.5", "LOCKPROXY_RENEW_FRACTION"},
		{"LOCKPROXY_UPSTREAM=http://x", "LOCKPROXY_UPSTREAM"},
		{"LOCKPROXY_KEY_PREFIX=a{b}", "LOCKPROXY_KEY_PREFIX"},
		{"LOCKPROXY_LOG_FORMAT=xml", "LOCKPROXY_LOG_FORMAT"},
		{"LOCKPROXY_DEFAULT_TTL=48h", "LOCKPROXY_DEFAULT_TTL"},
		{"LOCKPROXY_LISTEN=256.0.0.1:1", "LOCKPROXY_LISTEN"},
		{"LOCKPROXY_LOCAL_HANDOFFS=-1", "LOCKPROXY_LOCAL_HANDOFFS"},
		{"LOCKPROXY_MIN_TTL=1ms", "LOCKPROXY_MIN_TTL: 1ms must exceed the drift margin"},
		{"LOCKPROXY_MIN_TTL=0", "LOCKPROXY_MIN_TTL"},
		{"LOCKPROXY_MIN_TTL=1m", "LOCKPROXY_DEFAULT_TTL: 30s must be between LOCKPROXY_MIN_TTL (1m0s)"},
		{"LOCKPROXY_DEFAULT_TTL=5ms", "LOCKPROXY_DEFAULT_TTL: 5ms must be between LOCKPROXY_MIN_TTL (10ms)"},
		{"LOCKPROXY_MAX_TTL=5ms", "LOCKPROXY_MAX_TTL: 5ms is below LOCKPROXY_MIN_TTL (10ms)"},
		{"LOCKPROXY_MAX_HOLD=5ms", "LOCKPROXY_MAX_HOLD: 5ms is below LOCKPROXY_MIN_TTL (10ms)"},
	} {
		err := run(bg(), nil, []string{"LOCKPROXY_LISTEN=127.0.0.1:0", tc.env}, nil, &syncbuf.Buffer{}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.env, err, tc.want)
		}
	}
}

func TestHelpPrintsEveryVariable(t *testing.T) {
	var out strings.Builder
	if err := run(bg(), []string{"-h"}, nil, &out, &out, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range sidecar.Vars() {
		if !strings.Contains(out.String(), f.Name) || (f.Default != "" && !strings.Contains(out.String(), f.Default)) {
			t.Errorf("-h lacks %s (default %q)", f.Name, f.Default)
		}
	}
}

// When the upstream stops answering, the holder is never told "held" once
// the ttl has passed since the freeze, and RESP3 holders get a push.
func TestLostWhenUpstreamFreezes(t *testing.T) {
	srv := redistest.Start(t)
	r := relay.Start(t, srv.Addr())
	p := startProxy(t, map[string]string{"UPSTREAM": "redis://" + r.Addr() + "/0", "UPSTREAM_TIMEOUT": "200ms"})
	const ttl = 500 * time.Millisecond
	owner := p.conn(t, 2)
	mustToken(t, owner, "frozen", ttl.Milliseconds())

	push := dialRaw(t, p.Addr().String())
	push.send(t, cmd("HELLO", "3"))
	if f := push.frame(t); f[0] != "%7" {
		t.Fatalf("HELLO 3: %q", f)
	}
	push.send(t, cmd("LOCK.ACQUIRE", "frozen-push", strconv.FormatInt(ttl.Milliseconds(), 10)))
	tok := push.frame(t)[1]

	frozeAt := time.Now()
	r.Freeze()
	defer r.Thaw()
	for {
		sent := time.Now()
		names := held(t, owner)
		if !slices.Contains(names, "frozen") {
			break
		}
		if sent.After(frozeAt.Add(ttl)) {
			t.Fatalf("LOCK.HELD still lists the lock %v after the freeze, past its %v ttl", sent.Sub(frozeAt), ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []string{">3", "$9", "lock.lost", "$11", "frozen-push", "$" + strconv.Itoa(len(tok)), tok}
	if got := push.frame(t); !slices.Equal(got, want) {
		t.Fatalf("push: got %q, want %q", got, want)
	}
	if lostAt := time.Since(frozeAt); lostAt > ttl+time.Second {
		t.Errorf("push came %v after the freeze", lostAt)
	}
	r.Thaw()
	mustInt(t, 0, owner, "LOCK.RENEW", "frozen", 1000)
	in, _ := do(t, owner, "INFO", "locks").Text()
	if !strings.Contains(in, "locks_lost_total:2") {
		t.Errorf("INFO locks does not count both lost locks:\n%s", in)
	}
}

// The README's configuration table lists every variable with its default.
func TestReadmeConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`LOCKPROXY_") {
			continue
		}
		rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = strings.Trim(strings.TrimSpace(cells[2]), "`")
	}
	for _, f := range sidecar.Vars() {
		want := f.Default
		if want == "" {
			want = "empty"
		}
		if got, ok := rows[f.Name]; !ok || got != want {
			t.Errorf("README row for %s: default %q (present %v), want %q", f.Name, got, ok, want)
		}
		delete(rows, f.Name)
	}
	for name := range rows {
		t.Errorf("README lists %s, which the configuration does not have", name)
	}
}

// Waiters on two sidecars are served in arrival order, and each hand-off
// reaches the next waiter at once, through the wire.
func TestFIFOAcrossSidecarsOnTheWire(t *testing.T) {
	srv := redistest.Start(t)
	settings := map[string]string{"UPSTREAM": srv.URL(), "RETRY_BASE": "1h", "RETRY_MAX": "1h"}
	proxies := []*proxy{startProxy(t, settings), startProxy(t, settings)}
	holder := proxies[0].conn(t, 2)
	mustToken(t, holder, "fifo", 60000)
	direct := srv.Client(t)
	const n = 6
	order := make(chan int, n)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range n {
		c := proxies[i%2].conn(t, 2)
		wg.Go(func() {
			tok, err := do(t, c, "LOCK.ACQUIRE", "fifo", 60000, "WAIT", 30000).Text()
			if err != nil || tok == "" {
				t.Errorf("waiter %d: %q %v", i, tok, err)
			}
			order <- i
			do(t, c, "LOCK.RELEASE", "fifo")
		})
		// Its place in the queue is taken before the next one arrives.
		waitFor(t, func() bool { return direct.ZCard(bg(), "lock:{fifo}:q").Val() == int64(i+1) })
	}
	mustInt(t, 1, holder, "LOCK.RELEASE", "fifo")
	for want := range n {
		select {
		case got := <-order:
			if got != want {
				t.Fatalf("waiter %d served in turn %d", got, want)
			}
		case <-time.After(10 * time.Second):
			// With the fallback poll an hour away, only wakes can serve them.
			t.Fatalf("turn %d: nobody served within 10s", want)
		}
	}
}

// WAIT answers null close to its deadline.
func TestWaitTimeoutOnTheWire(t *testing.T) {
	p := startProxy(t, nil)
	mustToken(t, p.conn(t, 2), "busy", 60000)
	c := p.conn(t, 3)
	var late []time.Duration
	for range 5 {
		start := time.Now()
		mustNull(t, c, "busy", 1000, "WAIT", 100)
		late = append(late, time.Since(start)-100*time.Millisecond)
	}
	slices.Sort(late)
	if late[0] < 0 {
		t.Errorf("WAIT 100 answered %v early", -late[0])
	}
	// Answered by its own timer, not by the next fallback poll, which
	// would be late by up to LOCKPROXY_RETRY_MAX (500ms); a busy processor
	// adds a few milliseconds (11ms seen with two CPU hogs).
	if late[2] > 50*time.Millisecond {
		t.Errorf("WAIT 100 answered a median %v after its deadline, want ≤ 50ms (all: %v)", late[2], late)
	}
}

// The start-up log shows the configuration, with secrets masked.
func TestStartupLogMasksSecrets(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--user", "locker", "on", ">sup3rsecret", "~*", "&*", "+@all"}})
	logs := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(bg())
	environ := []string{"LOCKPROXY_LISTEN=127.0.0.1:0", "LOCKPROXY_LOG_FORMAT=json", "LOCKPROXY_PASSWORD=hunter2",
		"LOCKPROXY_ADMIN_PASSWORD=4dm1nsecret", "LOCKPROXY_UPSTREAM=redis://locker:sup3rsecret@" + srv.Addr() + "/0"}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, environ, io.Discard, logs, func(*sidecar.Sidecar) { cancel() }) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{`"msg":"lockproxy started"`, `"LOCKPROXY_PASSWORD":"xxxxx"`, `"LOCKPROXY_ADMIN_PASSWORD":"xxxxx"`, `"LOCKPROXY_UPSTREAM":"redis://locker:xxxxx@`,
		`"LOCKPROXY_MAX_TTL":"24h0m0s"`, `"store":"redis"`, `"msg":"upstream is up"`, `"msg":"shutting down"`, `"msg":"stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{"hunter2", "sup3rsecret", "4dm1nsecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log shows the secret %q:\n%s", secret, out)
		}
	}
}

// A detached lock belongs to whoever has its token, not to the connection:
// a second acquire on the same connection (two callers sharing a pooled
// connection) contends like any other, whatever the modes. Only an owned
// lock asked for again as owned keeps its token.
func TestSameConnectionDetachedContends(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		pool := p.conn(t, 2) // one connection, as a pool may hand to two callers
		name := "pooled:" + t.Name()
		tok := mustToken(t, pool, name, 60000, "DETACHED")
		mustNull(t, pool, name, 60000, "DETACHED")
		mustNull(t, pool, name, 60000)
		if got := info(t, pool, name); got["owner"] != "self" || got["mode"] != "detached" {
			t.Errorf("after the refused acquires LOCK.INFO = %v", got)
		}
		mustInt(t, 1, pool, "LOCK.RELEASE", name, tok)
		again := mustToken(t, pool, name, 60000, "DETACHED")
		if again == tok {
			t.Error("a new acquisition got the old token")
		}
		if got := held(t, pool); len(got) != 1 {
			t.Errorf("LOCK.HELD = %v, want the one new lock", got)
		}

		c := p.conn(t, 2)
		owned := mustToken(t, c, name+":owned", 60000)
		mustNull(t, c, name+":owned", 60000, "DETACHED")
		if same := mustToken(t, c, name+":owned", 60000); same != owned {
			t.Errorf("owned re-acquire gave %q, want %q", same, owned)
		}
	})
}

// LOCKPROXY_LOCAL_HANDOFFS reaches the lock core, and INFO says so.
func TestLocalHandoffsSetting(t *testing.T) {
	p := startProxy(t, map[string]string{"LOCAL_HANDOFFS": "2"})
	if info, _ := do(t, p.conn(t, 2), "INFO", "locks").Text(); !strings.Contains(info, "local_handoffs:2\r\n") {
		t.Errorf("INFO locks lacks local_handoffs:2:\n%s", info)
	}
}

// A ttl or MAXHOLD below LOCKPROXY_MIN_TTL is refused by the parser, on
// either store: it could never be held (its validity, ttl less the drift
// margin, would be over as it is granted), so it must not go to the store,
// fail there as an upstream timeout, and count as an acquire error.
func TestTTLBelowMinimumChangesNothing(t *testing.T) {
	stores(t, func(t *testing.T, settings map[string]string) {
		p := startProxy(t, settings)
		c := p.conn(t, 2)
		for _, args := range [][]any{{"LOCK.ACQUIRE", "tiny", 1}, {"LOCK.ACQUIRE", "tiny", "MAXHOLD", 1}} {
			err := do(t, c, args...).Err()
			if err == nil || !strings.HasPrefix(err.Error(), "ERR invalid ") || !strings.Contains(err.Error(), "LOCKPROXY_MIN_TTL") {
				t.Errorf("%v: %v, want -ERR naming LOCKPROXY_MIN_TTL", args, err)
			}
		}
		for _, field := range []string{"acquire_error_total", "acquire_acquired_total", "acquire_timeout_total", "locks_held"} {
			if got := infoField(t, c, field); got != "0" {
				t.Errorf("INFO %s = %s, want 0", field, got)
			}
		}
		if got := held(t, c); len(got) != 0 {
			t.Errorf("LOCK.HELD = %v", got)
		}
		if in := info(t, c, "tiny"); in["held"] != int64(0) {
			t.Errorf("LOCK.INFO tiny = %v", in)
		}
	})
}

// LOCKPROXY_MAX_WAIT=0 allows only try-once acquires, as the docs say: it
// is not taken for "unset" and replaced by the default.
func TestMaxWaitZero(t *testing.T) {
	p := startProxy(t, map[string]string{"MAX_WAIT": "0"})
	mustToken(t, p.conn(t, 2), "try-once", 60000)
	other := p.conn(t, 2)
	mustNull(t, other, "try-once", 60000, "WAIT", 0)
	err := do(t, other, "LOCK.ACQUIRE", "try-once", 60000, "WAIT", 1).Err()
	if err == nil || err.Error() != "ERR timeout is out of range: WAIT is at most 0 ms (LOCKPROXY_MAX_WAIT)" {
		t.Errorf("WAIT 1 with LOCKPROXY_MAX_WAIT=0: %v", err)
	}
}

// One address of a Cluster's node is a Cluster in auto mode: lockproxy asks
// the node at start, and grants names on every primary. Read as one Redis
// (LOCKPROXY_UPSTREAM_MODE=single), it grants nothing and says why.
func TestClusterFoundFromOneNode(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	p := startProxy(t, map[string]string{"UPSTREAM": cl.Nodes[0].URL(), "LOG_LEVEL": "info"})
	if !strings.Contains(p.logs.String(), "upstream_mode=cluster") {
		t.Errorf("the start-up log does not say upstream_mode=cluster:\n%s", p.logs)
	}
	c := p.conn(t, 2)
	onEveryPrimary(t, cl, "one-node-", func(name string) {
		mustInt(t, 1, c, "LOCK.RELEASE", name, mustToken(t, c, name, 60000))
	})

	single := startProxy(t, map[string]string{"UPSTREAM": cl.Nodes[0].URL(), "UPSTREAM_MODE": "single", "UPSTREAM_TIMEOUT": "500ms"})
	if err := single.Ready(); err == nil || !strings.Contains(err.Error(), "upstream") {
		t.Errorf("read as one Redis, /readyz says %v; want the upstream down", err)
	}
	err := do(t, single.conn(t, 2), "LOCK.ACQUIRE", "one-node-single", 1000).Err()
	if err == nil || !strings.Contains(err.Error(), "LOCKPROXY_UPSTREAM_MODE=cluster") {
		t.Errorf("LOCK.ACQUIRE through a Cluster node read as one Redis: %v; want an error naming LOCKPROXY_UPSTREAM_MODE=cluster", err)
	}
}
