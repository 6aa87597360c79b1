// Command catalog rebuilds a shared cache while its readers wait: readers
// of the product catalog hold "catalog" shared, together, and the rebuild
// holds it alone. The rebuild waits for the readers already in, and the
// readers that come after it wait behind it, so a steady stream of readers
// never starves it, and no reader ever sees a half-built catalog.
//
//	go run ./examples/catalog [-addr 127.0.0.1:6380 | -embedded]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockproxy/lockproxy/examples/internal/recipe"
	"github.com/lockproxy/lockproxy/lockclient"
)

func main() {
	recipe.Main(func(ctx context.Context, addr string, out io.Writer) error {
		_, err := run(ctx, addr, "catalog", out)
		return err
	})
}

// Read runs read holding name shared: with any other readers, never during
// a rebuild.
func Read(ctx context.Context, locks *lockclient.Client, name string, read func(ctx context.Context) error) error {
	return locks.WithLock(ctx, name, read, lockclient.Shared(), lockclient.Wait(time.Minute))
}

// Rebuild runs build holding name alone, once the readers already in have
// left; readers that come meanwhile wait behind it.
func Rebuild(ctx context.Context, locks *lockclient.Client, name string, build func(ctx context.Context) error) error {
	return locks.WithLock(ctx, name, build, lockclient.Wait(time.Minute))
}

// catalog stands for the shared cache: what a reader must never see is
// building, and a rebuild must never run with readers in.
type catalog struct {
	version  atomic.Int64
	building atomic.Bool
	readers  atomic.Int64
}

// Result is what the run showed.
type Result struct {
	Reads, Rebuilds int
	MostReaders     int           // the most readers in at once
	Torn            int           // reads that saw a rebuild under way, or rebuilds with readers in
	LongestRebuild  time.Duration // the longest a rebuild waited for its turn
}

// run has 6 readers read the catalog over and over, each on a connection
// of its own, while a rebuild runs 3 times.
func run(ctx context.Context, addr, name string, out io.Writer) (Result, error) {
	var c catalog
	var res Result
	var mu sync.Mutex
	var torn, reads, most atomic.Int64
	stop := make(chan struct{})
	errs := make([]error, 7)
	var all sync.WaitGroup
	for i := range 6 {
		all.Go(func() {
			errs[i] = each(ctx, addr, stop, func(locks *lockclient.Client) error {
				return Read(ctx, locks, name, func(context.Context) error {
					in := c.readers.Add(1)
					defer c.readers.Add(-1)
					for m := most.Load(); in > m && !most.CompareAndSwap(m, in); m = most.Load() {
					}
					if c.building.Load() {
						torn.Add(1)
					}
					time.Sleep(time.Millisecond) // ... serve a page from the catalog ...
					reads.Add(1)
					return nil
				})
			})
		})
	}
	all.Go(func() {
		defer close(stop)
		locks, err := lockclient.Dial(ctx, addr)
		if err != nil {
			errs[6] = err
			return
		}
		defer locks.Close()
		for range 3 {
			asked := time.Now()
			err := Rebuild(ctx, locks, name, func(context.Context) error {
				waited := time.Since(asked)
				c.building.Store(true)
				if c.readers.Load() > 0 {
					torn.Add(1)
				}
				time.Sleep(5 * time.Millisecond) // ... rebuild the catalog ...
				c.version.Add(1)
				c.building.Store(false)
				mu.Lock()
				res.Rebuilds++
				res.LongestRebuild = max(res.LongestRebuild, waited)
				mu.Unlock()
				fmt.Fprintf(out, "rebuilt the catalog (version %d) after waiting %v\n", c.version.Load(), waited.Round(time.Millisecond))
				return nil
			})
			if err != nil {
				errs[6] = err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	all.Wait()
	res.Reads, res.Torn, res.MostReaders = int(reads.Load()), int(torn.Load()), int(most.Load())
	fmt.Fprintf(out, "%d reads, %d rebuilds, %d torn; a rebuild waited at most %v\n",
		res.Reads, res.Rebuilds, res.Torn, res.LongestRebuild.Round(time.Millisecond))
	return res, errors.Join(errs...)
}

// each dials addr and runs fn until stop.
func each(ctx context.Context, addr string, stop <-chan struct{}, fn func(*lockclient.Client) error) error {
	locks, err := lockclient.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer locks.Close()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := fn(locks); err != nil {
			return err
		}
	}
}
