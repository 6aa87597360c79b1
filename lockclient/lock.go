package lockclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Lock is a lock taken by Acquire. Its methods are safe for concurrent
// use; Renew and Release run one at a time.
type Lock struct {
	client   *Client
	name     string
	token    string // set before Acquire returns; for an owned lock, on cn's reader goroutine
	fence    int64
	detached bool

	lost     chan struct{}
	lostOnce sync.Once

	mu       sync.Mutex  // serialises Renew and Release
	cn       *conn       // guarded by mu; an owned lock's connection, nil once released
	released bool        // guarded by mu
	expiry   *time.Timer // a detached lock's validity deadline; set before Acquire returns
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

// Token is the token lockproxy issued, "<fence>:<random>". Anyone with it
// may renew or release the lock.
func (l *Lock) Token() string { return l.token }

// Fence is the fencing token: it strictly increases for each new holder of
// the name. Pass it to the resource you protect, and have it reject writes
// with a fence lower than the highest it has seen.
func (l *Lock) Fence() int64 { return l.fence }

// Lost is closed when the caller can no longer count on holding the lock:
// lockproxy pushed lock.lost (the upstream could not renew it, MaxHold was
// reached, or someone released it by its token), the lock's connection
// died (which releases it), a detached lock's TTL ran out, or Release was
// called.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

func (l *Lock) lose() { l.lostOnce.Do(func() { close(l.lost) }) }

func (l *Lock) isLost() bool {
	select {
	case <-l.lost:
		return true
	default:
		return false
	}
}

// Renew sets the lock's ttl to ttl from now. An owned lock needs no
// renewal (lockproxy renews it while its connection lives); Renew changes
// the ttl its renewals use. A detached lock must be renewed before its ttl
// runs out; Lost then fires later.
//
// Errors: ErrNotHeld when lockproxy answered 0 or the lock was already
// lost or released (Lost is then closed); a *ServerError; ctx's error; or
// the connection's.
func (l *Lock) Renew(ctx context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("lockclient: renew %q: the ttl must be positive", l.name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released || l.isLost() {
		return fmt.Errorf("lockclient: renew %q: %w", l.name, ErrNotHeld)
	}
	if !l.detached {
		// Without the token: this connection's lock, whose renewals then
		// use the new ttl.
		v, err := l.cn.cmd(ctx, nil, "LOCK.RENEW", l.name, millis(ttl))
		switch {
		case err != nil && !l.cn.alive():
			return fmt.Errorf("lockclient: renew %q: the connection closed, which released it: %w", l.name, ErrNotHeld)
		case err != nil:
			return fmt.Errorf("lockclient: renew %q: %w", l.name, err)
		case v.num != 1:
			l.lose()
			return fmt.Errorf("lockclient: renew %q: %w", l.name, ErrNotHeld)
		}
		return nil
	}

	cn, err := l.client.get(ctx)
	if err != nil {
		return fmt.Errorf("lockclient: renew %q: %w", l.name, err)
	}
	sent := time.Now()
	v, err := cn.cmd(ctx, nil, "LOCK.RENEW", l.name, millis(ttl), l.token)
	if err != nil {
		l.client.putOrDiscard(cn, err)
		return fmt.Errorf("lockclient: renew %q: %w", l.name, err)
	}
	if v.num != 1 {
		l.client.put(cn)
		l.lose()
		l.expiry.Stop()
		return fmt.Errorf("lockclient: renew %q: %w", l.name, ErrNotHeld)
	}
	if !l.expiry.Stop() {
		// The validity ran out while the renewal was on its way, and Lost
		// has fired: the caller was told to stop, so give the lock back
		// rather than keep it for nobody.
		_, err := cn.cmd(ctx, nil, "LOCK.RELEASE", l.name, l.token)
		l.client.putOrDiscard(cn, err)
		return fmt.Errorf("lockclient: renew %q: its ttl ran out first: %w", l.name, ErrNotHeld)
	}
	l.client.put(cn)
	l.expiry.Reset(time.Until(sent.Add(ttl - drift(ttl))))
	return nil
}

// Release frees the lock and closes Lost. An owned lock's connection goes
// back to the Client for later use; if the release fails, it is closed
// instead, which makes lockproxy release the lock.
//
// Errors: ErrNotHeld when the caller no longer held it (lost, expired,
// released before); a *ServerError; ctx's error; or the connection's.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("lockclient: release %q: %w", l.name, ErrNotHeld)
	}
	l.released = true
	defer l.lose()

	if !l.detached {
		cn := l.cn
		l.cn = nil
		v, err := cn.cmd(ctx, nil, "LOCK.RELEASE", l.name)
		cn.bind(nil)
		switch {
		case err == nil:
			l.client.put(cn)
			if v.num != 1 {
				return fmt.Errorf("lockclient: release %q: %w", l.name, ErrNotHeld)
			}
			return nil
		case !cn.alive():
			l.client.discard(cn)
			return fmt.Errorf("lockclient: release %q: the connection closed, which released it: %w", l.name, ErrNotHeld)
		default:
			l.client.discard(cn) // lockproxy releases it on close
			return fmt.Errorf("lockclient: release %q: %w", l.name, err)
		}
	}

	l.expiry.Stop()
	cn, err := l.client.get(ctx)
	if err != nil {
		return fmt.Errorf("lockclient: release %q: %w", l.name, err)
	}
	v, err := cn.cmd(ctx, nil, "LOCK.RELEASE", l.name, l.token)
	l.client.putOrDiscard(cn, err)
	switch {
	case err != nil:
		return fmt.Errorf("lockclient: release %q: %w", l.name, err)
	case v.num != 1:
		return fmt.Errorf("lockclient: release %q: %w", l.name, ErrNotHeld)
	}
	return nil
}

// putOrDiscard gives back a connection after a command that got err: an
// error reply leaves it usable, anything else (ctx, I/O) may leave a reply
// in flight, or the connection dead, so it is closed.
func (c *Client) putOrDiscard(cn *conn, err error) {
	var se *ServerError
	if err == nil || errors.As(err, &se) {
		c.put(cn)
		return
	}
	c.discard(cn)
}
