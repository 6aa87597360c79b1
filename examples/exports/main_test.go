package main

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/lockproxy/lockproxy/lockclient"
	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Every export runs, and never more than maxExports at once.
func TestCapped(t *testing.T) {
	var out bytes.Buffer
	res, err := run(t.Context(), lockproxytest.Start(t), "exports", 12, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Exports != 12 || res.Most > maxExports {
		t.Fatalf("%+v: want 12 exports, at most %d at once", res, maxExports)
	}
}

// An instance that asks with another limit is refused, and its export
// does not run.
func TestOtherLimitRefused(t *testing.T) {
	addr := lockproxytest.Start(t)
	holder, err := lockclient.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.Acquire(t.Context(), "exports", lockclient.Limit(maxExports)); err != nil {
		t.Fatal(err)
	}
	other, err := lockclient.Dial(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ran := false
	err = other.WithLock(t.Context(), "exports", func(ctx context.Context) error { ran = true; return nil }, lockclient.Limit(maxExports+1))
	if !errors.Is(err, lockclient.ErrWrongKind) || ran {
		t.Fatalf("another limit: %v, ran %v; want ErrWrongKind and no run", err, ran)
	}
}
