// Command jobs runs each job at most once, however many workers see it: a
// worker claims a job by taking a detached lock on its id, and never gives
// it back. The claim outlives the worker's connection, so a job whose
// worker crashed is not run again by another (at most once, not at least
// once), and it expires after its TTL, which must be longer than the time
// a job can be offered again.
//
//	go run ./examples/jobs [-addr 127.0.0.1:6380 | -embedded]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/lockproxy/lockproxy/examples/internal/recipe"
	"github.com/lockproxy/lockproxy/lockclient"
)

func main() {
	recipe.Main(func(ctx context.Context, addr string, out io.Writer) error {
		_, err := run(ctx, addr, strconv.FormatInt(time.Now().UnixNano(), 36), out)
		return err
	})
}

// claimTTL is how long a claim keeps a job from running again.
const claimTTL = time.Hour

// Claim reports whether this worker may run job: true once for each job
// within claimTTL, whoever asks.
func Claim(ctx context.Context, locks *lockclient.Client, job string) (bool, error) {
	_, err := locks.Acquire(ctx, "job:"+job, lockclient.Detached(), lockclient.TTL(claimTTL))
	switch {
	case errors.Is(err, lockclient.ErrNotAcquired):
		return false, nil // another worker claimed it
	case err != nil:
		return false, err
	}
	// Not released: the claim is the record that the job was taken.
	return true, nil
}

// Result is what the run showed.
type Result struct {
	Jobs    []string
	Runs    map[string]int // how many times each job ran
	Crashed string         // the job whose worker crashed after claiming it
}

// run offers the jobs to 4 workers, each with a connection of its own.
// Worker 0 claims its first job and crashes; then workers 1 to 3 go
// through every job at once, each from its own starting point. runID keeps
// the job ids of two runs against one sidecar apart.
func run(ctx context.Context, addr, runID string, out io.Writer) (Result, error) {
	res := Result{Runs: make(map[string]int)}
	for i := range 10 {
		res.Jobs = append(res.Jobs, fmt.Sprintf("%s:email-%d", runID, i))
	}
	var mu sync.Mutex
	did := func(w int) func(job string, crashed bool) {
		return func(job string, crashed bool) {
			mu.Lock()
			defer mu.Unlock()
			if crashed {
				res.Crashed = job
				fmt.Fprintf(out, "worker %d claimed %s and crashed\n", w, job)
				return
			}
			res.Runs[job]++
			fmt.Fprintf(out, "worker %d ran %s\n", w, job)
		}
	}
	if err := worker(ctx, addr, 0, res.Jobs, did(0)); err != nil {
		return res, err
	}
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for w := 1; w < 4; w++ {
		wg.Go(func() { errs[w] = worker(ctx, addr, w, res.Jobs, did(w)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	once, more := 0, 0
	for _, n := range res.Runs {
		if n == 1 {
			once++
		} else {
			more++
		}
	}
	fmt.Fprintf(out, "%d jobs: %d ran once, %d more than once, %d never (%s, whose worker crashed)\n",
		len(res.Jobs), once, more, len(res.Jobs)-len(res.Runs), res.Crashed)
	return res, nil
}

// worker offers itself every job, starting at its own offset.
func worker(ctx context.Context, addr string, w int, jobs []string, did func(job string, crashed bool)) error {
	locks, err := lockclient.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer locks.Close()
	for i := range jobs {
		job := jobs[(i+w*len(jobs)/4)%len(jobs)]
		ok, err := Claim(ctx, locks, job)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if w == 0 {
			did(job, true)
			return nil // crash: its connection closes, the claim stays
		}
		did(job, false) // ... send the email ...
	}
	return nil
}
