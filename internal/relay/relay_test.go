package relay_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
)

// shortTimeout is how long a client waits for a reply the relay withholds;
// long enough not to trip on a healthy loopback round trip under -race.
const shortTimeout = 300 * time.Millisecond

// client returns a go-redis client that surfaces relay faults as errors
// instead of retrying around them.
func client(t *testing.T, addr string, timeout time.Duration) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:            addr,
		MaxRetries:      -1,
		DialTimeout:     time.Second,
		ReadTimeout:     timeout,
		WriteTimeout:    timeout,
		DisableIdentity: true,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func setup(t *testing.T, opts ...redistest.Options) (*redistest.Server, *relay.Relay) {
	t.Helper()
	t.Parallel()
	s := redistest.Start(t, opts...)
	return s, relay.Start(t, s.Addr())
}

// raw opens a plain TCP connection, for checks that go-redis's pool would
// paper over (it discards dead idle connections and redials).
func raw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func sendPing(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatalf("write PING: %v", err)
	}
}

func readLine(c net.Conn, rd *bufio.Reader, within time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(within))
	return rd.ReadString('\n')
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestForwardsTraffic(t *testing.T) {
	s, r := setup(t)
	ctx := context.Background()
	c := client(t, r.Addr(), 5*time.Second)

	// Larger than one read buffer, so it crosses the relay in many chunks.
	big := strings.Repeat("0123456789abcdef", 1<<16)
	if err := c.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatalf("SET through relay: %v", err)
	}
	got, err := c.Get(ctx, "big").Result()
	if err != nil || got != big {
		t.Fatalf("GET through relay: %d bytes, %v; want %d bytes", len(got), err, len(big))
	}
	if direct, err := s.Client(t).StrLen(ctx, "big").Result(); err != nil || direct != int64(len(big)) {
		t.Fatalf("STRLEN on server = %d, %v", direct, err)
	}
	if n := r.Conns(); n != 1 {
		t.Fatalf("Conns() = %d, want 1", n)
	}

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := r.Conns(); n != 0 {
		t.Fatalf("Conns() after Close = %d", n)
	}
	if conn, err := net.Dial("tcp", r.Addr()); err == nil {
		conn.Close()
		t.Fatal("a closed relay still accepts connections")
	}
}

func TestFreezeHoldsBytesUntilThaw(t *testing.T) {
	_, r := setup(t)
	ctx := context.Background()
	c := client(t, r.Addr(), shortTimeout)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	r.Freeze()
	if err := c.Ping(ctx).Err(); !isTimeout(err) {
		t.Fatalf("PING while frozen: err = %v, want a timeout", err)
	}

	// New connections are accepted during a freeze, but their bytes wait.
	conn, rd := raw(t, r.Addr())
	sendPing(t, conn)
	if line, err := readLine(conn, rd, 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("read on a new connection while frozen = %q, %v; want a timeout", line, err)
	}

	r.Thaw()
	if line, err := readLine(conn, rd, 5*time.Second); err != nil || line != "+PONG\r\n" {
		t.Fatalf("held PING after Thaw answered %q, %v", line, err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Thaw: %v", err)
	}
}

func TestDropRepliesLosesReplyAfterCommandRan(t *testing.T) {
	// Keyspace notifications turn "the SET ran" into an event to wait for.
	s, r := setup(t, redistest.Options{Args: []string{"--notify-keyspace-events", "K$"}})
	ctx := context.Background()
	direct := s.Client(t)
	sub := direct.Subscribe(ctx, "__keyspace@0__:k")
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	events := sub.Channel()

	c := client(t, r.Addr(), shortTimeout)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	r.DropReplies(true)
	if err := c.Set(ctx, "k", "v", 0).Err(); !isTimeout(err) {
		t.Fatalf("SET with replies dropped: err = %v, want a timeout", err)
	}
	select {
	case msg := <-events:
		if msg.Payload != "set" {
			t.Fatalf("keyspace event %q, want set", msg.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the SET never reached the server")
	}
	if v, err := direct.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET k on server = %q, %v; want v", v, err)
	}

	r.DropReplies(false)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after DropReplies(false): %v", err)
	}
}

func TestResetAllBreaksOpenConnections(t *testing.T) {
	_, r := setup(t)
	ctx := context.Background()
	c := client(t, r.Addr(), 5*time.Second)

	pinned := c.Conn()
	t.Cleanup(func() { pinned.Close() })
	if err := pinned.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	conn, rd := raw(t, r.Addr())
	sendPing(t, conn)
	if line, err := readLine(conn, rd, 5*time.Second); err != nil || line != "+PONG\r\n" {
		t.Fatalf("raw PING answered %q, %v", line, err)
	}
	if n := r.Conns(); n != 2 {
		t.Fatalf("Conns() = %d, want 2", n)
	}

	r.ResetAll()
	if n := r.Conns(); n != 0 {
		t.Fatalf("Conns() after ResetAll = %d, want 0", n)
	}
	if err := pinned.Ping(ctx).Err(); err == nil {
		t.Fatal("PING on a reset connection succeeded")
	}
	// RST, not FIN: the peer must see a reset rather than a clean EOF.
	if line, err := readLine(conn, rd, 5*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after ResetAll = %q, %v; want ECONNRESET", line, err)
	}

	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING on a new connection after ResetAll: %v", err)
	}
}

