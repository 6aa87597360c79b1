package resp

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
)

// flushAt is how many reply bytes a pipeline may build up before they are
// written, so a long pipeline does not grow the buffer without bound.
const flushAt = 64 << 10

// Conn is one client connection. Its Write methods, Flush and Block are for the
// handler, on the connection's goroutine; Push and Close may be called from
// anywhere.
type Conn struct {
	srv     *Server
	nc      net.Conn
	rd      *Reader
	id      uint64
	created time.Time
	ctx     context.Context // cancelled when the connection ends
	cancel  context.CancelFunc

	// Owned by the connection's goroutine.
	out       []byte    // replies not yet written
	partial   time.Time // when the request being read began arriving; zero: none
	deadline  bool      // a read deadline is set
	lastCmd   time.Time
	quit      bool // close once the current reply is written
	readErr   error
	proto     atomic.Int32 // 2 or 3; read by Push from other goroutines
	value     any
	closeOnce sync.Once
	bg        *backgroundRead // set by Block until the serve loop stops it
	flushed   bool            // Flush let pushes through until the command's reply is built
	reading   atomic.Bool     // blocked reading the next request (see Server.Drain)

	// wmu orders writes to nc: a pipeline's replies and pushes never
	// interleave mid-frame.
	wmu     sync.Mutex
	busy    bool   // guarded by wmu; replies are being built, so pushes wait
	pending []byte // guarded by wmu; pushes waiting for the replies ahead of them
	dead    bool   // guarded by wmu; a write failed, write nothing more
}

func newConn(s *Server, nc net.Conn) *Conn {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &Conn{
		srv:     s,
		nc:      nc,
		rd:      NewReader(nc, s.opt.Limits),
		id:      s.nextID.Add(1),
		created: time.Now(),
		ctx:     ctx,
		cancel:  cancel,
	}
	c.proto.Store(2)
	return c
}

// ID is the connection's number, unique in this process (CLIENT ID).
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr is the address the client connected to.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Created is when the connection was accepted.
func (c *Conn) Created() time.Time { return c.created }

// LastCommand is when the connection's latest command began.
func (c *Conn) LastCommand() time.Time { return c.lastCmd }

// Context is cancelled when the connection ends (or the server closes).
func (c *Conn) Context() context.Context { return c.ctx }

// Value returns the handler's per-connection state, set by SetValue.
func (c *Conn) Value() any { return c.value }

// SetValue stores the handler's per-connection state.
func (c *Conn) SetValue(v any) { c.value = v }

// Proto is the protocol version in use, 2 or 3.
func (c *Conn) Proto() int { return int(c.proto.Load()) }

// SetProto switches the protocol for the replies that follow (HELLO).
func (c *Conn) SetProto(v int) { c.proto.Store(int32(v)) }

// CloseAfterReply ends the connection once the current reply is written (QUIT).
func (c *Conn) CloseAfterReply() { c.quit = true }

// Buffered reports the request bytes read but not yet served.
func (c *Conn) Buffered() int { return c.rd.Buffered() }

func (c *Conn) closeNet() {
	c.closeOnce.Do(func() {
		c.cancel()
		_ = c.nc.Close()
	})
}

