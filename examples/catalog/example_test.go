package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Six readers read the catalog without pause while it is rebuilt three
// times: every rebuild gets its turn, and no read sees one under way.
func Example() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	res, err := run(context.Background(), addr, "catalog", io.Discard)
	fmt.Printf("rebuilds: %d, torn: %d, reads: %v, err: %v\n", res.Rebuilds, res.Torn, res.Reads > 0, err)
	// Output:
	// rebuilds: 3, torn: 0, reads: true, err: <nil>
}
