// Package relay is a TCP proxy for tests that can freeze, delay, cut and
// reset the traffic between a client and a server.
package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

const (
	// dialTimeout keeps a relayed connection from hanging on an
	// unreachable target longer than any sane test would wait.
	dialTimeout = 5 * time.Second
	// queueDepth bounds bytes held per direction in the relay itself; past
	// it the reader stops and the kernel buffers hold the rest, so nothing
	// is ever dropped by a Freeze.
	queueDepth = 64
	readBuf    = 32 << 10
)

// Relay forwards TCP connections from Addr to a target and lets a test
// misbehave on the network's behalf.
type Relay struct {
	ln     net.Listener
	target string
	ctx    context.Context // cancelled by Close, aborting pending dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop and one per link

	mu      sync.Mutex
	closed  bool
	frozen  bool
	delay   time.Duration
	refuse  bool
	drop    bool
	changed chan struct{} // closed and replaced whenever frozen or delay change
	links   map[*link]struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start listens on 127.0.0.1:0 and forwards each accepted connection to
// target. t.Cleanup closes it.
func Start(t testing.TB, target string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relay: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		ln:      ln,
		target:  target,
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		links:   make(map[*link]struct{}),
	}
	r.wg.Add(1)
	go r.acceptLoop()
	t.Cleanup(func() { r.Close() })
	return r
}

// Addr is the address clients should dial instead of the target.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Freeze stops forwarding bytes in both directions on existing and new
// connections. Bytes are held, not dropped, and connections stay open: a
// partition that black-holes packets rather than refusing them, which is
// the case where only timeouts can tell a client something is wrong.
func (r *Relay) Freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
	r.notifyLocked()
}

// Thaw resumes forwarding, delivering held bytes in order.
func (r *Relay) Thaw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = false
	r.notifyLocked()
}

// SetDelay delays every chunk in both directions by d (0 = none). Each
// chunk is due d after it arrived, so the delay adds latency without
// throttling throughput, and order is preserved.
func (r *Relay) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = max(d, 0)
	r.notifyLocked()
}

// ResetAll closes every current connection abruptly, with a TCP RST on both
// sides, as a crashed middlebox or peer would.
func (r *Relay) ResetAll() {
	for _, l := range r.takeLinks() {
		l.kill(true)
	}
}

// Refuse makes the relay reset new connections as soon as they are accepted,
// until Refuse(false). The dial itself may succeed (the kernel completes the
// handshake before accept), so clients see the failure on first use.
func (r *Relay) Refuse(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuse = on
}

// DropReplies makes the relay swallow server→client bytes that arrive while
// it is on: the request still reaches the server and runs, the reply is lost.
func (r *Relay) DropReplies(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop = on
}

// Conns reports the number of open relayed connections.
func (r *Relay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.links)
}

// Close stops accepting, closes every relayed connection and returns once
// all of the relay's goroutines have exited. It is idempotent.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.closeErr = r.ln.Close()
		r.cancel()
		for _, l := range r.takeLinks() {
			l.kill(false)
		}
		r.wg.Wait()
	})
	return r.closeErr
}

// notifyLocked wakes every writer waiting on the old frozen/delay state.
func (r *Relay) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Relay) takeLinks() []*link {
	r.mu.Lock()
	defer r.mu.Unlock()
	links := make([]*link, 0, len(r.links))
	for l := range r.links {
		links = append(links, l)
	}
	clear(r.links)
	return links
}

func (r *Relay) forget(l *link) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.links, l)
}

func (r *Relay) dropping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drop
}

func (r *Relay) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. EMFILE): back off instead of spinning, but
			// stay responsive to Close.
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		r.mu.Lock()
		if r.closed || r.refuse {
			r.mu.Unlock()
			reset(c)
			continue
		}
		l := &link{client: c, done: make(chan struct{})}
		r.links[l] = struct{}{}
		// Counted while the accept loop's own count is held, so this never
		// races with Close's Wait.
		r.wg.Add(1)
		r.mu.Unlock()
		go r.serve(l)
	}
}

