// Command payments records each order's payment once. A lock per order id
// keeps two workers from paying one order at the same time, and the lock's
// fencing token, written with the payment, makes the store reject the late
// write of a worker whose lock has meanwhile passed to another (see
// docs/guarantees.md, "Fencing tokens close the gap").
//
//	go run ./examples/payments [-addr 127.0.0.1:6380 | -embedded]
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
	recipe.Main(func(ctx context.Context, addr string, out io.Writer) error { _, err := run(ctx, addr, out); return err })
}

// ErrStale is the store's refusal of a write whose fence is not above the
// last one it accepted: the writer's lock is stale.
var ErrStale = errors.New("stale lock: a holder with a newer fence has written")

// Payment is one row of the payments table.
type Payment struct {
	Status string // "" (unpaid) or "paid"
	Fence  int64  // the fence of the last accepted write; 0 for a new row
	By     string // the worker that wrote it
}

// Payments stands in for a database table. MarkPaid is the fenced update
//
//	UPDATE payments SET status = 'paid', fence = :fence, by = :by
//	 WHERE order_id = :id AND fence < :fence
type Payments struct {
	mu   sync.Mutex
	rows map[string]Payment // guarded by mu
}

func NewPayments() *Payments { return &Payments{rows: make(map[string]Payment)} }

// Get returns an order's row.
func (p *Payments) Get(orderID string) Payment {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rows[orderID]
}

// MarkPaid records the payment, unless a write with a fence at least as
// high came first (0 rows updated): then it returns ErrStale.
func (p *Payments) MarkPaid(orderID string, fence int64, by string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fence <= p.rows[orderID].Fence {
		return ErrStale
	}
	p.rows[orderID] = Payment{Status: "paid", Fence: fence, By: by}
	return nil
}

// Pay pays orderID unless it is paid already, under the order's lock, and
// writes the payment with the lock's fence. It reports whether this call
// paid.
func Pay(ctx context.Context, locks *lockclient.Client, db *Payments, orderID, worker string) (bool, error) {
	lock, err := locks.Acquire(ctx, "order:"+orderID, lockclient.Wait(10*time.Second))
	if err != nil {
		return false, err
	}
	defer lock.Release(context.WithoutCancel(ctx))
	if db.Get(orderID).Status == "paid" {
		return false, nil
	}
	// ... charge the card here, with orderID as the idempotency key ...
	if err := db.MarkPaid(orderID, lock.Fence(), worker); err != nil {
		return false, err
	}
	return true, nil
}

// Result is what the run showed.
type Result struct {
	Paid          int     // how many of the concurrent workers paid order 42 (1)
	Order7        Payment // order 7's row after the stale holder tried
	StaleRejected bool    // the stale holder's write was refused
}

func run(ctx context.Context, addr string, out io.Writer) (Result, error) {
	locks, err := lockclient.Dial(ctx, addr)
	if err != nil {
		return Result{}, err
	}
	defer locks.Close()
	db := NewPayments()
	var res Result

	// 1. Five workers get the same order at once (a retried message, a
	// double click): one pays, the others find it paid.
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := range 5 {
		wg.Go(func() {
			paid, err := Pay(ctx, locks, db, "42", fmt.Sprint("worker-", i))
			if err != nil {
				errs <- err
				return
			}
			if paid {
				mu.Lock()
				res.Paid++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return res, err
	}
	fmt.Fprintf(out, "order 42: paid once by %s, with fence %d, though 5 workers tried\n", db.Get("42").By, db.Get("42").Fence)

	// 2. A stale holder. Worker A takes order 7's lock and finds it unpaid,
	// then stalls (a GC pause, a slow disk) without looking at Lost. Its
	// lock is taken back (MaxHold stands in for any way a lock is lost) and
	// worker B gets it, with a larger fence, and pays. When A wakes up and
	// writes, the fence check rejects it.
	a, err := locks.Acquire(ctx, "order:7", lockclient.MaxHold(100*time.Millisecond))
	if err != nil {
		return res, err
	}
	defer a.Release(context.WithoutCancel(ctx))
	unpaid := db.Get("7").Status == ""
	fmt.Fprintf(out, "order 7: A holds the lock with fence %d, finds it unpaid (%v), and stalls\n", a.Fence(), unpaid)

	if _, err := Pay(ctx, locks, db, "7", "B"); err != nil { // waits for A's lock to be taken back
		return res, err
	}
	fmt.Fprintf(out, "order 7: B got the lock with fence %d and paid\n", db.Get("7").Fence)

	err = db.MarkPaid("7", a.Fence(), "A") // A wakes up
	res.StaleRejected = errors.Is(err, ErrStale)
	res.Order7 = db.Get("7")
	fmt.Fprintf(out, "order 7: A's late write with fence %d: %v\n", a.Fence(), err)
	return res, nil
}
