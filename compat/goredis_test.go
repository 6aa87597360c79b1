package compat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/push"
)

var errLockBusy = errors.New("lock held by someone else")

// doer is a go-redis Client or Conn.
type doer interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
}

// snippet:begin go-redis-owned
// withLock runs work while this process holds the lock name, waiting up to
// 2 s for it (keep WAIT below the client's ReadTimeout, 5 s by default).
// The lock belongs to one pinned connection: the sidecar renews it while
// that connection is open and releases it if the connection closes.
func withLock(ctx context.Context, rdb *redis.Client, name string, work func(fence int64) error) error {
	conn := rdb.Conn()
	defer conn.Close() // back to the pool, still open: the RELEASE below runs first
	token, err := conn.Do(ctx, "LOCK.ACQUIRE", name, 30000, "WAIT", 2000).Text()
	if errors.Is(err, redis.Nil) {
		return errLockBusy // someone else held it for the whole WAIT
	}
	if err != nil {
		return err
	}
	defer conn.Do(ctx, "LOCK.RELEASE", name)
	fence, err := strconv.ParseInt(token[:strings.IndexByte(token, ':')], 10, 64)
	if err != nil {
		return err
	}
	return work(fence) // pass the fence to whatever the lock protects
}

// snippet:end

// snippet:begin go-redis-lost
// lockLost receives the sidecar's ">3 lock.lost <name> <token>" pushes
// (RESP3, go-redis's default). Register it on the Conn that holds the
// locks: go-redis reads a push when that connection next runs a command.
type lockLost chan [2]string

func (l lockLost) HandlePushNotification(_ context.Context, _ push.NotificationHandlerContext, n []any) error {
	if len(n) == 3 {
		name, _ := n[1].(string)
		token, _ := n[2].(string)
		select {
		case l <- [2]string{name, token}:
		default: // never block go-redis's reader
		}
	}
	return nil
}

// snippet:end

