package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lockproxy/lockproxy/lockclient"
	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Five workers pay order 42 at once: it is paid once. A stale holder of
// order 7's lock writes after the lock passed to B: its write is rejected.
func Example() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	res, err := run(context.Background(), addr, io.Discard)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("order 42: paid %d time(s) by 5 workers\n", res.Paid)
	fmt.Printf("order 7: %s by %s, stale write rejected: %v\n", res.Order7.Status, res.Order7.By, res.StaleRejected)
	// Output:
	// order 42: paid 1 time(s) by 5 workers
	// order 7: paid by B, stale write rejected: true
}

// Pay called twice for one order: the second call finds it paid.
func ExamplePay() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	ctx := context.Background()
	locks, err := lockclient.Dial(ctx, addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer locks.Close()

	db := NewPayments()
	for _, worker := range []string{"worker-1", "worker-2"} {
		paid, err := Pay(ctx, locks, db, "42", worker)
		fmt.Printf("%s paid: %v, err: %v\n", worker, paid, err)
	}
	fmt.Println("order 42:", db.Get("42").Status, "by", db.Get("42").By)
	// Output:
	// worker-1 paid: true, err: <nil>
	// worker-2 paid: false, err: <nil>
	// order 42: paid by worker-1
}
