package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Three candidates campaign and the leader crashes twice: each candidate
// leads once, in turn, and each new term is larger than the last.
func Example() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	res, err := run(context.Background(), addr, "leader:example", io.Discard)
	if err != nil {
		fmt.Println(err)
		return
	}
	leaders := map[int]bool{}
	elected, steppedDown := 0, 0
	increasing := true
	var last int64
	for _, e := range res.Events {
		if !e.Elected {
			steppedDown++
			continue
		}
		elected++
		leaders[e.Candidate] = true
		if e.Term <= last {
			increasing = false
		}
		last = e.Term
	}
	fmt.Printf("elected %d times, %d different candidates, stepped down %d times\n", elected, len(leaders), steppedDown)
	fmt.Println("terms increase:", increasing)
	// Output:
	// elected 3 times, 3 different candidates, stepped down 3 times
	// terms increase: true
}
