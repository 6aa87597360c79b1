// Command exports caps how many exports run at once, across every
// instance of a service: each export takes one of n permits of a
// semaphore, "exports", for as long as it runs. The others wait in line,
// first come first served, and one starts the moment a permit frees: when
// an export finishes, or when the instance running it dies, since a permit
// belongs to its connection.
//
//	go run ./examples/exports [-addr 127.0.0.1:6380 | -embedded]
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
		_, err := run(ctx, addr, "exports", 10, out)
		return err
	})
}

// maxExports is how many exports may run at once, fleet-wide: what the
// database they read from can take.
const maxExports = 3

// Export runs export while holding one of maxExports permits of name,
// waiting up to a minute for one. Every caller must ask for the same
// limit: the first holder sets it, and another is ErrWrongKind.
func Export(ctx context.Context, locks *lockclient.Client, name string, export func(ctx context.Context) error) error {
	return locks.WithLock(ctx, name, export, lockclient.Limit(maxExports), lockclient.Wait(time.Minute))
}

// Result is what the run showed.
type Result struct {
	Exports int // how many ran
	Most    int // the most that ran at once
}

// run starts n exports, each on a connection of its own (as if on as many
// instances), and records how many ran at once.
func run(ctx context.Context, addr, name string, n int, out io.Writer) (Result, error) {
	var running, most, done atomic.Int64
	var outMu sync.Mutex // exports print while others run
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			locks, err := lockclient.Dial(ctx, addr)
			if err != nil {
				errs[i] = err
				return
			}
			defer locks.Close()
			errs[i] = Export(ctx, locks, name, func(context.Context) error {
				now := running.Add(1)
				for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
				}
				outMu.Lock()
				fmt.Fprintf(out, "export %d running (%d at once)\n", i, now)
				outMu.Unlock()
				time.Sleep(20 * time.Millisecond) // ... export a report ...
				running.Add(-1)
				done.Add(1)
				return nil
			})
		})
	}
	wg.Wait()
	res := Result{Exports: int(done.Load()), Most: int(most.Load())}
	fmt.Fprintf(out, "%d exports, at most %d at once (limit %d)\n", res.Exports, res.Most, maxExports)
	return res, errors.Join(errs...)
}
