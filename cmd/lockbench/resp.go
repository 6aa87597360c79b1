package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// client is a minimal RESP2 connection: the load tool times microsecond
// gaps, so both lockproxy and the baseline go through the same thin client
// rather than a library's per-command overhead.
type client struct {
	nc  net.Conn
	r   *bufio.Reader
	buf []byte // the request being sent
}

func dial(addr string) (*client, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	return &client{nc: nc, r: bufio.NewReader(nc), buf: make([]byte, 0, 256)}, nil
}

func (c *client) Close() error { return c.nc.Close() }

// reply is one RESP2 reply; arrays are read and dropped.
type reply struct {
	null bool
	str  string
	n    int64
}

var errServer = errors.New("server error")

// do sends one command and reads its reply. It formats without fmt, so
// the tool's own allocations (and GC pauses) stay out of what it measures.
func (c *client) do(args ...string) (reply, error) {
	b := c.buf[:0]
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	c.buf = b
	if _, err := c.nc.Write(b); err != nil {
		return reply{}, err
	}
	return c.read()
}

func (c *client) read() (reply, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return reply{}, err
	}
	if len(line) < 3 {
		return reply{}, fmt.Errorf("short reply %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return reply{str: body}, nil
	case '-':
		return reply{}, fmt.Errorf("%w: %s", errServer, body)
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		return reply{n: n}, err
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return reply{}, err
		}
		if n < 0 {
			return reply{null: true}, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return reply{}, err
		}
		return reply{str: string(buf[:n])}, nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return reply{}, err
		}
		if n < 0 {
			return reply{null: true}, nil
		}
		for range n {
			if _, err := c.read(); err != nil {
				return reply{}, err
			}
		}
		return reply{n: int64(n)}, nil
	}
	return reply{}, fmt.Errorf("unexpected reply %q", line)
}
