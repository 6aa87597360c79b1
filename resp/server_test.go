package resp_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/resp"
)

// testServer serves h on 127.0.0.1:0 and closes at cleanup.
func testServer(t *testing.T, h resp.HandlerFunc, opt resp.Options) *resp.Server {
	t.Helper()
	s, err := resp.Listen("tcp", "127.0.0.1:0", h, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, s *resp.Server) *client {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c, bufio.NewReader(c)}
}

func (c *client) read(t *testing.T, n int) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	for range n {
		l, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v after %q", err, b.String()+l)
		}
		b.WriteString(l)
	}
	return b.String()
}

// A push made while a reply is being built waits for it, so it never
// splits a reply and lands after the replies ahead of it.
func TestPushFollowsReply(t *testing.T) {
	s := testServer(t, func(c *resp.Conn, cmd resp.Command) {
		switch strings.ToUpper(string(cmd.Args[0])) {
		case "HELLO3":
			c.SetProto(3)
			c.WriteSimple("OK")
		case "PUSHME":
			done := make(chan struct{})
			go func() {
				c.Push("note", "x")
				close(done)
			}()
			<-done // the push is queued while this reply is still unwritten
			c.WriteArray(2)
			c.WriteBulkString("reply")
			c.WriteBulkString("done")
		}
	}, resp.Options{})
	c := dial(t, s)
	io.WriteString(c, "HELLO3\r\nPUSHME\r\n")
	want := "+OK\r\n*2\r\n$5\r\nreply\r\n$4\r\ndone\r\n>2\r\n$4\r\nnote\r\n$1\r\nx\r\n"
	if got := c.read(t, 11); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A handler that calls Flush before slow work gets the pipeline's earlier
// replies out first, and pushes made while the work runs go out at once,
// ahead of its reply; the next command's pushes wait for replies again.
func TestFlushBeforeSlowWork(t *testing.T) {
	inside, finish := make(chan struct{}), make(chan struct{})
	var conn atomic.Pointer[resp.Conn]
	s := testServer(t, func(c *resp.Conn, cmd resp.Command) {
		switch string(cmd.Args[0]) {
		case "HELLO3":
			c.SetProto(3)
			c.WriteSimple("OK")
		case "SLOW":
			c.Flush()
			conn.Store(c)
			inside <- struct{}{}
			<-finish
			c.WriteSimple("SLOW")
		case "PUSHME":
			done := make(chan struct{})
			go func() {
				c.Push("late")
				close(done)
			}()
			<-done
			c.WriteSimple("PUSHME")
		}
	}, resp.Options{})
	c := dial(t, s)
	var once sync.Once
	end := func() { once.Do(func() { close(finish) }) }
	t.Cleanup(end) // before the server's cleanup, which waits for the handler
	io.WriteString(c, "HELLO3\r\nSLOW\r\nPUSHME\r\n")
	<-inside
	if got := c.read(t, 1); got != "+OK\r\n" {
		t.Fatalf("before the slow work ends: got %q, want HELLO3's reply", got)
	}
	conn.Load().Push("now")
	if got := c.read(t, 3); got != ">1\r\n$3\r\nnow\r\n" {
		t.Fatalf("a push during the slow work: got %q", got)
	}
	end()
	if got, want := c.read(t, 5), "+SLOW\r\n+PUSHME\r\n>1\r\n$4\r\nlate\r\n"; got != want {
		t.Errorf("after the slow work: got %q, want %q", got, want)
	}
}

// RESP2 has no pushes: nothing is sent.
func TestNoPushOnRESP2(t *testing.T) {
	var pushed atomic.Bool
	s := testServer(t, func(c *resp.Conn, cmd resp.Command) {
		pushed.Store(c.Push("note"))
		c.WriteSimple("OK")
	}, resp.Options{})
	c := dial(t, s)
	io.WriteString(c, "X\r\nX\r\n")
	if got := c.read(t, 2); got != "+OK\r\n+OK\r\n" || pushed.Load() {
		t.Errorf("got %q, pushed %v", got, pushed.Load())
	}
}

// Block's context ends the moment the client hangs up, and OnClose runs.
func TestBlockSeesHangUp(t *testing.T) {
	ended := make(chan error, 1)
	closed := make(chan struct{})
	inside := make(chan struct{})
	s := testServer(t, func(c *resp.Conn, cmd resp.Command) {
		c.Block(func(ctx context.Context) {
			close(inside)
			<-ctx.Done()
			ended <- ctx.Err()
		})
		c.WriteSimple("OK")
	}, resp.Options{OnClose: func(*resp.Conn) { close(closed) }})
	c := dial(t, s)
	io.WriteString(c, "BLOCK\r\n")
	<-inside
	c.Close()
	select {
	case err := <-ended:
		if err != context.Canceled {
			t.Errorf("ctx ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked command never saw the hang-up")
	}
	<-closed
}

// Requests pipelined behind a blocking one are kept and served after it.
func TestBlockKeepsPipeline(t *testing.T) {
	release := make(chan struct{})
	inside := make(chan struct{}, 1)
	s := testServer(t, func(c *resp.Conn, cmd resp.Command) {
		if string(cmd.Args[0]) == "BLOCK" {
			c.Block(func(ctx context.Context) {
				inside <- struct{}{}
				<-release
			})
		}
		c.WriteBulk(cmd.Args[0])
	}, resp.Options{})
	c := dial(t, s)
	io.WriteString(c, "BLOCK\r\n")
	<-inside
	// Sent while BLOCK runs, when the background read is what takes it in.
	io.WriteString(c, "A\r\n*1\r\n$1\r\nB\r\n")
	close(release)
	if got := c.read(t, 6); got != "$5\r\nBLOCK\r\n$1\r\nA\r\n$1\r\nB\r\n" {
		t.Errorf("got %q", got)
	}
}

// Close ends every connection and waits for their OnClose.
func TestCloseRunsOnClose(t *testing.T) {
	var open atomic.Int32
	s, err := resp.Listen("tcp", "127.0.0.1:0", resp.HandlerFunc(func(c *resp.Conn, cmd resp.Command) {
		c.WriteSimple("OK")
	}), resp.Options{
		OnOpen:  func(*resp.Conn) { open.Add(1) },
		OnClose: func(*resp.Conn) { open.Add(-1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c := dial(t, s)
		io.WriteString(c, "PING\r\n")
		c.read(t, 1)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := open.Load(); n != 0 {
		t.Errorf("%d connections without OnClose after Close", n)
	}
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Error("still accepting after Close")
	}
}

// A protocol error is answered, then the connection is closed.
func TestProtocolErrorCloses(t *testing.T) {
	s := testServer(t, func(c *resp.Conn, cmd resp.Command) { c.WriteSimple("OK") }, resp.Options{})
	c := dial(t, s)
	io.WriteString(c, "*1\r\n$-5\r\n")
	if got := c.read(t, 1); got != "-ERR Protocol error: invalid bulk length\r\n" {
		t.Errorf("got %q", got)
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("after a protocol error: %v, want EOF", err)
	}
}

// A panic in a handler ends that connection only; the server serves on.
func TestPanicEndsOneConnection(t *testing.T) {
	closed := make(chan struct{}, 1)
	s := testServer(t, func(c *resp.Conn, cmd resp.Command) {
		if string(cmd.Args[0]) == "BOOM" {
			panic("boom")
		}
		c.WriteSimple("OK")
	}, resp.Options{OnClose: func(*resp.Conn) { closed <- struct{}{} }})
	c := dial(t, s)
	io.WriteString(c, "BOOM\r\n")
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("after a panic: %v, want EOF", err)
	}
	<-closed
	c2 := dial(t, s)
	io.WriteString(c2, "PING\r\n")
	if got := c2.read(t, 1); got != "+OK\r\n" {
		t.Errorf("server after a panic: %q", got)
	}
}

// A socket file left by a killed process does not stop a restart.
func TestStaleUnixSocket(t *testing.T) {
	path := t.TempDir() + "/lp.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, as after SIGKILL
	s, err := resp.Listen("unix", path, resp.HandlerFunc(func(c *resp.Conn, cmd resp.Command) { c.WriteSimple("OK") }), resp.Options{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer s.Close(context.Background())
	if _, err := resp.Listen("unix", path, nil, resp.Options{}); err == nil {
		t.Error("a second server took over a live socket")
	}
}

// A client that trickles a request is cut off at the request timeout; one
// that sends whole requests slowly, or sits idle, is not.
func TestRequestTimeout(t *testing.T) {
	s := testServer(t, func(c *resp.Conn, cmd resp.Command) { c.WriteSimple("OK") },
		resp.Options{RequestTimeout: 200 * time.Millisecond})

	slow := dial(t, s)
	start := time.Now()
	io.WriteString(slow, "*2\r\n$4\r\nPING") // and nothing more
	if got := slow.read(t, 1); got != "-ERR Protocol error: request timeout (LOCKPROXY_REQUEST_TIMEOUT)\r\n" {
		t.Errorf("got %q", got)
	}
	if _, err := slow.r.ReadByte(); err != io.EOF {
		t.Errorf("after the timeout: %v, want EOF", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("cut off after %v, before the 200ms timeout", d)
	}

	patient := dial(t, s)
	for range 4 {
		time.Sleep(100 * time.Millisecond) // idle between whole requests: 400ms in all
		io.WriteString(patient, "PING\r\n")
		if got := patient.read(t, 1); got != "+OK\r\n" {
			t.Fatalf("got %q", got)
		}
	}
}

// failingListener fails its first Accepts the way a process out of file
// descriptors does, recording when each Accept was called.
type failingListener struct {
	net.Listener
	fails int
	mu    sync.Mutex
	calls []time.Time
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	n := len(l.calls)
	l.mu.Unlock()
	if n <= l.fails {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// Out of file descriptors, the accept loop backs off, doubling from 5ms,
// instead of spinning, and serves again once accepting works.
func TestAcceptBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: ln, fails: 4}
	s := resp.Serve(fl, resp.HandlerFunc(func(c *resp.Conn, cmd resp.Command) { c.WriteSimple("OK") }), resp.Options{})
	defer s.Close(context.Background())
	c := dial(t, s)
	io.WriteString(c, "PING\r\n")
	if got := c.read(t, 1); got != "+OK\r\n" {
		t.Fatalf("after the failures: %q", got)
	}
	fl.mu.Lock()
	calls := fl.calls[:fl.fails+1] // the fifth call accepted c
	fl.mu.Unlock()
	want := 5 * time.Millisecond
	for i := 1; i <= fl.fails; i++ {
		if gap := calls[i].Sub(calls[i-1]); gap < want {
			t.Errorf("accept %d came %v after a failure, want at least %v", i+1, gap, want)
		}
		want *= 2
	}
}

// Drain closes an idle connection at once, lets a blocked command write its
// reply first, and runs OnClose only once the client can see the close.
func TestDrain(t *testing.T) {
	release, blocked := make(chan struct{}), make(chan struct{})
	eof := make(chan struct{}, 2)
	onCloseOK := make(chan bool, 2)
	s, err := resp.Listen("tcp", "127.0.0.1:0", resp.HandlerFunc(func(c *resp.Conn, cmd resp.Command) {
		if strings.EqualFold(string(cmd.Args[0]), "block") {
			c.Block(func(ctx context.Context) {
				close(blocked)
				<-release
			})
			c.WriteSimple("ANSWERED")
			return
		}
		c.WriteSimple("OK")
	}), resp.Options{OnClose: func(c *resp.Conn) {
		// The client must already see EOF: wait for the test to say so.
		select {
		case <-eof:
			onCloseOK <- true
		case <-time.After(5 * time.Second):
			onCloseOK <- false
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	idle, busy := dial(t, s), dial(t, s)
	io.WriteString(idle, "PING\r\n")
	idle.read(t, 1)
	io.WriteString(busy, "BLOCK\r\n")
	<-blocked
	expectEOF := func(c *client) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.r.ReadByte(); err != io.EOF {
			t.Errorf("want EOF, got %v", err)
		}
		eof <- struct{}{}
	}
	drained := make(chan error, 1)
	go func() { drained <- s.Drain(context.Background()) }()
	expectEOF(idle) // closed at once, although busy still blocks
	if !<-onCloseOK {
		t.Error("OnClose ran while the idle client could not see the close")
	}
	close(release)
	if got := busy.read(t, 1); got != "+ANSWERED\r\n" {
		t.Errorf("the blocked command's reply: %q", got)
	}
	expectEOF(busy)
	if !<-onCloseOK {
		t.Error("OnClose ran while the busy client could not see the close")
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
}
