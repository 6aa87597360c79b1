package main

import (
	"bytes"
	"testing"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

func TestPayments(t *testing.T) {
	var out bytes.Buffer
	res, err := run(t.Context(), lockproxytest.Start(t), &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Paid != 1 {
		t.Errorf("order 42 paid %d times, want 1", res.Paid)
	}
	if !res.StaleRejected {
		t.Error("the stale holder's write was not rejected")
	}
	if res.Order7.By != "B" || res.Order7.Status != "paid" {
		t.Errorf("order 7: %+v, want paid by B", res.Order7)
	}
}

// The fenced write alone, as in the SQL: a lower or equal fence changes
// nothing.
func TestMarkPaidFence(t *testing.T) {
	db := NewPayments()
	if err := db.MarkPaid("1", 10, "x"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []int64{9, 10} {
		if err := db.MarkPaid("1", f, "y"); err != ErrStale {
			t.Errorf("fence %d after 10: %v, want ErrStale", f, err)
		}
	}
	if err := db.MarkPaid("1", 11, "z"); err != nil || db.Get("1").By != "z" {
		t.Errorf("fence 11: %v, row %+v", err, db.Get("1"))
	}
}
