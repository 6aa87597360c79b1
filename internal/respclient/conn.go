package respclient

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrTimeout is a reply that did not come in time.
var ErrTimeout = errors.New("respclient: no reply in time")

// Conn is a client connection read by its caller, one reply per request.
// No goroutine stands between the socket and the caller, so that a load
// tool timing microsecond gaps measures the server rather than a hand-off.
// A Conn is for one goroutine at a time.
type Conn struct {
	nc  net.Conn
	r   *bufio.Reader
	req []byte // the last request's encoding, its memory reused by the next
}

// Dial connects to addr, giving up after timeout.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &Conn{nc: nc, r: bufio.NewReader(nc), req: make([]byte, 0, 256)}, nil
}

// Do sends one request and reads its reply. An error reply is a Value
// (see IsErr); the error is the connection's or ErrProtocol.
func (c *Conn) Do(args ...string) (Value, error) {
	c.req = AppendRequest(c.req[:0], args...)
	if _, err := c.nc.Write(c.req); err != nil {
		return Value{}, err
	}
	return ReadValue(c.r)
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Timed is a RESP3 client connection with a reader goroutine of its own,
// so that each frame is timed the moment it lands and a push reaches its
// callback even while the client is idle, holding a lock. Its methods are
// safe for concurrent use.
type Timed struct {
	nc      net.Conn
	replies chan stamped
	quit    chan struct{} // closed by Shut: stop delivering replies
	once    sync.Once
	done    chan struct{} // closed when the reader stops
	err     error         // why the reader stopped; read after done
	mu      sync.Mutex    // one request, or one pipeline, at a time
}

// stamped is a reply and the moment the reader had it: the earliest a
// client can know what it says.
type stamped struct {
	v  Value
	at time.Time
}

// DialTimed connects to addr, says HELLO 3, and from then on calls onPush
// for each push and onClose once the connection has ended, both from the
// reader goroutine; either may be nil. timeout bounds the connect and,
// apart, HELLO's reply.
func DialTimed(addr string, timeout time.Duration, onPush func(v Value, at time.Time), onClose func(at time.Time)) (*Timed, error) {
	c, err := Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	t := &Timed{nc: c.nc, replies: make(chan stamped, 64), quit: make(chan struct{}), done: make(chan struct{})}
	go t.read(c.r, onPush, onClose)
	if v, _, err := t.Do(timeout, "HELLO", "3"); err != nil || v.Kind != '%' {
		t.Close()
		return nil, fmt.Errorf("respclient: HELLO 3: %v %v", v, err)
	}
	return t, nil
}

func (t *Timed) read(r *bufio.Reader, onPush func(Value, time.Time), onClose func(time.Time)) {
	defer close(t.done)
	for {
		v, err := ReadValue(r)
		if err != nil {
			closed := time.Now()
			t.err = err
			if onClose != nil {
				onClose(closed)
			}
			return
		}
		if v.Kind == '>' {
			if onPush != nil {
				onPush(v, time.Now())
			}
			continue
		}
		select {
		case t.replies <- stamped{v, time.Now()}:
		case <-t.quit:
		}
	}
}

// Send writes a request without waiting for its reply, which Next reads.
// It returns the moment just before the write: when the client committed
// to the request.
func (t *Timed) Send(args ...string) (time.Time, error) {
	at := time.Now()
	_, err := t.nc.Write(AppendRequest(nil, args...))
	return at, err
}

// Next waits up to timeout for the next reply and returns it with the
// moment it landed. A timeout leaves the connection out of step, so it
// shuts it and returns ErrTimeout.
func (t *Timed) Next(timeout time.Duration) (Value, time.Time, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-t.replies:
		return r.v, r.at, nil
	case <-t.done:
		select {
		case r := <-t.replies:
			return r.v, r.at, nil
		default:
		}
		return Value{}, time.Time{}, t.err
	case <-timer.C:
		t.Shut()
		return Value{}, time.Time{}, ErrTimeout
	}
}

// Do sends one request and waits up to timeout for its reply, as Next.
func (t *Timed) Do(timeout time.Duration, args ...string) (Value, time.Time, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := t.Send(args...); err != nil {
		return Value{}, time.Time{}, err
	}
	return t.Next(timeout)
}

// Pipeline writes every request at once and then waits up to timeout for
// each reply in turn, with no Do in between. It returns the replies, and
// the times they landed, that came before any error.
func (t *Timed) Pipeline(timeout time.Duration, requests ...[]string) ([]Value, []time.Time, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b []byte
	for _, args := range requests {
		b = AppendRequest(b, args...)
	}
	if _, err := t.nc.Write(b); err != nil {
		return nil, nil, err
	}
	vs, ats := make([]Value, 0, len(requests)), make([]time.Time, 0, len(requests))
	for range requests {
		v, at, err := t.Next(timeout)
		if err != nil {
			return vs, ats, err
		}
		vs, ats = append(vs, v), append(ats, at)
	}
	return vs, ats, nil
}

// Done is closed once the connection has ended and the reader stopped.
func (t *Timed) Done() <-chan struct{} { return t.done }

// Shut ends the connection without waiting for the reader. It is safe to
// call more than once.
func (t *Timed) Shut() {
	t.once.Do(func() {
		close(t.quit)
		t.nc.Close()
	})
}

// Close ends the connection and waits for the reader, and with it any
// callback in progress, so a callback itself must use Shut. It is safe to
// call more than once.
func (t *Timed) Close() {
	t.Shut()
	<-t.done
}
