// Command sequential applies operations to one resource one at a time, in
// the order they arrived: each operation waits for the resource's lock,
// and lockproxy serves the waiters of a lock first come, first served, so
// the lock hands the resource from one to the next in arrival order.
//
//	go run ./examples/sequential [-addr 127.0.0.1:6380 | -embedded]
package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/lockproxy/lockproxy/examples/internal/recipe"
	"github.com/lockproxy/lockproxy/lockclient"
)

func main() {
	recipe.Main(func(ctx context.Context, addr string, out io.Writer) error {
		_, err := run(ctx, addr, fmt.Sprint("doc:", time.Now().UnixNano()), 5, out)
		return err
	})
}

// Doc is the shared resource: a document that edits are applied to.
type Doc struct {
	mu    sync.Mutex
	edits []Edit // guarded by mu
}

// Edit is one applied operation, with the fence of the lock it ran under.
type Edit struct {
	Text  string
	Fence int64
}

func (d *Doc) apply(e Edit) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.edits = append(d.edits, e)
}

// Edits returns the edits applied so far, in order.
func (d *Doc) Edits() []Edit {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Edit(nil), d.edits...)
}

// Apply waits its turn for the document's lock and applies text.
func Apply(ctx context.Context, locks *lockclient.Client, name string, doc *Doc, text string) error {
	lock, err := locks.Acquire(ctx, name, lockclient.Wait(time.Minute))
	if err != nil {
		return err
	}
	defer lock.Release(context.WithoutCancel(ctx))
	doc.apply(Edit{Text: text, Fence: lock.Fence()})
	return nil
}

// run holds the document's lock while n edits arrive one after another,
// then lets them through; they are applied in the order they arrived.
func run(ctx context.Context, addr, name string, n int, out io.Writer) ([]Edit, error) {
	locks, err := lockclient.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer locks.Close()
	doc := &Doc{}

	// Someone is busy with the document: the edits will have to queue.
	busy, err := locks.Acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	defer busy.Release(context.WithoutCancel(ctx))

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		text := fmt.Sprint("edit ", i+1)
		wg.Go(func() { errs[i] = Apply(ctx, locks, name, doc, text) })
		// Start the next one only once this one is in the queue, so that
		// the arrival order is known.
		if err := queued(ctx, locks, name, i+1); err != nil {
			locks.Close() // ends the waiting edits
			wg.Wait()
			return nil, err
		}
		fmt.Fprintf(out, "%s arrived and waits\n", text)
	}
	if err := busy.Release(ctx); err != nil {
		return nil, err
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	edits := doc.Edits()
	for _, e := range edits {
		fmt.Fprintf(out, "applied %s (fence %d)\n", e.Text, e.Fence)
	}
	return edits, nil
}

// queued waits until n acquires wait for name on the sidecar. A queue
// position sends no event, so LOCK.INFO is polled.
func queued(ctx context.Context, locks *lockclient.Client, name string, n int) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		info, err := locks.Info(ctx, name)
		if err != nil {
			return err
		}
		if info.Waiters >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
