// Command leader elects one leader among candidates with one long-lived
// owned lock. The leader leads while it holds the lock, and steps down the
// moment Lost fires; the others wait for the lock in a queue. When the
// leader's connection closes (the process crashed, or was partitioned from
// its sidecar), lockproxy releases the lock and hands it to the next
// candidate at once.
//
//	go run ./examples/leader [-addr 127.0.0.1:6380 | -embedded]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/lockproxy/lockproxy/examples/internal/recipe"
	"github.com/lockproxy/lockproxy/lockclient"
)

func main() {
	recipe.Main(func(ctx context.Context, addr string, out io.Writer) error {
		_, err := run(ctx, addr, fmt.Sprint("leader:", time.Now().UnixNano()), out)
		return err
	})
}

// Campaign runs for leadership until ctx ends or the client is closed. Each
// time it wins the lock, it calls lead with the term (the lock's fence,
// which the leader should pass along with what it writes, so that a
// deposed leader's late writes are refused) and a context that is
// cancelled when the lock is lost. lead must return when that context
// ends; then Campaign gives the lock back and runs again.
func Campaign(ctx context.Context, locks *lockclient.Client, name string, lead func(ctx context.Context, term int64)) error {
	for {
		lock, err := locks.Acquire(ctx, name, lockclient.Wait(time.Minute))
		if errors.Is(err, lockclient.ErrNotAcquired) {
			continue // still someone else's: queue again
		}
		if err != nil {
			return err
		}
		lctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-lock.Lost():
				cancel() // step down
			case <-lctx.Done():
			}
		})
		lead(lctx, lock.Fence())
		cancel()
		wg.Wait()
		_ = lock.Release(context.WithoutCancel(ctx))
	}
}

// Event is a change of leadership.
type Event struct {
	Candidate int
	Term      int64
	Elected   bool // false: stepped down
}

// Result is what the run showed.
type Result struct {
	Events []Event
}

// run has 3 candidates campaign, each with its own client (its own
// process, in real life), and crashes the leader twice.
func run(ctx context.Context, addr, name string, out io.Writer) (Result, error) {
	const n = 3
	var res Result
	events := make(chan Event, 4*n)
	clients := make([]*lockclient.Client, n)
	for i := range clients {
		c, err := lockclient.Dial(ctx, addr)
		if err != nil {
			return res, err
		}
		defer c.Close()
		clients[i] = c
	}

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			errs[i] = Campaign(cctx, c, name, func(ctx context.Context, term int64) {
				events <- Event{Candidate: i, Term: term, Elected: true}
				<-ctx.Done() // lead: do the leader's work until deposed
				events <- Event{Candidate: i, Term: term}
			})
		})
	}

	record := func(e Event) {
		res.Events = append(res.Events, e)
		if e.Elected {
			fmt.Fprintf(out, "candidate %d is the leader (term %d)\n", e.Candidate, e.Term)
		} else {
			fmt.Fprintf(out, "candidate %d stepped down (term %d)\n", e.Candidate, e.Term)
		}
	}
	// Crash the leader twice: closing its client closes the lock's
	// connection. The crashed leader sees Lost and steps down; lockproxy
	// hands the lock to the next candidate in line.
	elections, stepDowns := 0, 0
	for elections < n || stepDowns < n-1 {
		var e Event
		select {
		case e = <-events:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		record(e)
		if !e.Elected {
			stepDowns++
			continue
		}
		elections++
		if elections < n {
			fmt.Fprintf(out, "candidate %d crashes\n", e.Candidate)
			clients[e.Candidate].Close()
		}
	}
	stop() // the last leader shuts down cleanly
	wg.Wait()
	close(events)
	for e := range events {
		record(e)
	}
	for i, err := range errs {
		if err != nil && !errors.Is(err, lockclient.ErrClosed) && !errors.Is(err, context.Canceled) {
			return res, fmt.Errorf("candidate %d: %w", i, err)
		}
	}
	return res, nil
}
