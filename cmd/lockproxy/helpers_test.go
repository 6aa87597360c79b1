package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/sidecar"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// proxy is a lockproxy started through run() for one test.
type proxy struct {
	*sidecar.Sidecar
	stop func() error    // cancels run's context and returns run's error
	logs *syncbuf.Buffer // what it logged
}

// startProxy runs lockproxy on 127.0.0.1:0 with the given LOCKPROXY_*
// settings (keys without the prefix) and stops it at cleanup.
func startProxy(t testing.TB, settings map[string]string) *proxy {
	t.Helper()
	environ := []string{"LOCKPROXY_LISTEN=127.0.0.1:0", "LOCKPROXY_LOG_LEVEL=warn"}
	if _, set := settings["LOG_LEVEL"]; set {
		environ = environ[:1]
	}
	for k, v := range settings {
		environ = append(environ, "LOCKPROXY_"+k+"="+v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *sidecar.Sidecar, 1)
	errc := make(chan error, 1)
	logs := &syncbuf.Buffer{}
	go func() {
		errc <- run(ctx, nil, environ, io.Discard, logs, func(a *sidecar.Sidecar) { started <- a })
	}()
	var a *sidecar.Sidecar
	select {
	case a = <-started:
	case err := <-errc:
		cancel()
		t.Fatalf("run: %v\n%s", err, logs)
	}
	var once sync.Once
	var runErr error
	p := &proxy{Sidecar: a, logs: logs, stop: func() error {
		once.Do(func() {
			cancel()
			runErr = <-errc
		})
		return runErr
	}}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("run returned %v", err)
		}
		if t.Failed() {
			t.Logf("lockproxy log:\n%s", logs)
		}
	})
	return p
}

// client returns a go-redis client to p speaking protocol proto.
func (p *proxy) client(t testing.TB, proto int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr().String(), Protocol: proto})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// conn returns one pinned connection: owned locks belong to a connection.
func (p *proxy) conn(t testing.TB, proto int) *redis.Conn {
	t.Helper()
	c := p.client(t, proto).Conn()
	t.Cleanup(func() { c.Close() })
	return c
}

func bg() context.Context { return context.Background() }

// doer is a go-redis client or pinned connection.
type doer interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// do runs a command and fails the test on a transport error.
func do(t testing.TB, c doer, args ...any) *redis.Cmd {
	t.Helper()
	cmd := redis.NewCmd(bg(), args...)
	_ = c.Process(bg(), cmd)
	return cmd
}

func mustToken(t testing.TB, c doer, args ...any) string {
	t.Helper()
	tok, err := do(t, c, append([]any{"LOCK.ACQUIRE"}, args...)...).Text()
	if err != nil {
		t.Fatalf("LOCK.ACQUIRE %v: %v", args, err)
	}
	return tok
}

func mustNull(t testing.TB, c doer, args ...any) {
	t.Helper()
	v, err := do(t, c, append([]any{"LOCK.ACQUIRE"}, args...)...).Result()
	if err != redis.Nil {
		t.Fatalf("LOCK.ACQUIRE %v = %v, %v; want a null reply (held by someone else)", args, v, err)
	}
}

func mustInt(t testing.TB, want int64, c doer, args ...any) {
	t.Helper()
	got, err := do(t, c, args...).Int64()
	if err != nil || got != want {
		t.Fatalf("%v = %v, %v; want %d", args, got, err, want)
	}
}

// info returns LOCK.INFO as a map, whichever protocol the client speaks.
func info(t testing.TB, c doer, name string) map[string]any {
	t.Helper()
	v, err := do(t, c, "LOCK.INFO", name).Result()
	if err != nil {
		t.Fatalf("LOCK.INFO %s: %v", name, err)
	}
	return asMap(t, v)
}

// asMap is a map reply whichever protocol the client speaks: a RESP3 map,
// or RESP2's flat field/value array.
func asMap(t testing.TB, v any) map[string]any {
	t.Helper()
	m := map[string]any{}
	switch v := v.(type) {
	case map[any]any:
		for k, x := range v {
			m[k.(string)] = x
		}
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			m[v[i].(string)] = v[i+1]
		}
	default:
		t.Fatalf("not a map reply: %T %v", v, v)
	}
	return m
}

func held(t testing.TB, c doer) []string {
	t.Helper()
	names, err := do(t, c, "LOCK.HELD").StringSlice()
	if err != nil {
		t.Fatalf("LOCK.HELD: %v", err)
	}
	sort.Strings(names)
	return names
}

// raw is a plain TCP connection for byte-level protocol tests.
type raw struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{Conn: c, r: bufio.NewReader(c)}
}

func (r *raw) send(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(r, s); err != nil {
		t.Fatal(err)
	}
}

// line reads one reply line, without its CRLF, within 5s.
func (r *raw) line(t testing.TB) string {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := r.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a reply: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// closed reports whether the server closed the connection (EOF within 5s).
func (r *raw) closed(t testing.TB) bool {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := r.r.ReadByte()
	return err == io.EOF || (err != nil && strings.Contains(err.Error(), "reset"))
}

func cmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// frame reads one whole reply and returns its lines, headers included.
// Bulk payloads in these tests hold no CRLF, so a line read is enough.
func (r *raw) frame(t testing.TB) []string {
	t.Helper()
	l := r.line(t)
	lines := []string{l}
	n, _ := strconv.Atoi(l[1:])
	switch l[0] {
	case '$', '=':
		if n >= 0 {
			lines = append(lines, r.line(t))
		}
	case '*', '>', '~':
		for range n {
			lines = append(lines, r.frame(t)...)
		}
	case '%':
		for range 2 * n {
			lines = append(lines, r.frame(t)...)
		}
	}
	return lines
}

// holder is a RESP3 connection to p holding name with ttl ms, on which
// lock.lost pushes arrive; it returns the connection and the token.
func holder(t testing.TB, p *proxy, name string, ttl int) (*raw, string) {
	t.Helper()
	c := dialRaw(t, p.Addr().String())
	c.send(t, cmd("HELLO", "3"))
	c.frame(t)
	c.send(t, cmd("LOCK.ACQUIRE", name, strconv.Itoa(ttl)))
	return c, c.frame(t)[1]
}

// untilGranted acquires name on c, retrying until a grant, and returns how
// long after since it came.
func untilGranted(t testing.TB, c doer, name string, ttl int, since time.Time) time.Duration {
	t.Helper()
	var took time.Duration
	waitFor(t, func() bool {
		_, err := do(t, c, "LOCK.ACQUIRE", name, ttl).Text()
		took = time.Since(since)
		return err == nil
	})
	return took
}

// onEveryPrimary calls fn with the names prefix0, prefix1, … until every
// primary of cl has served one of them.
func onEveryPrimary(t testing.TB, cl *redistest.Cluster, prefix string, fn func(name string)) {
	t.Helper()
	plain := cl.Client(t)
	on := map[*redistest.Server]bool{}
	for i, primaries := 0, len(cl.Primaries(t)); len(on) < primaries; i++ {
		name := prefix + strconv.Itoa(i)
		fn(name)
		on[cl.Primary(t, int(plain.ClusterKeySlot(bg(), "{"+name+"}").Val()))] = true
	}
}