func runGoRedis(proto int) func(t *testing.T, addr string) (*stepResults, string) {
	return func(t *testing.T, addr string) (*stepResults, string) {
		ctx := context.Background()
		opts := &redis.Options{Addr: addr} // the defaults: RESP3
		if proto == 2 {
			opts.Protocol = 2
		}
		rdb := redis.NewClient(opts)
		t.Cleanup(func() { rdb.Close() })
		prefix := fmt.Sprintf("go-redis-%d:", proto)
		var g goSteps

		doInfo := func(c doer, name string) (map[string]string, error) {
			v, err := c.Do(ctx, "LOCK.INFO", name).Result()
			if err != nil {
				return nil, err
			}
			return infoFields(v)
		}
		held := func(c doer) ([]string, error) { return c.Do(ctx, "LOCK.HELD").StringSlice() }

		conn := rdb.Conn() // the connection that owns this scenario's locks
		defer conn.Close()
		var lostCh lockLost

		g.run(stepHandshake, func() error {
			if err := conn.Ping(ctx).Err(); err != nil {
				return err
			}
			info, err := conn.ClientInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("CLIENT INFO: %w", err)
			}
			if info.Resp != proto || !strings.HasPrefix(info.LibName, "go-redis") {
				return fmt.Errorf("CLIENT INFO says resp=%d lib-name=%q, want resp=%d and go-redis", info.Resp, info.LibName, proto)
			}
			return nil
		})

		name := prefix + "a"
		g.run(stepAcquire, func() error {
			tok, err := conn.Do(ctx, "LOCK.ACQUIRE", name, 30000).Text()
			if err != nil {
				return fmt.Errorf("LOCK.ACQUIRE: %w", err)
			}
			fence, err := fenceOf(tok)
			if err != nil {
				return err
			}
			info, err := doInfo(conn, name)
			if err != nil {
				return err
			}
			if err := checkInfo(info, map[string]string{"held": "1", "fence": strconv.FormatInt(fence, 10),
				"ttl": ">25000", "owner": "self", "mode": "owned", "waiters": "0",
				"kind": "exclusive", "holders": "1", "limit": "0"}); err != nil {
				return err
			}
			if h, err := held(conn); err != nil || len(h) != 1 || h[0] != name {
				return fmt.Errorf("LOCK.HELD = %q, %v; want [%s]", h, err, name)
			}
			again, err := conn.Do(ctx, "LOCK.ACQUIRE", name, 30000).Text()
			if err != nil || again != tok {
				return fmt.Errorf("acquiring again on the holding connection gave %q, %v; want the same token", again, err)
			}
			// Another connection of the pool sees it held by someone else.
			other, err := doInfo(rdb, name)
			if err != nil {
				return err
			}
			if err := checkInfo(other, map[string]string{"held": "1", "owner": "other"}); err != nil {
				return fmt.Errorf("from another connection: %w", err)
			}
			return nil
		})

		g.run(stepRenew, func() error {
			if n, err := conn.Do(ctx, "LOCK.RENEW", name, 60000).Int(); err != nil || n != 1 {
				return fmt.Errorf("LOCK.RENEW = %d, %v; want 1", n, err)
			}
			info, err := doInfo(conn, name)
			if err != nil {
				return err
			}
			return checkInfo(info, map[string]string{"ttl": ">30000", "owner": "self"})
		})

		g.run(stepRelease, func() error {
			if n, err := conn.Do(ctx, "LOCK.RELEASE", name).Int(); err != nil || n != 1 {
				return fmt.Errorf("LOCK.RELEASE = %d, %v; want 1", n, err)
			}
			if n, err := conn.Do(ctx, "LOCK.RELEASE", name).Int(); err != nil || n != 0 {
				return fmt.Errorf("second LOCK.RELEASE = %d, %v; want 0", n, err)
			}
			if h, err := held(conn); err != nil || len(h) != 0 {
				return fmt.Errorf("LOCK.HELD after release = %q, %v; want []", h, err)
			}
			info, err := doInfo(conn, name)
			if err != nil {
				return err
			}
			return checkInfo(info, map[string]string{"held": "0", "ttl": "-2", "owner": "none", "kind": "none", "holders": "0"})
		})

		g.run(stepWait, func() error {
			name := prefix + "w"
			tok, err := conn.Do(ctx, "LOCK.ACQUIRE", name, 30000).Text()
			if err != nil {
				return fmt.Errorf("holder: LOCK.ACQUIRE: %w", err)
			}
			holderFence, err := fenceOf(tok)
			if err != nil {
				return err
			}
			type result struct {
				fence int64
				err   error
			}
			got := make(chan result, 1)
			go func() { // the waiter, on another connection of the pool
				var r result
				r.err = withLock(ctx, rdb, name, func(fence int64) error {
					r.fence = fence
					return nil
				})
				got <- r
			}()
			if err := waitUntil("the waiter is queued", func() (bool, error) {
				info, err := doInfo(conn, name)
				return info["waiters"] == "1", err
			}); err != nil {
				return err
			}
			start := time.Now()
			if n, err := conn.Do(ctx, "LOCK.RELEASE", name).Int(); err != nil || n != 1 {
				return fmt.Errorf("holder: LOCK.RELEASE = %d, %v", n, err)
			}
			r := <-got
			if r.err != nil {
				return fmt.Errorf("waiter: %w", r.err)
			}
			if r.fence <= holderFence {
				return fmt.Errorf("waiter's fence %d is not above the holder's %d", r.fence, holderFence)
			}
			if d := time.Since(start); d > time.Second {
				return fmt.Errorf("hand-off took %v", d)
			}
			// withLock released it on its way out.
			info, err := doInfo(conn, name)
			if err != nil {
				return err
			}
			return checkInfo(info, map[string]string{"held": "0"})
		})

		g.run(stepDetached, func() error {
			name := prefix + "d"
			// Hold one connection out of the pool, so that the pool's next
			// command surely runs on a different one.
			busy := rdb.Conn()
			defer busy.Close()
			idA, err := busy.ClientID(ctx).Result()
			if err != nil {
				return err
			}
			// snippet:begin go-redis-detached
			token, err := busy.Do(ctx, "LOCK.ACQUIRE", name, 60000, "DETACHED").Text()
			if err != nil {
				return err // redis.Nil: someone else holds it
			}
			// ... later, from any connection, of any process:
			released, err := rdb.Do(ctx, "LOCK.RELEASE", name, token).Int()
			// snippet:end
			if err != nil || released != 1 {
				return fmt.Errorf("LOCK.RELEASE with the token through the pool = %d, %v; want 1", released, err)
			}
			if idB, err := rdb.ClientID(ctx).Result(); err != nil || idB == idA {
				return fmt.Errorf("the pool's connection has id %d (%v), the acquiring one %d: want two connections", idB, err, idA)
			}
			if h, err := held(busy); err != nil || len(h) != 0 {
				return fmt.Errorf("LOCK.HELD on the acquiring connection after the release = %q, %v; want []", h, err)
			}
			if n, err := rdb.Do(ctx, "LOCK.RELEASE", name, token).Int(); err != nil || n != 0 {
				return fmt.Errorf("releasing the same token again = %d, %v; want 0", n, err)
			}
			return nil
		})

		g.run(stepClose, func() error {
			// A Conn from EphemeralConn closes its socket on Close, and
			// closing the client closes every socket; either frees the lock.
			for _, how := range []string{"EphemeralConn().Close()", "Client.Close()"} {
				name := prefix + "c-" + strings.Fields(how)[0]
				owner := redis.NewClient(opts)
				c := owner.EphemeralConn()
				if _, err := c.Do(ctx, "LOCK.ACQUIRE", name, 30000).Text(); err != nil {
					owner.Close()
					return fmt.Errorf("LOCK.ACQUIRE: %w", err)
				}
				if how == "EphemeralConn().Close()" {
					c.Close()
				} else {
					owner.Close()
				}
				start := time.Now()
				tok, err := conn.Do(ctx, "LOCK.ACQUIRE", name, 30000, "WAIT", 2000).Text()
				owner.Close()
				if err != nil {
					return fmt.Errorf("after %s: LOCK.ACQUIRE from another connection: %w", how, err)
				}
				if d := time.Since(start); d > time.Second {
					return fmt.Errorf("after %s the lock took %v to come free", how, d)
				}
				if _, err := fenceOf(tok); err != nil {
					return err
				}
				if n, err := conn.Do(ctx, "LOCK.RELEASE", name).Int(); err != nil || n != 1 {
					return fmt.Errorf("LOCK.RELEASE = %d, %v", n, err)
				}
			}
			return nil
		})

		if proto == 3 {
			// snippet:begin go-redis-lost-register
			lost := make(lockLost, 16)
			err := conn.RegisterPushNotificationHandler("lock.lost", lost, false)
			// snippet:end
			if err != nil {
				t.Fatalf("RegisterPushNotificationHandler: %v", err)
			}
			lostCh = lost
		}
		var lostToken string
		g.run(stepLost, func() error {
			name := prefix + "m"
			tok, err := conn.Do(ctx, "LOCK.ACQUIRE", name, 30000, "MAXHOLD", 200).Text()
			if err != nil {
				return fmt.Errorf("LOCK.ACQUIRE … MAXHOLD 200: %w", err)
			}
			lostToken = tok
			start := time.Now()
			if err := waitUntil("the MAXHOLD cap drops the lock", func() (bool, error) {
				h, err := held(conn)
				return len(h) == 0, err
			}); err != nil {
				return err
			}
			if d := time.Since(start); d < 150*time.Millisecond {
				return fmt.Errorf("LOCK.HELD dropped the lock after %v, before its MAXHOLD of 200ms", d)
			}
			if n, err := conn.Do(ctx, "LOCK.RENEW", name, 30000).Int(); err != nil || n != 0 {
				return fmt.Errorf("LOCK.RENEW after the cap = %d, %v; want 0", n, err)
			}
			if s, err := conn.Ping(ctx).Result(); err != nil || s != "PONG" {
				return fmt.Errorf("PING after the cap = %q, %v: the connection is out of step", s, err)
			}
			// Released at the cap, within a round trip of LOCK.HELD dropping
			// it: free for the next client.
			if _, err := rdb.Do(ctx, "LOCK.ACQUIRE", name, 1000, "DETACHED", "WAIT", 1000).Text(); err != nil {
				return fmt.Errorf("another connection could not take it after the cap: %w", err)
			}
			return nil
		})
		if proto == 3 {
			g.run(stepLostPush, func() error {
				// The push follows the cap's release, so it may come after the
				// replies above; go-redis reads a push only as it reads a reply
				// on that connection, so ask for one while waiting.
				deadline := time.Now().Add(2 * time.Second)
				for {
					select {
					case n := <-lostCh:
						if n != [2]string{prefix + "m", lostToken} {
							return fmt.Errorf("lock.lost push for %q, want [%s %s]", n, prefix+"m", lostToken)
						}
						return nil
					case <-time.After(10 * time.Millisecond):
					}
					if time.Now().After(deadline) {
						return errors.New("no lock.lost push reached the handler")
					}
					if err := conn.Ping(ctx).Err(); err != nil {
						return fmt.Errorf("PING while waiting for the push: %w", err)
					}
				}
			})
		}
		return &g.res, g.log.String()
	}
}

// infoFields turns LOCK.INFO's reply, a map in RESP3 or a flat array in
// RESP2, into strings.
func infoFields(v any) (map[string]string, error) {
	out := map[string]string{}
	switch v := v.(type) {
	case map[any]any:
		for k, x := range v {
			out[fmt.Sprint(k)] = fmt.Sprint(x)
		}
	case map[string]any:
		for k, x := range v {
			out[k] = fmt.Sprint(x)
		}
	case []any:
		if len(v)%2 != 0 {
			return nil, fmt.Errorf("LOCK.INFO returned an odd-length array %v", v)
		}
		for i := 0; i < len(v); i += 2 {
			out[fmt.Sprint(v[i])] = fmt.Sprint(v[i+1])
		}
	default:
		return nil, fmt.Errorf("LOCK.INFO returned %T %v", v, v)
	}
	return out, nil
}
