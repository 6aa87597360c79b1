package lockcore

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// tracker owns lockcore's background work: every goroutine and timer that
// Locks starts goes through it, so that Shutdown can wait for all of them.
// Once closed it starts nothing more; callers then do the work inline or
// not at all, as each says.
type tracker struct {
	clock  Clock
	mu     sync.Mutex
	closed bool // guarded by mu
	wg     sync.WaitGroup
}

// add counts one piece of work, unless the tracker is closed.
func (t *tracker) add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

// Go runs f in a goroutine of its own and reports true, or reports false
// and runs nothing once the tracker is closed.
func (t *tracker) Go(f func()) bool {
	if !t.add() {
		return false
	}
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// GoOrRun runs f in the background, or at once if the tracker is closed:
// for work that must happen either way, such as giving a lock back.
func (t *tracker) GoOrRun(f func()) {
	if !t.Go(f) {
		f()
	}
}

// AfterFunc runs f after d, as tracked work. It returns nil once the
// tracker is closed; a nil *task is safe to Stop.
func (t *tracker) AfterFunc(d time.Duration, f func()) *task {
	if !t.add() {
		return nil
	}
	return &task{t: t, timer: t.clock.AfterFunc(d, func() {
		defer t.wg.Done()
		f()
	})}
}

// Close stops the tracker from starting anything new. It is safe to call
// more than once.
func (t *tracker) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

// Closed reports whether Close was called.
func (t *tracker) Closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Wait waits for every piece of work started, or for ctx to end. Call it
// after Close.
func (t *tracker) Wait(ctx context.Context) error {
	joined := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(joined)
	}()
	select {
	case <-joined:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for background work: %w", ctx.Err())
	}
}

// task is a pending AfterFunc of a tracker.
type task struct {
	t     *tracker
	timer Timer
}

// Stop cancels the call if it has not begun. It is safe on a nil task.
func (k *task) Stop() {
	if k != nil && k.timer.Stop() {
		k.t.wg.Done() // its func will never run to do it
	}
}
