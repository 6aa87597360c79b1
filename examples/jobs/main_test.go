package main

import (
	"bytes"
	"testing"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

func TestAtMostOnce(t *testing.T) {
	var out bytes.Buffer
	res, err := run(t.Context(), lockproxytest.Start(t), "test", &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Crashed == "" {
		t.Fatal("worker 0 claimed nothing")
	}
	for _, job := range res.Jobs {
		want := 1
		if job == res.Crashed {
			want = 0 // at most once: not run again after its worker crashed
		}
		if res.Runs[job] != want {
			t.Errorf("%s ran %d times, want %d", job, res.Runs[job], want)
		}
	}
}

// Running the same jobs again within the claim's ttl runs none of them.
func TestNoRerun(t *testing.T) {
	addr := lockproxytest.Start(t)
	var out bytes.Buffer
	if _, err := run(t.Context(), addr, "again", &out); err != nil {
		t.Fatal(err)
	}
	res, err := run(t.Context(), addr, "again", &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 0 || res.Crashed != "" {
		t.Fatalf("second run: %+v", res)
	}
}
