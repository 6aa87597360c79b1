package compat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/respclient"
)

// recorder is a TCP relay between a client and the sidecar that pairs each
// command the client sends with the reply it gets, so that a test can see
// the handshake a client sends by default and every error reply, including
// those the client ignores.
type recorder struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   []*recConn
	sockets []net.Conn // both ends of every relayed connection
	closed  bool
	wg      sync.WaitGroup
}

// exchange is one command and its reply.
type exchange struct {
	cmd   []string
	reply respclient.Value
}

func (e exchange) String() string {
	return fmt.Sprintf("%s -> %s", strings.Join(e.cmd, " "), e.reply)
}

type recConn struct {
	pending chan []string // commands still waiting for their reply

	mu        sync.Mutex
	exchanges []exchange
	pushes    []respclient.Value
	broken    string // why parsing stopped, if it did
}

func startRecorder(t testing.TB, target string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		// A connection the client left open must not hold the test up.
		r.mu.Lock()
		r.closed = true
		for _, c := range r.sockets {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

func (r *recorder) accept() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", r.target)
		if err != nil {
			client.Close()
			continue
		}
		c := &recConn{pending: make(chan []string, 4096)}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.sockets = append(r.sockets, client, server)
		if r.closed {
			client.Close()
			server.Close()
		}
		r.mu.Unlock()
		r.wg.Add(2)
		// When either side closes, close both: a client that hangs up must
		// look like a closed connection to the sidecar at once.
		var once sync.Once
		closeBoth := func() { once.Do(func() { client.Close(); server.Close() }) }
		go func() {
			defer r.wg.Done()
			defer closeBoth()
			c.relay(server, client, c.readRequests)
		}()
		go func() {
			defer r.wg.Done()
			defer closeBoth()
			c.relay(client, server, c.readReplies)
		}()
	}
}

// relay copies src to dst while parse reads the same bytes.
func (c *recConn) relay(dst io.Writer, src io.Reader, parse func(*bufio.Reader) error) {
	pr, pw := io.Pipe()
	parsed := make(chan struct{})
	go func() {
		defer close(parsed)
		if err := parse(bufio.NewReader(pr)); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
			c.mu.Lock()
			c.broken = err.Error()
			c.mu.Unlock()
		}
		io.Copy(io.Discard, pr) // never block the relay on a parser that gave up
	}()
	_, _ = io.Copy(dst, io.TeeReader(src, pw))
	pw.Close()
	<-parsed
}

func (c *recConn) readRequests(rd *bufio.Reader) error {
	for {
		cmd, err := respclient.ReadRequest(rd)
		if err != nil {
			return err
		}
		if len(cmd) == 0 {
			continue
		}
		c.pending <- cmd
	}
}

func (c *recConn) readReplies(rd *bufio.Reader) error {
	for {
		v, err := respclient.ReadValue(rd)
		if err != nil {
			return err
		}
		if v.Kind == '>' {
			c.mu.Lock()
			c.pushes = append(c.pushes, v)
			c.mu.Unlock()
			continue
		}
		// The request parser may still be finishing the command that the
		// sidecar has already answered.
		var cmd []string
		select {
		case cmd = <-c.pending:
		case <-time.After(5 * time.Second):
			cmd = []string{"(a reply to no command)"}
		}
		c.mu.Lock()
		c.exchanges = append(c.exchanges, exchange{cmd: cmd, reply: v})
		c.mu.Unlock()
	}
}

// snapshot returns every connection's exchanges so far.
func (r *recorder) snapshot() (exchanges [][]exchange, pushes []respclient.Value, broken []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.mu.Lock()
		exchanges = append(exchanges, append([]exchange(nil), c.exchanges...))
		pushes = append(pushes, c.pushes...)
		if c.broken != "" {
			broken = append(broken, c.broken)
		}
		c.mu.Unlock()
	}
	return exchanges, pushes, broken
}

// check fails t for every error reply the sidecar sent and every stream the
// recorder could not parse, and logs the commands the client sent that are
// not part of the scenario: its handshake.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	convs, _, broken := r.snapshot()
	for _, b := range broken {
		t.Errorf("recorder could not follow the protocol: %s", b)
	}
	handshake := map[string]bool{}
	var order []string
	for _, conv := range convs {
		for _, e := range conv {
			if e.reply.IsErr() {
				if why := tolerated(e.cmd); why != "" {
					t.Logf("tolerated error reply: %v (%s)", e, why)
				} else {
					t.Errorf("the sidecar answered an error to a command the client sent: %v", e)
				}
			}
			if name := strings.ToUpper(e.cmd[0]); !strings.HasPrefix(name, "LOCK.") && name != "PING" {
				key := strings.ToUpper(strings.Join(e.cmd, " "))
				if len(e.cmd) > 2 && (name == "CLIENT" || name == "HELLO") {
					key = strings.ToUpper(strings.Join(e.cmd[:2], " ")) + " …"
				}
				if !handshake[key] {
					handshake[key] = true
					order = append(order, key)
				}
			}
		}
	}
	t.Logf("connection commands the client sent: %s", strings.Join(order, "; "))
}

// toleratedErrors are error replies that are right: Redis 7 answers the
// same, and the client that sends the command goes on without it.
var toleratedErrors = map[string]string{
	"CLIENT MAINT_NOTIFICATIONS": "go-redis v9 and node-redis v6 over RESP3 ask for Redis Enterprise's " +
		"maintenance notifications; Redis 7 refuses it with the same error, and their default mode (auto) " +
		"carries on without them",
	"CLUSTER SLOTS": "rueidis probes for a cluster and takes any error that names CLUSTER, like a standalone " +
		"Redis's \"This instance has cluster support disabled\", as a single node",
}

// tolerated returns why an error reply to cmd is right, or "".
func tolerated(cmd []string) string {
	for n := len(cmd); n > 0; n-- {
		if why, ok := toleratedErrors[strings.ToUpper(strings.Join(cmd[:n], " "))]; ok {
			return why
		}
	}
	return ""
}
