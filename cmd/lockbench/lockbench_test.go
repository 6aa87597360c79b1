package main

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
)

// buildLockproxy compiles the sidecar the load tool starts.
func buildLockproxy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lockproxy")
	out, err := exec.Command("go", "build", "-o", bin, "../lockproxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build lockproxy: %v\n%s", err, out)
	}
	return bin
}

// A short run through two real sidecars and the baseline verifies mutual
// exclusion and prints every figure.
func TestRun(t *testing.T) {
	bin := buildLockproxy(t)
	srv := redistest.Start(t)
	var out strings.Builder
	err := run(context.Background(), []string{"-lockproxy", bin, "-redis", srv.URL(), "-sidecars", "2",
		"-clients", "6", "-names", "2", "-duration", "800ms", "-warmup", "100ms", "-hold", "500us", "-think", "200us",
		"-baseline-retry", "2ms"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"throughput /s", "wait p99", "hand-off gap p50", "self re-acquire share",
		"fairness (max/min per client)", "upstream commands / acquisition", "polling ÷ lockproxy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !regexpLine(out.String(), "lost updates, overlaps", "0", "0") {
		t.Errorf("violations reported:\n%s", out.String())
	}
}

func regexpLine(out, label string, want ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, label) {
			fields := strings.Fields(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), label)))
			return strings.Join(fields, " ") == strings.Join(want, " ")
		}
	}
	return false
}

// noLock is a locker that locks nothing, to show the checks catch it.
type noLock struct{}

func (*noLock) acquire(string) error { return nil }
func (*noLock) release(string) error { return nil }
func (*noLock) Close() error         { return nil }

// Without mutual exclusion, the counter check and the overlap check fail:
// the verification can fail.
func TestVerificationCatchesNoLocking(t *testing.T) {
	srv := redistest.Start(t)
	cfg := config{clients: 8, names: 1, hold: 200 * time.Microsecond, duration: 500 * time.Millisecond, warmup: 50 * time.Millisecond}
	w := workload{name: "none", addr: srv.Addr(), countCommands: func(map[string]int64, int64) int64 { return 0 },
		newLocker: func(int) (locker, error) { return &noLock{}, nil }}
	r, err := measure(context.Background(), cfg, srv.Addr(), w)
	if err != nil {
		t.Fatal(err)
	}
	if r.violations == 0 {
		t.Errorf("8 clients without a lock: no lost update or overlap found in %d acquisitions", r.all)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-clients", "0"},
		{"-store", "etcd"},
		{"-store", "embedded", "-sidecars", "2"},
		{"-duration", "100ms", "-warmup", "200ms"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
