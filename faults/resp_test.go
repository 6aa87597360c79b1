package faults

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// value is one RESP2/RESP3 reply.
type value struct {
	kind  byte // the type byte: '+', '-', ':', '$', '*', '_', '%', '>', ...
	str   string
	num   int64
	elems []value
	null  bool
}

func (v value) isErr() bool { return v.kind == '-' || v.kind == '!' }

func (v value) String() string {
	switch {
	case v.null:
		return "(nil)"
	case v.kind == ':':
		return ":" + strconv.FormatInt(v.num, 10)
	case len(v.elems) > 0 || v.kind == '*' || v.kind == '%' || v.kind == '>' || v.kind == '~':
		parts := make([]string, len(v.elems))
		for i, e := range v.elems {
			parts[i] = e.String()
		}
		return string(v.kind) + "[" + strings.Join(parts, " ") + "]"
	}
	return string(v.kind) + v.str
}

// readValue reads one whole frame. It is just enough RESP3 for lockproxy's
// replies; anything it does not know is an error, which tests report.
func readValue(r *bufio.Reader) (value, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return value{}, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return value{}, fmt.Errorf("malformed reply line %q", line)
	}
	v := value{kind: line[0], str: line[1 : len(line)-2]}
	switch v.kind {
	case '+', '-', ',', '(':
		return v, nil
	case '_':
		v.null = true
		return v, nil
	case '#':
		v.num = map[string]int64{"t": 1}[v.str]
		return v, nil
	case ':':
		v.num, err = strconv.ParseInt(v.str, 10, 64)
		return v, err
	case '$', '=', '!':
		n, err := strconv.Atoi(v.str)
		if err != nil {
			return v, err
		}
		if n < 0 {
			v.null = true
			return v, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return v, err
		}
		v.str = string(buf[:n])
		if v.kind == '!' {
			v.kind = '-'
		}
		return v, nil
	case '*', '>', '~', '%', '|':
		n, err := strconv.Atoi(v.str)
		if err != nil {
			return v, err
		}
		if n < 0 {
			v.null = true
			return v, nil
		}
		if v.kind == '%' || v.kind == '|' {
			n *= 2
		}
		v.elems = make([]value, n)
		for i := range v.elems {
			if v.elems[i], err = readValue(r); err != nil {
				return v, err
			}
		}
		return v, nil
	}
	return v, fmt.Errorf("unknown reply type %q", line)
}

// encode writes args as a RESP array of bulk strings.
func encode(args ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

var errTimeout = errors.New("no reply in time")

// conn is one RESP3 client connection. A goroutine of its own reads every
// frame as it arrives, so a lock.lost push is seen (and timed) the moment
// it lands, even while the client is idle holding a lock.
type conn struct {
	nc      net.Conn
	replies chan reply
	quit    chan struct{} // closed by close: stop delivering replies
	once    sync.Once
	done    chan struct{} // closed when the reader stops
	closed  time.Time     // when the reader saw the connection end; read after done
	err     error         // why; read after done
	mu      sync.Mutex    // one request at a time
}

// dial connects to addr, says HELLO 3, and calls onPush for each push and
// onClose once the connection has ended, both from the reader goroutine.
func dial(addr string, onPush func(v value, at time.Time), onClose func(at time.Time)) (*conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, replies: make(chan reply, 64), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		r := bufio.NewReader(nc)
		for {
			v, err := readValue(r)
			if err != nil {
				c.closed, c.err = time.Now(), err
				if onClose != nil {
					onClose(c.closed)
				}
				return
			}
			if v.kind == '>' {
				if onPush != nil {
					onPush(v, time.Now())
				}
				continue
			}
			select {
			case c.replies <- reply{v, time.Now()}:
			case <-c.quit:
			}
		}
	}()
	if v, _, err := c.do(5*time.Second, "HELLO", "3"); err != nil || v.kind != '%' {
		nc.Close()
		return nil, fmt.Errorf("HELLO 3: %v %v", v, err)
	}
	return c, nil
}

// send writes a request without waiting for its reply; the caller reads it
// with next. It returns the moment just before the write: "sent" is when
// the client committed to the request.
func (c *conn) send(args ...string) (time.Time, error) {
	at := time.Now()
	_, err := c.nc.Write(encode(args...))
	return at, err
}

// reply is a frame and the moment the reader had it: the earliest a client
// can know what it says.
type reply struct {
	v  value
	at time.Time
}

// next waits up to timeout for the next reply. A timeout leaves the
// connection out of step, so it is closed.
func (c *conn) next(timeout time.Duration) (value, time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-c.replies:
		return r.v, r.at, nil
	case <-c.done:
		select {
		case r := <-c.replies:
			return r.v, r.at, nil
		default:
		}
		return value{}, time.Time{}, c.err
	case <-t.C:
		c.shut()
		return value{}, time.Time{}, errTimeout
	}
}

// do sends one request and waits for its reply.
func (c *conn) do(timeout time.Duration, args ...string) (value, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.send(args...); err != nil {
		return value{}, time.Time{}, err
	}
	return c.next(timeout)
}

// shut ends the connection without waiting.
func (c *conn) shut() {
	c.once.Do(func() {
		close(c.quit)
		c.nc.Close()
	})
}

// close ends the connection and waits for the reader.
func (c *conn) close() {
	c.shut()
	<-c.done
}

// lostPush returns the name and token of a lock.lost push.
func lostPush(v value) (name, token string, ok bool) {
	if v.kind != '>' || len(v.elems) != 3 || v.elems[0].str != "lock.lost" {
		return "", "", false
	}
	return v.elems[1].str, v.elems[2].str, true
}
