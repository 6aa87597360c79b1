package lockclient

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxIdle bounds the idle connections a Client keeps for its next
// commands.
const maxIdle = 8

// Client talks to one lockproxy. It opens connections as needed: one per
// owned lock, held while the lock is, and a few idle ones for the next
// locks and for the commands of detached locks. Close closes them all.
type Client struct {
	addr string
	opt  dialOptions

	mu     sync.Mutex
	idle   []*conn            // guarded by mu; open connections that hold no lock
	open   map[*conn]struct{} // guarded by mu; every connection not yet closed
	closed bool               // guarded by mu
}

// Dial returns a Client of the lockproxy at addr ("host:port", or
// "unix:/path/to.sock"), after one connection has said HELLO, so that a
// wrong address or password shows at once. ctx bounds that connection.
func Dial(ctx context.Context, addr string, opts ...DialOption) (*Client, error) {
	c := &Client{addr: addr, open: make(map[*conn]struct{})}
	for _, o := range opts {
		o(&c.opt)
	}
	cn, err := c.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("lockclient: dial %s: %w", addr, err)
	}
	c.put(cn)
	return c, nil
}

// Close closes every connection of the Client: lockproxy releases every
// owned lock taken through it, and their Lost channels close. Detached
// locks are left to their ttl. Close is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	open := c.open
	c.open, c.idle = nil, nil
	c.mu.Unlock()
	for cn := range open {
		cn.close()
	}
	return nil
}

// get returns an idle connection, or a new one.
func (c *Client) get(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		n := len(c.idle)
		if n == 0 {
			c.mu.Unlock()
			break
		}
		cn := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		if cn.alive() {
			return cn, nil
		}
		c.discard(cn)
	}
	cn, err := dialConn(ctx, c.addr, &c.opt)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cn.close()
		return nil, ErrClosed
	}
	c.open[cn] = struct{}{}
	c.mu.Unlock()
	return cn, nil
}

// put gives back a connection that holds no lock.
func (c *Client) put(cn *conn) {
	c.mu.Lock()
	if !c.closed && len(c.idle) < maxIdle && cn.alive() {
		c.idle = append(c.idle, cn)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.discard(cn)
}

// discard closes a connection; lockproxy releases what it owned.
func (c *Client) discard(cn *conn) {
	c.mu.Lock()
	delete(c.open, cn)
	c.mu.Unlock()
	cn.close()
}

// Acquire takes the lock name. An owned lock (the default) keeps a
// connection of its own until Release; lockproxy renews it meanwhile.
//
// Errors: ErrNotAcquired when someone else holds it (for a semaphore,
// every permit; for a Shared reader, a writer holds it or waits ahead), and
// Wait, if given, ran out; ErrWrongKind when it is held as another kind
// (see Limit and Shared); ctx's error when ctx ended first, in which case
// the connection is closed, so lockproxy never grants the abandoned
// request (an owned lock granted just before is released with the
// connection; a detached one lives out its TTL); a *ServerError for
// lockproxy's error replies (a bad option, an upstream failure);
// ErrClosed after Close; or the connection's error. Options that cannot
// go together fail before anything is sent.
func (c *Client) Acquire(ctx context.Context, name string, opts ...Option) (*Lock, error) {
	var o acquireOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(); err != nil {
		return nil, fmt.Errorf("lockclient: acquire %q: %w", name, err)
	}
	args := []string{"LOCK.ACQUIRE", name}
	if o.ttl > 0 {
		args = append(args, millis(o.ttl))
	}
	if o.wait > 0 {
		args = append(args, "WAIT", millis(o.wait))
	}
	if o.maxHold > 0 {
		args = append(args, "MAXHOLD", millis(o.maxHold))
	}
	if o.detached {
		args = append(args, "DETACHED")
	}
	switch {
	case o.limited:
		args = append(args, "LIMIT", strconv.Itoa(o.limit))
	case o.shared:
		args = append(args, "SHARED")
	}
	cn, err := c.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("lockclient: acquire %q: %w", name, err)
	}
	l := &Lock{client: c, name: name, detached: o.detached, lost: make(chan struct{})}
	var onReply func(value)
	if !o.detached {
		// Bound on the reader goroutine, before it reads on: a lock.lost
		// push right behind the grant (a tiny MaxHold) finds the lock.
		onReply = func(v value) {
			if v.typ == '$' {
				l.token = v.str
				cn.bind(l)
			}
		}
	}
	sent := time.Now()
	v, err := cn.cmd(ctx, onReply, args...)
	var se *ServerError
	switch {
	case errors.As(err, &se):
		c.put(cn)
		return nil, fmt.Errorf("lockclient: acquire %q: %w", name, err)
	case err != nil:
		// ctx ended or the connection failed. Closing the connection
		// abandons a WAIT (lockproxy never grants to a closed connection)
		// and releases an owned lock granted in the meantime.
		c.discard(cn)
		return nil, fmt.Errorf("lockclient: acquire %q: %w", name, err)
	case v.isNull():
		c.put(cn)
		return nil, fmt.Errorf("lockclient: acquire %q: %w", name, ErrNotAcquired)
	}
	fence, ok := parseFence(v.str)
	if v.typ != '$' || !ok {
		c.discard(cn)
		return nil, fmt.Errorf("lockclient: acquire %q: %w: the reply is not a token", name, errProtocol)
	}
	l.fence = fence
	if o.detached {
		l.token = v.str // an owned lock's was set by onReply
		// The connection's session remembers a detached lock and would
		// hand its token to the next acquire of the name on it, so the
		// connection must not go back to the pool. Closing it leaves a
		// detached lock alone.
		c.discard(cn)
		l.expiry = time.AfterFunc(time.Until(sent.Add(o.ttl-drift(o.ttl))), l.lose)
	} else {
		l.cn = cn
	}
	return l, nil
}

