package compat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// snippet:begin rueidis-owned
// withLockDedicated runs work while this process holds the lock name,
// waiting up to 2 s for it. rueidis pipelines everyone's commands over
// shared connections, so the lock is taken on a dedicated one: it owns the
// lock, and blocking in WAIT there holds up nobody else.
func withLockDedicated(ctx context.Context, client rueidis.Client, name string, work func(fence int64) error) error {
	return client.Dedicated(func(c rueidis.DedicatedClient) error {
		token, err := c.Do(ctx, c.B().Arbitrary("LOCK.ACQUIRE").Args(name, "30000", "WAIT", "2000").Build()).ToString()
		if rueidis.IsRedisNil(err) {
			return errLockBusy // someone else held it for the whole WAIT
		}
		if err != nil {
			return err
		}
		// Dedicated returns the connection to the pool, open: release first.
		defer c.Do(ctx, c.B().Arbitrary("LOCK.RELEASE").Args(name).Build())
		fence, err := strconv.ParseInt(token[:strings.IndexByte(token, ':')], 10, 64)
		if err != nil {
			return err
		}
		return work(fence) // pass the fence to whatever the lock protects
	})
}

// snippet:end

// newRueidis is how the suite, and docs/clients.md, build the client.
func newRueidis(addr string) (rueidis.Client, error) {
	// snippet:begin rueidis-client
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{addr},
		// lockproxy has no keys to cache: without this, rueidis sends
		// CLIENT TRACKING ON OPTIN, which lockproxy refuses.
		DisableCache: true,
	})
	// snippet:end
	return client, err
}

// runRueidisDefaults connects with rueidis's default options, which turn
// on client-side caching.
func runRueidisDefaults(t *testing.T, addr string) (*stepResults, string) {
	var g goSteps
	g.run(stepHandshake, func() error {
		client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
		if err != nil {
			return fmt.Errorf("rueidis.NewClient with default options: %w", err)
		}
		defer client.Close()
		return client.Do(context.Background(), client.B().Ping().Build()).Error()
	})
	return &g.res, g.log.String()
}

