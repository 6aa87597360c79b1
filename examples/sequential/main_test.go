package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

func TestArrivalOrder(t *testing.T) {
	var out bytes.Buffer
	edits, err := run(t.Context(), lockproxytest.Start(t), "doc", 8, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(edits) != 8 {
		t.Fatalf("%d edits applied, want 8", len(edits))
	}
	for i, e := range edits {
		if want := fmt.Sprint("edit ", i+1); e.Text != want {
			t.Errorf("edit #%d is %q, want %q: not in arrival order", i+1, e.Text, want)
		}
		if i > 0 && e.Fence <= edits[i-1].Fence {
			t.Errorf("fence %d after %d", e.Fence, edits[i-1].Fence)
		}
	}
}
