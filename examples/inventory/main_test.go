package main

import (
	"bytes"
	"testing"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

func TestNoOversell(t *testing.T) {
	initial := map[string]int{"red": 10, "blue": 5}
	var out bytes.Buffer
	res, err := run(t.Context(), lockproxytest.Start(t), 50, initial, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	// 25 buyers per SKU, more than the stock: every unit is sold, once.
	for sku, n := range initial {
		if res.Sold[sku] != n || res.Left[sku] != 0 {
			t.Errorf("%s: %d in stock, %d sold, %d left; want all %d sold, none left", sku, n, res.Sold[sku], res.Left[sku], n)
		}
	}
}
