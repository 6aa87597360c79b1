// Package resp serves the Redis protocol, RESP2 and RESP3, over TCP or unix
// sockets: it accepts connections, reads requests with bounded memory,
// writes replies and out-of-band pushes, and shuts down in steps. It knows
// nothing of locks; a Handler gives commands their meaning.
//
// Reply encoding comes from tidwall/redcon. Its server is not used: its
// reader has no limits and recurses per read, and its Close drops every
// connection at once, where lockproxy must answer blocked clients first.
package resp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler serves one command on a connection. It runs on the connection's
// own goroutine, one command at a time, and writes exactly one reply.
type Handler interface {
	ServeRESP(c *Conn, cmd Command)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(c *Conn, cmd Command)

// ServeRESP calls f.
func (f HandlerFunc) ServeRESP(c *Conn, cmd Command) { f(c, cmd) }

// Options tune a Server. Zero fields take the defaults in parentheses.
type Options struct {
	Limits Limits // request size bounds; zero fields take DefaultLimits'
	// MaxClients bounds open connections; a connection over it is told
	// "-ERR max number of clients reached" and closed, as Redis does (0: none).
	MaxClients int
	// WriteTimeout bounds one write to a client, so one that stops reading
	// cannot pin a goroutine and its buffers (10s).
	WriteTimeout time.Duration
	// RequestTimeout bounds the time from the first byte of a request to
	// its last, so a client that trickles a request (slowloris) cannot hold
	// a connection and its buffer for ever. An idle connection is never
	// timed out: it may be holding locks. (0: no bound.)
	RequestTimeout time.Duration
	// OnOpen is called on the connection's goroutine before its first
	// command; OnClose after its last, whatever ended it.
	OnOpen  func(c *Conn)
	OnClose func(c *Conn)
	Logger  *slog.Logger // (discard)
}

// DefaultLimits are Options.Limits when left zero.
var DefaultLimits = Limits{
	MaxArgs:        1024,
	MaxBulkBytes:   64 << 10,
	MaxInlineBytes: 64 << 10,
	MaxQueryBytes:  1 << 20,
}

// Server serves RESP connections from one listener.
type Server struct {
	ln      net.Listener
	h       Handler
	opt     Options
	log     *slog.Logger
	ctx     context.Context // cancelled by Close: ends every connection
	cancel  context.CancelFunc
	nextID  atomic.Uint64
	accepts sync.WaitGroup // the accept loop
	conns   sync.WaitGroup // connection goroutines

	draining atomic.Bool // Drain began: connections end after their current reply

	mu    sync.Mutex
	open  map[*Conn]struct{} // guarded by mu
	count int                // guarded by mu; len(open), kept for MaxClients
}

// Listen binds network/addr ("tcp", "127.0.0.1:6380" or "unix", a path) and
// serves it in the background until Close.
func Listen(network, addr string, h Handler, opt Options) (*Server, error) {
	ln, err := net.Listen(network, addr)
	if err != nil && network == "unix" && errors.Is(err, syscall.EADDRINUSE) && staleSocket(addr) {
		// Left behind by a process that was killed: nobody answers on it.
		if rmErr := os.Remove(addr); rmErr == nil {
			ln, err = net.Listen(network, addr)
		}
	}
	if err != nil {
		return nil, err
	}
	return Serve(ln, h, opt), nil
}

// staleSocket reports whether path is a unix socket nobody listens on.
func staleSocket(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// Serve serves ln in the background until Close. The Server owns ln.
func Serve(ln net.Listener, h Handler, opt Options) *Server {
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&opt.Limits.MaxArgs, DefaultLimits.MaxArgs}, {&opt.Limits.MaxBulkBytes, DefaultLimits.MaxBulkBytes},
		{&opt.Limits.MaxInlineBytes, DefaultLimits.MaxInlineBytes}, {&opt.Limits.MaxQueryBytes, DefaultLimits.MaxQueryBytes},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, h: h, opt: opt, log: opt.Logger, ctx: ctx, cancel: cancel, open: make(map[*Conn]struct{})}
	s.accepts.Add(1)
	go s.acceptLoop()
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Clients reports the number of open connections.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

func (s *Server) acceptLoop() {
	defer s.accepts.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait for some to free
			// up rather than spin, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; backing off", "err", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			continue
		}
		s.conns.Add(1)
		go c.serve()
	}
}

// newConn registers nc, or refuses it when MaxClients are open.
func (s *Server) newConn(nc net.Conn) *Conn {
	s.mu.Lock()
	full := s.opt.MaxClients > 0 && s.count >= s.opt.MaxClients
	closed := s.ctx.Err() != nil
	var c *Conn
	if !full && !closed {
		c = newConn(s, nc)
		s.open[c] = struct{}{}
		s.count++
	}
	s.mu.Unlock()
	if full {
		s.log.Warn("refused a connection: LOCKPROXY_MAX_CLIENTS connections are open", "max_clients", s.opt.MaxClients,
			"remote", nc.RemoteAddr().String())
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
	}
	if c == nil {
		_ = nc.Close()
	}
	return c
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.open, c)
	s.count--
	s.mu.Unlock()
}

// StopAccepting closes the listener: no new connection is accepted, and
// open ones carry on. It is the first step of a graceful shutdown.
func (s *Server) StopAccepting() {
	_ = s.ln.Close()
	s.accepts.Wait()
}

// Drain stops accepting and ends every connection once the reply to its
// current command, if any, is written: a connection waiting for a request
// is closed at once, one serving a command (a blocked WAIT the caller has
// answered) after its reply. OnClose runs after each socket is closed. It
// waits like Close, and closes what is left when ctx ends.
func (s *Server) Drain(ctx context.Context) error {
	s.StopAccepting()
	s.draining.Store(true)
	s.mu.Lock()
	for c := range s.open {
		if c.reading.Load() {
			// Wakes the read at once; the serve loop sees draining and ends.
			_ = c.nc.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	if s.waitConns(ctx) {
		return nil
	}
	return s.Close(ctx) // ctx is done: closes every connection and returns
}

// Close stops accepting, closes every connection, and waits until each
// connection's goroutine, OnClose included, has finished or ctx ends.
// It is safe to call more than once.
func (s *Server) Close(ctx context.Context) error {
	s.StopAccepting()
	s.cancel()
	s.mu.Lock()
	for c := range s.open {
		c.closeNet()
	}
	s.mu.Unlock()
	if s.waitConns(ctx) {
		return nil
	}
	return ctx.Err()
}

// waitConns reports whether every connection's goroutine finished before
// ctx ended. The waiting goroutine it starts ends with the last of them.
func (s *Server) waitConns(ctx context.Context) bool {
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
