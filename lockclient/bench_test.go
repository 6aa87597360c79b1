package lockclient_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/lockclient"
	"github.com/lockproxy/lockproxy/lockproxytest"
)

// The cost of lockclient's Acquire+Release against the same two commands
// sent by go-redis on a pinned connection, to the same in-process lockproxy:
// the baseline is what a user would write by hand.
func BenchmarkAcquireRelease(b *testing.B) {
	addr := lockproxytest.Start(b)
	ctx := context.Background()

	b.Run("lockclient", func(b *testing.B) {
		c, err := lockclient.Dial(ctx, addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		for b.Loop() {
			l, err := c.Acquire(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("go-redis-conn", func(b *testing.B) {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		defer rdb.Close()
		conn := rdb.Conn()
		defer conn.Close()
		b.ReportAllocs()
		for b.Loop() {
			if err := conn.Do(ctx, "LOCK.ACQUIRE", "bench", 30000).Err(); err != nil {
				b.Fatal(err)
			}
			if err := conn.Do(ctx, "LOCK.RELEASE", "bench").Err(); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("withlock", func(b *testing.B) {
		c, err := lockclient.Dial(ctx, addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		for b.Loop() {
			if err := c.WithLock(ctx, "bench", func(context.Context) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
