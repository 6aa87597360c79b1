package syncbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Writers on many goroutines lose nothing, and Tail is the last lines.
func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 50 {
		t.Errorf("%d lines, want 50", n)
	}
	var c Buffer
	c.Write([]byte("a\nb\nc\n"))
	if got := c.Tail(2); got != "b\nc" {
		t.Errorf("Tail(2) = %q, want %q", got, "b\nc")
	}
	if got := c.Tail(9); got != "a\nb\nc" {
		t.Errorf("Tail(9) = %q, want all", got)
	}
}