// WithLock acquires name, runs fn while holding it, and releases it. opts
// are Acquire's: with Limit, fn holds one permit of the semaphore; with
// Shared, fn is a reader, so exclusion from a writer is all it gets.
// fn's context is cancelled if the lock is lost (context.Cause is then an
// error wrapping ErrLost), or when ctx is.
//
// It returns Acquire's error, if any; otherwise fn's error. When the lock
// was lost before fn returned (lost, or Release found it no longer held),
// the error wraps ErrLost too, even if fn succeeded: what fn did was not
// protected to the end. Release runs even when ctx was cancelled, within
// 10 seconds; if it fails the connection is closed, which releases an
// owned lock.
func (c *Client) WithLock(ctx context.Context, name string, fn func(ctx context.Context) error, opts ...Option) error {
	l, err := c.Acquire(ctx, name, opts...)
	if err != nil {
		return err
	}
	lostErr := fmt.Errorf("lockclient: lock %q was lost before fn returned: %w", name, ErrLost)
	fctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-l.Lost():
			cancel(lostErr)
		case <-stop:
		}
	})
	ferr := fn(fctx)
	close(stop)
	wg.Wait()
	cancel(nil)
	lost := l.isLost()

	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	rerr := l.Release(rctx)
	rcancel()
	if errors.Is(rerr, ErrNotHeld) {
		lost, rerr = true, nil
	}
	if lost && !errors.Is(ferr, ErrLost) {
		ferr = errors.Join(ferr, lostErr)
	}
	return errors.Join(ferr, rerr)
}

// Info describes a lock, as LOCK.INFO sees it.
type Info struct {
	Held    bool          // someone holds it
	Fence   int64         // the holder's fence (held by many, the largest); when free, the last one issued if remembered, else 0
	TTL     time.Duration // time left (held by many, the longest); 0 when free
	Waiters int           // acquires blocked in Wait for it on this sidecar
	Kind    string        // how it is held: "exclusive", "shared" (readers) or "semaphore"; "none" when free; "" from a sidecar that predates kinds
	Holders int           // how many hold it, through every sidecar
	Limit   int           // a semaphore's Limit; 0 for any other kind
}

// Info reports the state of the lock name.
func (c *Client) Info(ctx context.Context, name string) (Info, error) {
	cn, err := c.get(ctx)
	if err != nil {
		return Info{}, fmt.Errorf("lockclient: info %q: %w", name, err)
	}
	v, err := cn.cmd(ctx, nil, "LOCK.INFO", name)
	c.putOrDiscard(cn, err)
	if err != nil {
		return Info{}, fmt.Errorf("lockclient: info %q: %w", name, err)
	}
	var info Info
	for i := 0; i+1 < len(v.elems); i += 2 {
		n := v.elems[i+1].num
		switch v.elems[i].str {
		case "held":
			info.Held = n == 1
		case "fence":
			info.Fence = n
		case "ttl":
			info.TTL = time.Duration(max(n, 0)) * time.Millisecond
		case "waiters":
			info.Waiters = int(n)
		case "kind":
			info.Kind = v.elems[i+1].str
		case "holders":
			info.Holders = int(n)
		case "limit":
			info.Limit = int(n)
		}
	}
	return info, nil
}

// parseFence reads the fence, the decimal before the first ':' of a token.
func parseFence(token string) (int64, bool) {
	s, _, ok := strings.Cut(token, ":")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