// serve owns one relayed connection and both of its directions.
func (r *Relay) serve(l *link) {
	defer r.wg.Done()
	defer r.forget(l)
	defer l.kill(false)

	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(r.ctx, "tcp", r.target)
	if err != nil {
		// The client already has a connected socket; a reset is the
		// closest we can get to "connection refused".
		l.kill(true)
		return
	}
	if !l.attach(server) {
		return
	}
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); r.pipe(l, l.client, server, false) }()
	go func() { defer pipes.Done(); r.pipe(l, server, l.client, true) }()
	pipes.Wait()
}

// chunk is one read's worth of bytes, or eof, stamped with its arrival.
type chunk struct {
	data []byte
	eof  bool
	at   time.Time
}

// pipe copies src to dst. Reading and writing are split so that bytes keep
// being timestamped on arrival while earlier ones wait out a delay or a
// freeze; a single read-then-write loop would stack delays up.
func (r *Relay) pipe(l *link, src, dst net.Conn, replies bool) {
	q := make(chan chunk, queueDepth)
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		defer close(q)
		r.read(l, src, q, replies)
	}()
	defer reader.Wait()

	for c := range q {
		if !r.hold(l, c.at) {
			return
		}
		if c.eof {
			// Half-close keeps request/response protocols working when a
			// client shuts down its write side and waits for the answer.
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			l.kill(true)
			return
		}
	}
}

func (r *Relay) read(l *link, src net.Conn, q chan<- chunk, replies bool) {
	buf := make([]byte, readBuf)
	for {
		n, err := src.Read(buf)
		if n > 0 && !(replies && r.dropping()) {
			select {
			case q <- chunk{data: bytes.Clone(buf[:n]), at: time.Now()}:
			case <-l.done:
				return
			}
		}
		if errors.Is(err, io.EOF) {
			// Queued like data so that a FIN is frozen and delayed too.
			select {
			case q <- chunk{eof: true, at: time.Now()}:
			case <-l.done:
			}
			return
		}
		if err != nil {
			// A reset or error on one side is passed on abruptly to the
			// other, as it would be end to end without the relay.
			l.kill(true)
			return
		}
	}
}

// hold blocks until a chunk that arrived at `at` may be delivered: not
// frozen and its delay served. It re-evaluates whenever the settings change,
// so Thaw and SetDelay(0) take effect on bytes already waiting. It reports
// false if the link died meanwhile.
func (r *Relay) hold(l *link, at time.Time) bool {
	for {
		r.mu.Lock()
		frozen, delay, changed := r.frozen, r.delay, r.changed
		r.mu.Unlock()

		var due <-chan time.Time
		if !frozen {
			wait := time.Until(at.Add(delay))
			if wait <= 0 {
				return true
			}
			due = time.After(wait)
		}
		select {
		case <-due:
		case <-changed:
		case <-l.done:
			return false
		}
	}
}

// link is one client connection and, once dialled, its server connection.
type link struct {
	client net.Conn
	done   chan struct{} // closed by kill

	mu     sync.Mutex
	server net.Conn
	dead   bool
}

// attach records the server side, or closes it if the link was killed while
// dialling.
func (l *link) attach(server net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		server.Close()
		return false
	}
	l.server = server
	return true
}

// kill closes both sides once; reset makes the close abrupt (RST).
func (l *link) kill(rst bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return
	}
	l.dead = true
	close(l.done)
	for _, c := range []net.Conn{l.client, l.server} {
		if c == nil {
			continue
		}
		if rst {
			reset(c)
		} else {
			c.Close()
		}
	}
}

// reset closes c with SO_LINGER 0, which makes the kernel send RST instead
// of FIN, so the peer gets ECONNRESET rather than a clean EOF.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
