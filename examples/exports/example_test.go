package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Ten exports, each as if on its own instance: all run, at most three at
// once.
func Example() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	res, err := run(context.Background(), addr, "exports", 10, io.Discard)
	fmt.Printf("%d exports, at most 3 at once: %v, err: %v\n", res.Exports, res.Most <= 3, err)
	// Output:
	// 10 exports, at most 3 at once: true, err: <nil>
}
