package lockclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockproxy/lockproxy/lockclient"
	"github.com/lockproxy/lockproxy/lockproxytest"
)

// The examples run against an in-process lockproxy; point Dial at your
// sidecar (127.0.0.1:6380 by default) instead.
func Example() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	ctx := context.Background()
	c, err := lockclient.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	lock, err := c.Acquire(ctx, "order:42", lockclient.TTL(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("holding", lock.Name(), "with a fence:", lock.Fence() > 0)

	// Someone else trying meanwhile is told it is held.
	_, err = c.Acquire(ctx, "order:42")
	fmt.Println("second acquire:", errors.Is(err, lockclient.ErrNotAcquired))

	if err := lock.Release(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("released")
	// Output:
	// holding order:42 with a fence: true
	// second acquire: true
	// released
}

func ExampleClient_WithLock() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	c, err := lockclient.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.WithLock(ctx, "report:daily", func(ctx context.Context) error {
		// ctx is cancelled if the lock is lost: stop and let the next
		// holder do it.
		fmt.Println("building the report")
		return nil
	}, lockclient.Wait(10*time.Second))
	fmt.Println("err:", err)
	// Output:
	// building the report
	// err: <nil>
}

// Wait queues for a held lock; a release hands it to the first waiter at
// once, with a larger fence.
func ExampleWait() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	c, err := lockclient.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	first, err := c.Acquire(ctx, "printer")
	if err != nil {
		log.Fatal(err)
	}
	next := make(chan *lockclient.Lock)
	go func() {
		l, err := c.Acquire(ctx, "printer", lockclient.Wait(time.Minute))
		if err != nil {
			log.Fatal(err)
		}
		next <- l
	}()
	for { // until the second acquire is queued
		info, err := c.Info(ctx, "printer")
		if err != nil {
			log.Fatal(err)
		}
		if info.Waiters == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := first.Release(ctx); err != nil {
		log.Fatal(err)
	}
	second := <-next
	fmt.Println("handed over, fence increased:", second.Fence() > first.Fence())
	_ = second.Release(ctx)
	// Output:
	// handed over, fence increased: true
}

// Lost fires when lockproxy takes the lock back: here MaxHold caps how long
// it may be held.
func ExampleLock_Lost() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	c, err := lockclient.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	lock, err := c.Acquire(ctx, "import", lockclient.MaxHold(50*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	<-lock.Lost()
	fmt.Println("lost; release says:", errors.Is(lock.Release(ctx), lockclient.ErrNotHeld))
	// Output:
	// lost; release says: true
}

// A detached lock is not tied to a connection: it lives for its TTL, and
// its token releases it from anywhere.
func ExampleDetached() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	c, err := lockclient.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	lock, err := c.Acquire(ctx, "batch:7", lockclient.Detached(), lockclient.TTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	info, err := c.Info(ctx, "batch:7")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held:", info.Held)
	fmt.Println("release:", lock.Release(ctx))
	// Output:
	// held: true
	// release: <nil>
}

// Limit makes a name a counting semaphore: here six jobs share two
// permits, so no more than two ever run at once, whichever process they
// run in.
func ExampleLimit() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	c, err := lockclient.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var running, crowded, done atomic.Int32
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			err := c.WithLock(ctx, "encoder", func(ctx context.Context) error {
				if running.Add(1) > 2 {
					crowded.Add(1)
				}
				done.Add(1) // the job
				running.Add(-1)
				return nil
			}, lockclient.Limit(2), lockclient.Wait(time.Minute))
			if err != nil {
				log.Fatal(err)
			}
		})
	}
	wg.Wait()
	fmt.Println("jobs done:", done.Load())
	fmt.Println("jobs that ran beside 2 others:", crowded.Load())
	// Output:
	// jobs done: 6
	// jobs that ran beside 2 others: 0
}

// Shared takes the read side of a read-write lock: readers hold it
// together, and the writer (an acquire without Shared) gets it once they
// have all left.
func ExampleShared() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	c, err := lockclient.Dial(ctx, addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var readers []*lockclient.Lock
	for range 2 {
		r, err := c.Acquire(ctx, "catalog", lockclient.Shared())
		if err != nil {
			log.Fatal(err)
		}
		readers = append(readers, r)
	}
	info, err := c.Info(ctx, "catalog")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Kind, "by", info.Holders)

	_, err = c.Acquire(ctx, "catalog")
	fmt.Println("writer while read:", errors.Is(err, lockclient.ErrNotAcquired))

	for _, r := range readers {
		if err := r.Release(ctx); err != nil {
			log.Fatal(err)
		}
	}
	err = c.WithLock(ctx, "catalog", func(ctx context.Context) error {
		fmt.Println("writing the catalog")
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// shared by 2
	// writer while read: true
	// writing the catalog
	// err: <nil>
}
