package main

import (
	"bytes"
	"testing"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// Readers read together throughout, every rebuild runs alone in between,
// and no read sees one under way.
func TestNoTornReads(t *testing.T) {
	var out bytes.Buffer
	res, err := run(t.Context(), lockproxytest.Start(t), "catalog", &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Rebuilds != 3 || res.Torn != 0 || res.MostReaders < 2 {
		t.Fatalf("%+v: want 3 rebuilds, none torn, and readers in together", res)
	}
}