func TestRefuseRejectsNewConnections(t *testing.T) {
	_, r := setup(t)
	ctx := context.Background()
	kept := client(t, r.Addr(), 5*time.Second)
	if err := kept.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	r.Refuse(true)
	if err := client(t, r.Addr(), shortTimeout).Ping(ctx).Err(); err == nil {
		t.Fatal("PING on a new connection while refusing succeeded")
	}
	if c, err := net.Dial("tcp", r.Addr()); err == nil {
		rd := bufio.NewReader(c)
		line, err := readLine(c, rd, 5*time.Second)
		c.Close()
		if err == nil || isTimeout(err) {
			t.Fatalf("read on a refused connection = %q, %v; want it closed", line, err)
		}
	}
	// Refusing is about new connections; established ones carry on.
	if err := kept.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING on an existing connection while refusing: %v", err)
	}

	r.Refuse(false)
	if err := client(t, r.Addr(), 5*time.Second).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Refuse(false): %v", err)
	}
}

func TestSetDelay(t *testing.T) {
	_, r := setup(t)
	ctx := context.Background()
	c := client(t, r.Addr(), 5*time.Second)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	const d = 50 * time.Millisecond
	r.SetDelay(d)
	start := time.Now()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Request and reply are each delayed, so a round trip costs at least 2d.
	if took := time.Since(start); took < 2*d {
		t.Fatalf("PING with %v delay took %v, want >= %v", d, took, 2*d)
	}

	// Order survives: a pipeline's replies come back in sequence.
	pipe := c.Pipeline()
	incrs := make([]*redis.IntCmd, 50)
	for i := range incrs {
		incrs[i] = pipe.Incr(ctx, "n")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range incrs {
		if cmd.Val() != int64(i+1) {
			t.Fatalf("INCR #%d = %d, want %d", i, cmd.Val(), i+1)
		}
	}

	// Lifting the delay releases bytes already waiting out a long one.
	r.SetDelay(time.Hour)
	conn, rd := raw(t, r.Addr())
	sendPing(t, conn)
	if line, err := readLine(conn, rd, 100*time.Millisecond); !isTimeout(err) {
		t.Fatalf("read under a 1h delay = %q, %v; want a timeout", line, err)
	}
	r.SetDelay(0)
	if line, err := readLine(conn, rd, 5*time.Second); err != nil || line != "+PONG\r\n" {
		t.Fatalf("PING after SetDelay(0) answered %q, %v", line, err)
	}
}

func TestCloseWhileFrozenReturns(t *testing.T) {
	_, r := setup(t)
	for i := range 3 {
		conn, _ := raw(t, r.Addr())
		fmt.Fprintf(conn, "SET k%d v\r\n", i)
	}
	r.Freeze()
	conn, _ := raw(t, r.Addr())
	sendPing(t, conn)

	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while connections were frozen")
	}
	if n := r.Conns(); n != 0 {
		t.Fatalf("Conns() after Close = %d", n)
	}
}
