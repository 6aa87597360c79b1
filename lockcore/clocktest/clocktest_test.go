package clocktest

import (
	"slices"
	"testing"
	"time"
)

// Timers fire in deadline order, each seeing the clock at its deadline, a
// stopped one never, and one armed by another within the step fires too.
func TestAdvance(t *testing.T) {
	start := time.Unix(1000, 0)
	c := New(start)
	var fired []string
	var at []time.Duration
	note := func(name string) func() {
		return func() { fired = append(fired, name); at = append(at, c.Now().Sub(start)) }
	}
	c.AfterFunc(30*time.Millisecond, note("c"))
	c.AfterFunc(10*time.Millisecond, func() {
		note("a")()
		c.AfterFunc(5*time.Millisecond, note("a+5"))
	})
	stopped := c.AfterFunc(20*time.Millisecond, note("stopped"))
	c.AfterFunc(50*time.Millisecond, note("later"))
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once, then false")
	}
	c.Advance(40 * time.Millisecond)
	if want := []string{"a", "a+5", "c"}; !slices.Equal(fired, want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	if want := []time.Duration{10e6, 15e6, 30e6}; !slices.Equal(at, want) {
		t.Errorf("fired at %v, want %v", at, want)
	}
	if got := c.Now().Sub(start); got != 40*time.Millisecond {
		t.Errorf("now +%v, want +40ms", got)
	}
	if c.Pending() != 1 {
		t.Errorf("%d pending, want 1 (later)", c.Pending())
	}
	c.AfterFunc(0, note("now"))
	c.Advance(0)
	if fired[len(fired)-1] != "now" {
		t.Errorf("a timer due now did not fire on Advance(0): %v", fired)
	}
}
