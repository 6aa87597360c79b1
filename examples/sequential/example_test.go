package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Five edits arrive while the document is busy: they are applied in the
// order they arrived, each under a larger fence.
func Example() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	edits, err := run(context.Background(), addr, "doc:example", 5, io.Discard)
	if err != nil {
		fmt.Println(err)
		return
	}
	increasing := true
	for i, e := range edits {
		fmt.Println("applied", e.Text)
		if i > 0 && e.Fence <= edits[i-1].Fence {
			increasing = false
		}
	}
	fmt.Println("fences increase:", increasing)
	// Output:
	// applied edit 1
	// applied edit 2
	// applied edit 3
	// applied edit 4
	// applied edit 5
	// fences increase: true
}
