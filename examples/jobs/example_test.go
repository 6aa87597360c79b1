package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lockproxy/lockproxy/lockclient"
	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Ten jobs offered to four workers; worker 0 claims one and crashes.
// Every other job runs exactly once, and the crashed one is not run again.
func Example() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	res, err := run(context.Background(), addr, "example", io.Discard)
	if err != nil {
		fmt.Println(err)
		return
	}
	once, more := 0, 0
	for _, n := range res.Runs {
		if n == 1 {
			once++
		} else {
			more++
		}
	}
	fmt.Printf("%d jobs: %d ran once, %d more than once, %d never\n", len(res.Jobs), once, more, len(res.Jobs)-len(res.Runs))
	fmt.Printf("the crashed worker's job ran: %v\n", res.Runs[res.Crashed] > 0)
	// Output:
	// 10 jobs: 9 ran once, 0 more than once, 1 never
	// the crashed worker's job ran: false
}

// A claim is granted once per job, whoever asks.
func ExampleClaim() {
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

	for range 2 {
		ok, err := Claim(ctx, locks, "example:email-1")
		fmt.Printf("claimed: %v, err: %v\n", ok, err)
	}
	// Output:
	// claimed: true, err: <nil>
	// claimed: false, err: <nil>
}
