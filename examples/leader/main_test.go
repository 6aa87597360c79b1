package main

import (
	"bytes"
	"testing"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

func TestHandOver(t *testing.T) {
	var out bytes.Buffer
	res, err := run(t.Context(), lockproxytest.Start(t), "leader", &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	var elected []Event
	stepped := map[int]int64{}
	for _, e := range res.Events {
		if e.Elected {
			elected = append(elected, e)
		} else {
			stepped[e.Candidate] = e.Term
		}
	}
	if len(elected) != 3 {
		t.Fatalf("%d elections, want 3 (one per candidate): %+v", len(elected), res.Events)
	}
	seen := map[int]bool{}
	for i, e := range elected {
		if seen[e.Candidate] {
			t.Errorf("candidate %d elected twice", e.Candidate)
		}
		seen[e.Candidate] = true
		if i > 0 && e.Term <= elected[i-1].Term {
			t.Errorf("term %d after %d: terms must increase", e.Term, elected[i-1].Term)
		}
		// Every leader stepped down, in its own term: the two crashed ones
		// when Lost fired, the last one at shutdown.
		if stepped[e.Candidate] != e.Term {
			t.Errorf("candidate %d did not step down from term %d", e.Candidate, e.Term)
		}
	}
}
