// Command inventory sells stock to 50 concurrent buyers without
// overselling: a lock per SKU makes each read-check-write of that SKU's
// stock run alone, and buyers of one SKU queue for it (Wait) instead of
// failing.
//
//	go run ./examples/inventory [-addr 127.0.0.1:6380 | -embedded]
package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/lockproxy/lockproxy/examples/internal/recipe"
	"github.com/lockproxy/lockproxy/lockclient"
)

func main() {
	recipe.Main(func(ctx context.Context, addr string, out io.Writer) error {
		_, err := run(ctx, addr, 50, map[string]int{"red-shirt": 10, "blue-shirt": 5}, out)
		return err
	})
}

// Stock stands in for a stock table read and written in separate steps
// (SELECT, then UPDATE), as most code does: without a lock, two buyers can
// both read 1 and both sell it.
type Stock struct {
	mu    sync.Mutex
	units map[string]int // guarded by mu
}

func (s *Stock) Get(sku string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.units[sku]
}

func (s *Stock) Set(sku string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.units[sku] = n
}

// Buy sells one unit of sku if any is left, under the SKU's lock. It
// reports whether it sold one.
func Buy(ctx context.Context, locks *lockclient.Client, stock *Stock, sku string) (bool, error) {
	sold := false
	err := locks.WithLock(ctx, "sku:"+sku, func(ctx context.Context) error {
		n := stock.Get(sku)
		if n == 0 {
			return nil // sold out
		}
		runtime.Gosched() // the gap between SELECT and UPDATE, where an oversell would happen
		stock.Set(sku, n-1)
		sold = true
		return nil
	}, lockclient.Wait(30*time.Second))
	return sold, err
}

// Result is what the run showed, per SKU.
type Result struct {
	Initial, Sold, Left map[string]int
}

// run sends buyers concurrent buyers, round robin over the SKUs of initial.
func run(ctx context.Context, addr string, buyers int, initial map[string]int, out io.Writer) (Result, error) {
	locks, err := lockclient.Dial(ctx, addr)
	if err != nil {
		return Result{}, err
	}
	defer locks.Close()
	stock := &Stock{units: make(map[string]int)}
	var skus []string
	for sku, n := range initial {
		stock.Set(sku, n)
		skus = append(skus, sku)
	}

	res := Result{Initial: initial, Sold: make(map[string]int), Left: make(map[string]int)}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range buyers {
		sku := skus[i%len(skus)]
		wg.Go(func() {
			sold, err := Buy(ctx, locks, stock, sku)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if sold {
				res.Sold[sku]++
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	for _, sku := range skus {
		res.Left[sku] = stock.Get(sku)
		fmt.Fprintf(out, "%s: %d in stock, %d sold, %d left\n", sku, initial[sku], res.Sold[sku], res.Left[sku])
	}
	fmt.Fprintf(out, "%d buyers, no oversell\n", buyers)
	return res, nil
}