func (c *Conn) serve() {
	defer c.srv.conns.Done()
	defer c.srv.forget(c)
	// OnClose runs after the socket is closed: when the server ends a
	// connection (a drain, a protocol error, QUIT), the client sees the
	// close before OnClose gives its locks to anyone else.
	if c.srv.opt.OnClose != nil {
		defer c.srv.opt.OnClose(c)
	}
	defer c.closeNet()
	// A bug in one command must not take every client's locks down with the
	// process: log it, and end only this connection (OnClose still runs).
	defer func() {
		if v := recover(); v != nil {
			c.srv.log.Error("panic serving a connection; closing it", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	if c.srv.opt.OnOpen != nil {
		c.srv.opt.OnOpen(c)
	}
	for {
		cmd, ok, err := c.rd.Next()
		if err != nil {
			// As Redis does: say what was wrong, then hang up, since the
			// stream can no longer be parsed.
			c.out = redcon.AppendError(c.out, "ERR "+err.Error())
			c.flush(false)
			return
		}
		if !ok {
			if !c.flush(false) {
				return
			}
			c.armRequestTimeout()
			// Set before draining is read, and Drain reads it after setting
			// draining: a drain either stops this read here or interrupts it.
			c.reading.Store(true)
			if c.srv.draining.Load() {
				return
			}
			err := c.rd.Fill()
			c.reading.Store(false)
			if err != nil {
				if c.srv.draining.Load() {
					return
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					c.out = redcon.AppendError(c.out, "ERR Protocol error: request timeout (LOCKPROXY_REQUEST_TIMEOUT)")
					c.flush(false)
				}
				return
			}
			c.setBusy()
			continue
		}
		c.partial = time.Time{}
		c.lastCmd = time.Now()
		c.srv.h.ServeRESP(c, cmd)
		if c.bg != nil {
			// A blocking command: its reply goes out before the background
			// read is stopped, so waiting for that goroutine delays nothing.
			c.flush(false)
			c.stopBackgroundRead()
		}
		if c.flushed {
			// Pushes wait again for the replies being built.
			c.flushed = false
			c.setBusy()
		}
		if c.readErr != nil || c.ctx.Err() != nil {
			return // the client went away while the command blocked
		}
		if c.quit || c.srv.draining.Load() {
			c.flush(false)
			return
		}
		if len(c.out) >= flushAt && !c.flush(true) {
			return
		}
	}
}

// armRequestTimeout sets the read deadline for the next read: the end of
// the request timeout while part of a request is buffered, none while the
// connection is idle.
func (c *Conn) armRequestTimeout() {
	limit := c.srv.opt.RequestTimeout
	if limit <= 0 {
		return
	}
	if c.rd.Buffered() == 0 {
		c.partial = time.Time{}
		if c.deadline {
			_ = c.nc.SetReadDeadline(time.Time{})
			c.deadline = false
		}
		return
	}
	if c.partial.IsZero() {
		c.partial = time.Now()
	}
	_ = c.nc.SetReadDeadline(c.partial.Add(limit))
	c.deadline = true
}

func (c *Conn) setBusy() {
	c.wmu.Lock()
	c.busy = true
	c.wmu.Unlock()
}

// flush writes the replies built so far, then any pushes that waited for
// them. busy says whether more replies follow at once; while they do,
// pushes keep waiting so they land between whole replies.
func (c *Conn) flush(busy bool) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.busy = busy
	if !busy && len(c.pending) > 0 {
		c.out = append(c.out, c.pending...)
		c.pending = c.pending[:0]
	}
	ok := c.writeLocked(c.out)
	if cap(c.out) > flushAt {
		c.out = nil // let a burst's buffer go
	} else {
		c.out = c.out[:0]
	}
	return ok
}

func (c *Conn) writeLocked(b []byte) bool {
	if c.dead {
		return false
	}
	if len(b) == 0 {
		return true
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.opt.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.dead = true
		c.closeNet() // also wakes the goroutine if it is blocked reading
		return false
	}
	return true
}

// Push sends an out-of-band RESP3 push frame (">n" with bulk strings) and
// reports whether it was sent. RESP2 has no pushes, so on a RESP2
// connection it sends nothing. A push never splits a reply: while replies
// are being built it waits for them and follows them.
func (c *Conn) Push(items ...string) bool {
	if c.Proto() != 3 {
		return false
	}
	frame := appendPrefix(nil, '>', len(items))
	for _, it := range items {
		frame = redcon.AppendBulkString(frame, it)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return false
	}
	if c.busy {
		c.pending = append(c.pending, frame...)
		return true
	}
	return c.writeLocked(frame)
}

// Flush writes the replies built so far, and the pushes held for them, at
// once. A handler calls it before work that may take long, such as a call
// to the upstream: a pipeline's earlier replies do not wait for that work,
// and until the handler returns, pushes go out as they come, ahead of the
// reply it builds, so that a lock.lost is not held back by a slow command.
// It reports false if the connection is dead.
func (c *Conn) Flush() bool {
	if !c.flush(false) {
		return false
	}
	c.flushed = true
	return true
}

// Block runs fn, a command that may block, while watching the connection:
// fn's context is cancelled the moment the client hangs up (or the server
// closes). Replies built so far are written first, so they do not wait on
// fn. Requests the client pipelines meanwhile are buffered, up to the
// query limit, and served afterwards.
func (c *Conn) Block(fn func(ctx context.Context)) {
	if !c.flush(false) {
		c.readErr = net.ErrClosed
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	bg := &backgroundRead{cancel: cancel, done: make(chan struct{})}
	c.bg = bg
	// A background read, as net/http does to notice a closed connection:
	// only a read sees the peer's FIN. The serve loop stops it once the
	// reply is out, with a read deadline in the past, told apart from a
	// real error by stopping.
	go func() {
		defer close(bg.done)
		for {
			err := c.rd.Fill()
			switch {
			case err == nil:
				continue
			case errors.Is(err, ErrBufferFull):
				<-ctx.Done() // stop reading; back-pressure on the client
				return
			case bg.stopping.Load() && errors.Is(err, os.ErrDeadlineExceeded):
				return
			default:
				c.readErr = err
				cancel()
				return
			}
		}
	}()
	fn(ctx)
}

// backgroundRead is the read Block runs while a command blocks.
type backgroundRead struct {
	stopping atomic.Bool
	cancel   context.CancelFunc
	done     chan struct{}
}

// stopBackgroundRead ends Block's read, so the serve loop may read again.
func (c *Conn) stopBackgroundRead() {
	bg := c.bg
	c.bg = nil
	bg.stopping.Store(true)
	bg.cancel()
	_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	<-bg.done
	_ = c.nc.SetReadDeadline(time.Time{})
	c.deadline = false
	c.setBusy()
}

// appendPrefix appends a RESP header such as "*3\r\n".
func appendPrefix(b []byte, kind byte, n int) []byte {
	b = append(b, kind)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// WriteSimple writes a simple string ("+OK"). CR and LF become spaces.
func (c *Conn) WriteSimple(s string) { c.out = redcon.AppendString(c.out, s) }

// WriteError writes an error; msg starts with its code ("ERR ...").
// CR and LF become spaces, so echoed input cannot forge a reply.
func (c *Conn) WriteError(msg string) { c.out = redcon.AppendError(c.out, msg) }

// WriteInt writes an integer.
func (c *Conn) WriteInt(n int64) { c.out = redcon.AppendInt(c.out, n) }

// WriteBulk writes a bulk string.
func (c *Conn) WriteBulk(b []byte) { c.out = redcon.AppendBulk(c.out, b) }

// WriteBulkString writes a bulk string.
func (c *Conn) WriteBulkString(s string) { c.out = redcon.AppendBulkString(c.out, s) }

// WriteNull writes the null reply: "$-1" in RESP2, "_" in RESP3.
func (c *Conn) WriteNull() {
	if c.Proto() == 3 {
		c.out = append(c.out, "_\r\n"...)
		return
	}
	c.out = redcon.AppendNull(c.out)
}

// WriteArray writes an array header; n elements must follow.
func (c *Conn) WriteArray(n int) { c.out = redcon.AppendArray(c.out, n) }

// WriteMap writes a map header; n key/value pairs must follow. RESP2 has
// no maps, so there it is a flat array of 2n elements, as Redis sends.
func (c *Conn) WriteMap(n int) {
	if c.Proto() == 3 {
		c.out = appendPrefix(c.out, '%', n)
		return
	}
	c.out = redcon.AppendArray(c.out, 2*n)
}

// WriteVerbatim writes text as a RESP3 verbatim string of the "txt"
// format, as Redis does for INFO, or as a bulk string in RESP2.
func (c *Conn) WriteVerbatim(text string) {
	if c.Proto() == 3 {
		c.out = appendPrefix(c.out, '=', len(text)+4)
		c.out = append(c.out, "txt:"...)
		c.out = append(c.out, text...)
		c.out = append(c.out, '\r', '\n')
		return
	}
	c.out = redcon.AppendBulkString(c.out, text)
}
