package lockclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// errConnClosed ends the calls of a connection this client closed itself.
var errConnClosed = errors.New("lockclient: connection closed")

// conn is one RESP3 connection to lockproxy. Requests may come from any
// goroutine; one reader goroutine, owned by the conn and joined by close,
// hands each reply to the request it answers, in order, and each push to
// the lock bound to the connection.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader // read only by the reader goroutine
	done chan struct{} // closed when the reader goroutine has returned

	wmu sync.Mutex // serialises queueing and writing, so replies match requests
	buf []byte     // guarded by wmu; the encoding buffer

	mu      sync.Mutex
	pending []*call // guarded by mu; requests awaiting their reply, in order
	err     error   // guarded by mu; set once: the connection is dead
	bound   *Lock   // guarded by mu; the owned lock this connection holds, if any
}

// call is one request awaiting its reply.
type call struct {
	reply chan result // buffered: the reader never waits for an abandoned call
	// onReply, when set, runs on the reader goroutine with the reply before
	// any later frame is read, so that a push that follows the reply
	// finds what the reply set up.
	onReply func(value)
}

type result struct {
	v   value
	err error
}

// dialConn connects, starts the reader and says HELLO 3 (with AUTH when a
// password is set). ctx bounds the whole handshake.
func dialConn(ctx context.Context, addr string, o *dialOptions) (*conn, error) {
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	nd := &net.Dialer{KeepAlive: 15 * time.Second}
	var nc net.Conn
	var err error
	if o.tls != nil {
		// tls.Dialer takes the server name from addr when the config has none.
		nc, err = (&tls.Dialer{NetDialer: nd, Config: o.tls}).DialContext(ctx, network, addr)
	} else {
		nc, err = nd.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 4096), done: make(chan struct{})}
	go c.readLoop()
	hello := []string{"HELLO", "3"}
	if o.password != "" {
		hello = append(hello, "AUTH", "default", o.password)
	}
	if _, err := c.cmd(ctx, nil, hello...); err != nil {
		c.close()
		return nil, fmt.Errorf("HELLO 3: %w", err)
	}
	return c, nil
}

// cmd sends args and waits for the reply, or for ctx. An error reply is a
// *ServerError. A call abandoned because of ctx leaves the connection
// usable: its reply is dropped when it comes.
func (c *conn) cmd(ctx context.Context, onReply func(value), args ...string) (value, error) {
	if err := ctx.Err(); err != nil {
		return value{}, err
	}
	cl := &call{reply: make(chan result, 1), onReply: onReply}
	c.wmu.Lock()
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		c.wmu.Unlock()
		return value{}, err
	}
	c.pending = append(c.pending, cl)
	c.mu.Unlock()
	c.buf = appendCommand(c.buf[:0], args)
	deadline, _ := ctx.Deadline() // zero: none
	_ = c.nc.SetWriteDeadline(deadline)
	_, err := c.nc.Write(c.buf)
	c.wmu.Unlock()
	if err != nil {
		// Part of the request may be out: the stream cannot be trusted.
		// fail answers cl, and every other call, with the error.
		c.fail(err)
	}
	var r result
	select {
	case r = <-cl.reply:
	case <-ctx.Done():
		select {
		case r = <-cl.reply: // the reply won the race: use it
		default:
			return value{}, ctx.Err()
		}
	}
	if r.err == nil && r.v.isError() {
		return r.v, &ServerError{Msg: r.v.str}
	}
	return r.v, r.err
}

// readLoop reads frames until the connection fails or is closed.
func (c *conn) readLoop() {
	defer close(c.done)
	for {
		v, err := readValue(c.br)
		if err != nil {
			c.fail(err)
			return
		}
		if v.typ == '>' {
			c.push(v)
			continue
		}
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.mu.Unlock()
			c.fail(fmt.Errorf("%w: a reply nobody asked for", errProtocol))
			return
		}
		cl := c.pending[0]
		c.pending[0] = nil
		c.pending = c.pending[1:]
		c.mu.Unlock()
		if cl.onReply != nil {
			cl.onReply(v)
		}
		cl.reply <- result{v: v}
	}
}

// push handles an out-of-band frame: ">3 lock.lost <name> <token>" marks
// the bound lock lost if it is that one. Anything else is ignored.
func (c *conn) push(v value) {
	if len(v.elems) != 3 || v.elems[0].str != "lock.lost" {
		return
	}
	c.mu.Lock()
	l := c.bound
	c.mu.Unlock()
	if l != nil && l.name == v.elems[1].str && l.token == v.elems[2].str {
		l.lose()
	}
}

// fail marks the connection dead with err (the first error wins), closes
// it, answers every waiting call, and marks the bound lock lost: lockproxy
// releases an owned lock when its connection closes.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	pending, l := c.pending, c.bound
	c.pending = nil
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, cl := range pending {
		cl.reply <- result{err: err}
	}
	if l != nil {
		l.lose()
	}
}

// bind ties an owned lock to the connection, for lock.lost pushes and for
// the connection's death. nil unbinds.
func (c *conn) bind(l *Lock) {
	c.mu.Lock()
	c.bound = l
	c.mu.Unlock()
}

// alive reports whether the connection has not failed or been closed.
func (c *conn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// close closes the connection and waits for its reader to return. It is
// safe to call more than once, but never from the reader goroutine.
func (c *conn) close() {
	c.fail(errConnClosed)
	<-c.done
}
