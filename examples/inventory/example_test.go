package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// 50 concurrent buyers, round robin over two SKUs: every unit is sold
// once, and none is sold twice.
func Example() {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	initial := map[string]int{"red-shirt": 10, "blue-shirt": 5}
	res, err := run(context.Background(), addr, 50, initial, io.Discard)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, sku := range []string{"blue-shirt", "red-shirt"} {
		fmt.Printf("%s: sold %d of %d, %d left, oversold: %v\n",
			sku, res.Sold[sku], initial[sku], res.Left[sku], res.Sold[sku] > initial[sku])
	}
	// Output:
	// blue-shirt: sold 5 of 5, 0 left, oversold: false
	// red-shirt: sold 10 of 10, 0 left, oversold: false
}