func runRueidis(t *testing.T, addr string) (*stepResults, string) {
	ctx := context.Background()
	client, err := newRueidis(addr)
	if err != nil {
		t.Fatalf("rueidis.NewClient: %v", err)
	}
	t.Cleanup(client.Close)
	const prefix = "rueidis:"
	var g goSteps

	type doer interface {
		Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult
	}
	do := func(c doer, args ...string) rueidis.RedisResult {
		return c.Do(ctx, client.B().Arbitrary(args[0]).Args(args[1:]...).Build())
	}
	info := func(c doer, name string) (map[string]string, error) {
		v, err := do(c, "LOCK.INFO", name).ToAny()
		if err != nil {
			return nil, err
		}
		return infoFields(v)
	}
	held := func(c doer) ([]string, error) { return do(c, "LOCK.HELD").AsStrSlice() }

	conn, release := client.Dedicate() // the connection that owns this scenario's locks
	defer release()

	g.run(stepHandshake, func() error {
		line, err := do(conn, "CLIENT", "INFO").ToString()
		if err != nil {
			return fmt.Errorf("CLIENT INFO: %w", err)
		}
		if !strings.Contains(line, " resp=3") || !strings.Contains(line, " lib-name=rueidis") {
			return fmt.Errorf("CLIENT INFO = %q, want resp=3 and lib-name=rueidis", line)
		}
		return nil
	})

	name := prefix + "a"
	g.run(stepAcquire, func() error {
		tok, err := do(conn, "LOCK.ACQUIRE", name, "30000").ToString()
		if err != nil {
			return fmt.Errorf("LOCK.ACQUIRE: %w", err)
		}
		fence, err := fenceOf(tok)
		if err != nil {
			return err
		}
		got, err := info(conn, name)
		if err != nil {
			return err
		}
		if err := checkInfo(got, map[string]string{"held": "1", "fence": strconv.FormatInt(fence, 10),
			"ttl": ">25000", "owner": "self", "mode": "owned", "waiters": "0",
			"kind": "exclusive", "holders": "1", "limit": "0"}); err != nil {
			return err
		}
		if h, err := held(conn); err != nil || len(h) != 1 || h[0] != name {
			return fmt.Errorf("LOCK.HELD = %q, %v; want [%s]", h, err, name)
		}
		other, err := info(client, name)
		if err != nil {
			return err
		}
		return checkInfo(other, map[string]string{"held": "1", "owner": "other"})
	})

	g.run(stepRenew, func() error {
		if n, err := do(conn, "LOCK.RENEW", name, "60000").AsInt64(); err != nil || n != 1 {
			return fmt.Errorf("LOCK.RENEW = %d, %v; want 1", n, err)
		}
		got, err := info(conn, name)
		if err != nil {
			return err
		}
		return checkInfo(got, map[string]string{"ttl": ">30000", "owner": "self"})
	})

	g.run(stepRelease, func() error {
		if n, err := do(conn, "LOCK.RELEASE", name).AsInt64(); err != nil || n != 1 {
			return fmt.Errorf("LOCK.RELEASE = %d, %v; want 1", n, err)
		}
		if n, err := do(conn, "LOCK.RELEASE", name).AsInt64(); err != nil || n != 0 {
			return fmt.Errorf("second LOCK.RELEASE = %d, %v; want 0", n, err)
		}
		if h, err := held(conn); err != nil || len(h) != 0 {
			return fmt.Errorf("LOCK.HELD after release = %q, %v; want []", h, err)
		}
		got, err := info(conn, name)
		if err != nil {
			return err
		}
		return checkInfo(got, map[string]string{"held": "0", "ttl": "-2", "owner": "none", "kind": "none", "holders": "0"})
	})

	g.run(stepWait, func() error {
		name := prefix + "w"
		tok, err := do(conn, "LOCK.ACQUIRE", name, "30000").ToString()
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
		go func() {
			var r result
			r.err = withLockDedicated(ctx, client, name, func(fence int64) error {
				r.fence = fence
				return nil
			})
			got <- r
		}()
		if err := waitUntil("the waiter is queued", func() (bool, error) {
			m, err := info(client, name)
			return m["waiters"] == "1", err
		}); err != nil {
			return err
		}
		start := time.Now()
		if n, err := do(conn, "LOCK.RELEASE", name).AsInt64(); err != nil || n != 1 {
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
		m, err := info(client, name)
		if err != nil {
			return err
		}
		return checkInfo(m, map[string]string{"held": "0"})
	})

	g.run(stepDetached, func() error {
		name := prefix + "d"
		idA, err := do(conn, "CLIENT", "ID").AsInt64()
		if err != nil {
			return err
		}
		// snippet:begin rueidis-detached
		token, err := conn.Do(ctx, conn.B().Arbitrary("LOCK.ACQUIRE").Args(name, "60000", "DETACHED").Build()).ToString()
		if err != nil {
			return err // rueidis.IsRedisNil(err): someone else holds it
		}
		// ... later, from any connection, of any process:
		released, err := client.Do(ctx, client.B().Arbitrary("LOCK.RELEASE").Args(name, token).Build()).AsInt64()
		// snippet:end
		if err != nil || released != 1 {
			return fmt.Errorf("LOCK.RELEASE with the token through the shared connection = %d, %v; want 1", released, err)
		}
		if idB, err := do(client, "CLIENT", "ID").AsInt64(); err != nil || idB == idA {
			return fmt.Errorf("the shared connection has id %d (%v), the dedicated one %d: want two connections", idB, err, idA)
		}
		if h, err := held(conn); err != nil || len(h) != 0 {
			return fmt.Errorf("LOCK.HELD on the acquiring connection after the release = %q, %v; want []", h, err)
		}
		return nil
	})

	g.run(stepClose, func() error {
		name := prefix + "c"
		owner, err := newRueidis(addr)
		if err != nil {
			return err
		}
		if _, err := do(owner, "LOCK.ACQUIRE", name, "30000").ToString(); err != nil {
			owner.Close()
			return fmt.Errorf("LOCK.ACQUIRE: %w", err)
		}
		owner.Close()
		start := time.Now()
		tok, err := do(conn, "LOCK.ACQUIRE", name, "30000", "WAIT", "2000").ToString()
		if err != nil {
			return fmt.Errorf("after Close: LOCK.ACQUIRE from another connection: %w", err)
		}
		if d := time.Since(start); d > time.Second {
			return fmt.Errorf("after Close the lock took %v to come free", d)
		}
		if _, err := fenceOf(tok); err != nil {
			return err
		}
		if n, err := do(conn, "LOCK.RELEASE", name).AsInt64(); err != nil || n != 1 {
			return fmt.Errorf("LOCK.RELEASE = %d, %v", n, err)
		}
		return nil
	})

	// rueidis drops pushes it does not know (handlePush has no hook for
	// them): the push arrives, and the connection must stay in step.
	g.run(stepLost, func() error {
		name := prefix + "m"
		if _, err := do(conn, "LOCK.ACQUIRE", name, "30000", "MAXHOLD", "200").ToString(); err != nil {
			return fmt.Errorf("LOCK.ACQUIRE … MAXHOLD 200: %w", err)
		}
		if err := waitUntil("the MAXHOLD cap drops the lock", func() (bool, error) {
			h, err := held(conn)
			return len(h) == 0, err
		}); err != nil {
			return err
		}
		if n, err := do(conn, "LOCK.RENEW", name, "30000").AsInt64(); err != nil || n != 0 {
			return fmt.Errorf("LOCK.RENEW after the cap = %d, %v; want 0", n, err)
		}
		if s, err := do(conn, "PING").ToString(); err != nil || s != "PONG" {
			return fmt.Errorf("PING after the cap = %q, %v: the connection is out of step", s, err)
		}
		// Released at the cap, within a round trip of LOCK.HELD dropping it.
		if _, err := do(client, "LOCK.ACQUIRE", name, "1000", "DETACHED", "WAIT", "1000").ToString(); err != nil {
			return errors.Join(errors.New("another connection could not take it after the cap"), err)
		}
		return nil
	})
	return &g.res, g.log.String()
}
