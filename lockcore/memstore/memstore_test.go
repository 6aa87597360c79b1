package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
	"github.com/lockproxy/lockproxy/lockcore/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lockcore.Store {
		s := memstore.New(memstore.Options{})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// A name is forgotten as soon as it is free and nobody waits for it: at
// its release, or at the first sweep after its lease expired. Memory does
// not grow with distinct names, and fences still rise.
func TestForgetsUnusedNames(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := memstore.New(memstore.Options{Now: func() time.Time { return now }})
	defer s.Close()
	ctx := context.Background()
	var last int64
	for _, n := range []string{"a", "b", "c"} {
		g, err := s.Acquire(ctx, lockcore.AcquireRequest{Name: n, Nonce: "x", TTL: time.Second})
		if err != nil || !g.Acquired {
			t.Fatal(g, err)
		}
		if n == "a" {
			s.Release(ctx, lockcore.ReleaseRequest{Name: n, Token: g.Token})
		}
		f, _, _ := lockcore.ParseToken(g.Token)
		if f <= last {
			t.Errorf("fence %d after %d", f, last)
		}
		last = f
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d after releasing a, want 2 (b and c held)", s.Len())
	}
	s.Acquire(ctx, lockcore.AcquireRequest{Name: "b", Nonce: "y", Waiter: "w", TTL: time.Second, WaiterTTL: 5 * time.Second})
	now = now.Add(time.Second)
	s.Sweep()
	if s.Len() != 1 {
		t.Errorf("Len = %d after the leases expired, want 1 (b, which w waits for)", s.Len())
	}
	now = now.Add(5 * time.Second)
	s.Sweep()
	if s.Len() != 0 {
		t.Errorf("Len = %d once the waiter lapsed too, want 0", s.Len())
	}
	g, _ := s.Acquire(ctx, lockcore.AcquireRequest{Name: "a", Nonce: "z", TTL: time.Second})
	if f, _, _ := lockcore.ParseToken(g.Token); f <= last {
		t.Errorf("fence %d for a forgotten name, after %d", f, last)
	}
}

// The fence follows the wall clock, and the last fence + 1 when the clock
// stepped back, so it never repeats.
func TestFenceSurvivesClockStepBack(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := memstore.New(memstore.Options{Now: func() time.Time { return now }})
	defer s.Close()
	ctx := context.Background()
	g1, _ := s.Acquire(ctx, lockcore.AcquireRequest{Name: "n", Nonce: "a", TTL: time.Second})
	s.Release(ctx, lockcore.ReleaseRequest{Name: "n", Token: g1.Token})
	now = now.Add(-10 * time.Second)
	g2, _ := s.Acquire(ctx, lockcore.AcquireRequest{Name: "n", Nonce: "b", TTL: time.Second})
	f1, _, _ := lockcore.ParseToken(g1.Token)
	f2, _, _ := lockcore.ParseToken(g2.Token)
	if f1 != now.Add(10*time.Second).UnixMicro() {
		t.Errorf("fence %d, want the clock in µs %d", f1, now.Add(10*time.Second).UnixMicro())
	}
	if f2 != f1+1 {
		t.Errorf("fence after a clock step back = %d, want %d", f2, f1+1)
	}
}
