package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/resp"
)

// TestMain lets the test binary serve as a client process (-procs) and as
// the floor server (-floor), which lockbench starts by re-running its own
// executable.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == floorFlag {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		if err := serveFloor(ctx, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "lockbench floor server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) == 3 && os.Args[1] == clientFlag {
		if err := runClientProcess(context.Background(), os.Args[2], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "lockbench client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

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
		"fairness (max/min per client)", "upstream commands / acquisition", "polling ÷ lockproxy", "hand-offs local / ahead / upstream / remote"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !regexpLine(out.String(), "lost updates, overlaps", "0", "0") {
		t.Errorf("violations reported:\n%s", out.String())
	}
}

// With -procs, every client runs in a process of its own, for both
// workloads, and the run verifies mutual exclusion all the same.
func TestRunProcesses(t *testing.T) {
	bin := buildLockproxy(t)
	srv := redistest.Start(t)
	var out strings.Builder
	err := run(context.Background(), []string{"-lockproxy", bin, "-redis", srv.URL(), "-procs",
		"-clients", "4", "-names", "1", "-duration", "800ms", "-warmup", "100ms", "-hold", "500us", "-think", "200us",
		"-baseline-retry", "2ms"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !regexpLine(out.String(), "lost updates, overlaps", "0", "0") {
		t.Errorf("violations reported:\n%s", out.String())
	}
	for _, w := range []int{1, 2} { // lockproxy's column, then polling's
		if n := column(out.String(), "acquisitions", w); n < 4 {
			t.Errorf("workload %d: %d acquisitions by 4 client processes in 700ms:\n%s", w, n, out.String())
		}
	}
}

// column reads the n-th figure (from 1) of the line labelled label.
func column(out, label string, n int) int {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
			fields := strings.Fields(rest)
			if len(fields) >= n {
				v, _ := strconv.Atoi(fields[n-1])
				return v
			}
		}
	}
	return -1
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

func (*noLock) acquire(string, holdKind) error { return nil }
func (*noLock) release(string) error           { return nil }
func (*noLock) Close() error                   { return nil }

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

// Without a semaphore, both of its checks fail: the recorded holds and the
// Redis gauge each show more holders than permits. Without a read-write
// lock, the records show writers beside other holds; with readers alone,
// whose holds may overlap, nothing fails.
func TestVerificationCatchesBrokenKinds(t *testing.T) {
	srv := redistest.Start(t)
	w := workload{name: "none", addr: srv.Addr(), countCommands: func(map[string]int64, int64) int64 { return 0 },
		newLocker: func(int) (locker, error) { return &noLock{}, nil }}
	cfg := config{clients: 8, names: 1, hold: 200 * time.Microsecond, duration: 500 * time.Millisecond, warmup: 50 * time.Millisecond}
	for _, c := range []struct {
		name    string
		limit   int
		readers float64
		want    []string // in the problems; none: no violation
	}{
		{"semaphore of 2", 2, 0, []string{"broke counted exclusion (at most 2 holds", "in the Redis gauge"}},
		{"readers and writers", 0, 0.5, []string{"broke read-write exclusion"}},
		{"readers alone", 0, 1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := cfg
			cfg.limit, cfg.readers = c.limit, c.readers
			r, err := measure(context.Background(), cfg, srv.Addr(), w)
			if err != nil {
				t.Fatal(err)
			}
			problems := strings.Join(r.problems, "\n")
			if len(c.want) == 0 && r.violations != 0 {
				t.Errorf("%d violations in %d acquisitions:\n%s", r.violations, r.all, problems)
			}
			if len(c.want) > 0 && r.violations == 0 {
				t.Errorf("no violation found in %d acquisitions", r.all)
			}
			for _, want := range c.want {
				if !strings.Contains(problems, want) {
					t.Errorf("problems lack %q:\n%s", want, problems)
				}
			}
		})
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-clients", "0"},
		{"-store", "etcd"},
		{"-store", "embedded", "-sidecars", "2"},
		{"-store", "embedded", "-upstream", "redis://n1:7000"},
		{"-mode", "burst"},
		{"-duration", "100ms", "-warmup", "200ms"},
		{"-mode", "locks", "-floor"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// -limit and -readers run only where a semaphore or a read-write lock can
// be taken, never together, and each refusal says what to change.
func TestKindFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"-limit", "4"}, "-baseline=false"},
		{[]string{"-readers", "0.9"}, "-baseline=false"},
		{[]string{"-limit", "4", "-baseline=false", "-floor"}, "leave out -floor"},
		{[]string{"-readers", "0.9", "-baseline=false", "-floor"}, "leave out -floor"},
		{[]string{"-limit", "4", "-readers", "0.5", "-baseline=false"}, "-limit and -readers together"},
		{[]string{"-limit", "-1", "-baseline=false"}, "-limit must be"},
		{[]string{"-readers", "1.5", "-baseline=false"}, "0..1"},
		{[]string{"-readers", "-0.1", "-baseline=false"}, "0..1"},
		{[]string{"-readers", "NaN", "-baseline=false"}, "0..1"},
		{[]string{"-limit", "4", "-baseline=false", "-mode", "uncontended"}, "-mode wait"},
		{[]string{"-readers", "0.5", "-baseline=false", "-mode", "locks"}, "-mode wait"},
	} {
		if _, err := parseFlags(c.args, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	cfg, err := parseFlags([]string{"-limit", "4", "-baseline=false"}, io.Discard)
	if err != nil || cfg.limit != 4 {
		t.Errorf("-limit 4 -baseline=false: %+v, %v", cfg, err)
	}
	cfg, err = parseFlags([]string{"-readers", "1", "-baseline=false", "-procs"}, io.Discard)
	if err != nil || cfg.readers != 1 {
		t.Errorf("-readers 1 -baseline=false -procs: %+v, %v", cfg, err)
	}
}

// The figures from a known history of one name over two sidecars (clients
// 0 and 2 on one, 1 on the other; times in µs).
func TestStats(t *testing.T) {
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	acqs := []acquisition{
		{client: 0, asked: us(0), got: us(0), freed: us(1000)},
		{client: 1, asked: us(10), got: us(1100), freed: us(2100)},         // across: gap 100
		{client: 2, asked: us(20), got: us(2150), freed: us(3150)},         // across: gap 50
		{client: 0, asked: us(2000), got: us(3170), freed: us(4170)},       // within: gap 20
		{client: 0, asked: us(5000), got: us(5000), freed: us(6000)},       // self, nobody waited
		{client: 0, asked: us(6100), got: us(6100), freed: us(7000)},       // self, nobody waited
		{client: 1, asked: us(6500), got: us(8000), freed: us(9000)},       // across, after 1000 free
		{client: 1, asked: us(9200), got: us(9200), freed: us(10000)},      // self, nobody waited
		{client: 2, asked: us(9500), got: us(2009500), freed: us(2010000)}, // across, after 2 s free
	}
	r := &result{perClient: make([]int, 3)}
	r.stats(config{names: 1, clients: 3}, 2, acqs)
	if want := []time.Duration{us(20), us(50), us(100), us(1000), us(1999500)}; !slices.Equal(r.gap, want) {
		t.Errorf("gaps %v, want %v", r.gap, want)
	}
	if want := []time.Duration{us(50), us(100), us(1000), us(1999500)}; !slices.Equal(r.gapAcross, want) {
		t.Errorf("gaps across sidecars %v, want %v", r.gapAcross, want)
	}
	if want := []time.Duration{us(20)}; !slices.Equal(r.gapWithin, want) {
		t.Errorf("gaps within a sidecar %v, want %v", r.gapWithin, want)
	}
	// Free while others waited: the first three hand-offs, the 1000 µs the
	// lock sat free while client 1 had asked (client 0's last release), and
	// the 2 s while client 2 had (client 1's last).
	if want := []time.Duration{us(20), us(50), us(100), us(1000), us(1999500)}; !slices.Equal(r.idle, want) {
		t.Errorf("free while others waited %v, want %v", r.idle, want)
	}
	if r.selfShare != 3.0/8 {
		t.Errorf("self re-acquire share %v, want 3/8", r.selfShare)
	}
}

// blockedLock blocks in acquire until closed, as a client waiting for a
// lock nobody will release does.
type blockedLock struct{ closed chan struct{} }

func (b *blockedLock) acquire(string, holdKind) error {
	<-b.closed
	return errors.New("closed")
}
func (*blockedLock) release(string) error { return nil }
func (b *blockedLock) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

// failingLock fails at once.
type failingLock struct{ noLock }

func (*failingLock) acquire(string, holdKind) error { return errors.New("upstream down") }

// One client's failure ends the run, although the others are blocked for
// good: it does not wait for the run's duration, or for ever.
func TestOneFailureEndsTheRun(t *testing.T) {
	srv := redistest.Start(t)
	cfg := config{clients: 4, names: 1, duration: time.Hour, warmup: time.Millisecond}
	w := workload{name: "failing", addr: srv.Addr(), countCommands: func(map[string]int64, int64) int64 { return 0 },
		newLocker: func(i int) (locker, error) {
			if i == 2 {
				return &failingLock{}, nil
			}
			return &blockedLock{closed: make(chan struct{})}, nil
		}}
	done := make(chan error, 1)
	go func() {
		_, err := measure(context.Background(), cfg, srv.Addr(), w)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "upstream down") {
			t.Errorf("measure = %v, want the failing client's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run went on after a client failed")
	}
}

// -upstream's servers are its host and each addr=, whose commands count.
func TestUpstreamAddrs(t *testing.T) {
	got, err := upstreamAddrs("redis://n1:7000?addr=n2:7001&addr=n3:7002")
	if err != nil || strings.Join(got, " ") != "n1:7000 n2:7001 n3:7002" {
		t.Errorf("upstreamAddrs = %v, %v", got, err)
	}
	if got, err := upstreamAddrs(""); got != nil || err != nil {
		t.Errorf("no -upstream: %v, %v; want none", got, err)
	}
	if _, err := upstreamAddrs("n1:7000"); err == nil {
		t.Error("a URL without a host accepted")
	}
}

// The uncontended mode reports, for lockproxy and direct EVALSHA in one
// run, pairs a second and what each pair cost Redis and the sidecar: two
// script calls a pair each way, and CPU on both sides through lockproxy.
func TestUncontended(t *testing.T) {
	bin := buildLockproxy(t)
	srv := redistest.Start(t)
	var out strings.Builder
	err := run(context.Background(), []string{"-mode", "uncontended", "-lockproxy", bin, "-redis", srv.URL(),
		"-clients", "4", "-duration", "700ms", "-warmup", "100ms", "-floor"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		for _, label := range []string{"pairs/s", "Redis CPU per pair, µs", "script calls per pair", "sidecar CPU per pair, µs"} {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
				rows[label] = strings.Fields(rest)
			}
		}
	}
	// About 2 direct (the figures take the calls in flight at either end of
	// the run as they come); through lockproxy, whose calls share batches
	// when they meet, more than none and at most about 2.
	// The columns: lockproxy, floor, direct, and the two ratios.
	got := rows["script calls per pair"]
	if len(got) != 5 || !near(got[2], 2) || got[1] != "0.00" {
		t.Errorf("script calls per pair %v, want about 2 direct and none from the floor:\n%s", got, out.String())
	} else if f, err := strconv.ParseFloat(got[0], 64); err != nil || f <= 0 || f > 2.1 {
		t.Errorf("script calls per pair through lockproxy %v, want above 0 and at most about 2:\n%s", got[0], out.String())
	}
	for _, label := range []string{"pairs/s", "Redis CPU per pair, µs", "sidecar CPU per pair, µs"} {
		if len(rows[label]) == 0 || rows[label][0] == "0" || rows[label][0] == "0.0" || rows[label][0] == "–" {
			t.Errorf("%s: %v, want a figure for lockproxy:\n%s", label, rows[label], out.String())
		}
	}
	if len(rows["pairs/s"]) < 2 || rows["pairs/s"][1] == "0" {
		t.Errorf("pairs/s %v, want a figure for the floor:\n%s", rows["pairs/s"], out.String())
	}
	if !strings.Contains(out.String(), "sidecar CPU per pair above the floor's") {
		t.Errorf("output lacks the sidecar's CPU above the floor:\n%s", out.String())
	}
}

// The floor server is a lock: a name goes to one connection at a time, a
// try-once on a held name gets null, and a release hands the name to its
// waiters in the order they came.
func TestFloorServerQueues(t *testing.T) {
	f := newFloorLocks()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := resp.Serve(ln, resp.HandlerFunc(f.serve), resp.Options{})
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	conns := make([]*client, 3)
	for i := range conns {
		if conns[i], err = dial(ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conns[i].Close() })
	}
	if v, err := conns[0].do("LOCK.ACQUIRE", "n", "1000"); err != nil || v.Null {
		t.Fatalf("first acquire = %v, %v", v, err)
	}
	if v, err := conns[1].do("LOCK.ACQUIRE", "n", "1000"); err != nil || !v.Null {
		t.Fatalf("try-once on a held name = %v, %v; want null", v, err)
	}
	got := make(chan int, 2)
	for i := 1; i <= 2; i++ {
		go func() {
			if v, err := conns[i].do("LOCK.ACQUIRE", "n", "1000", "WAIT", "10000"); err == nil && !v.Null {
				got <- i
			}
		}()
		for f.waiting("n") < i {
			runtime.Gosched() // until the server has queued it
		}
	}
	for i := range 2 {
		if v, err := conns[i].do("LOCK.RELEASE", "n"); err != nil || v.Num != 1 {
			t.Fatalf("release by %d = %v, %v", i, v, err)
		}
		if next := <-got; next != i+1 {
			t.Fatalf("after %d released, %d got the name; want %d", i, next, i+1)
		}
	}
}

// near reports whether the figure s is within 5% of want.
func near(s string, want float64) bool {
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f >= want*0.95 && f <= want*1.05
}

// The many-locks mode holds its locks through renewals, loses none, and
// reports each figure.
func TestManyLocks(t *testing.T) {
	bin := buildLockproxy(t)
	srv := redistest.Start(t)
	var out strings.Builder
	err := run(context.Background(), []string{"-mode", "locks", "-lockproxy", bin, "-redis", srv.URL(),
		"-clients", "10", "-locks", "500", "-ttl", "1s", "-duration", "2s"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	rows := map[string]float64{}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			rows[strings.Join(f[:len(f)-1], " ")] = v
		}
	}
	// Renewed every 500ms or a little sooner: about 4 times each in 2s.
	if got := rows["renewals"]; got < 500*3 {
		t.Errorf("%v renewals of 500 locks in 2s at a 1s ttl, want at least 1500:\n%s", got, out.String())
	}
	// Above the part of the ttl a renewal leaves, less its lateness.
	if got := rows["lowest PTTL seen, share of the ttl"]; got <= 0.2 || got > 1 {
		t.Errorf("lowest PTTL share %v, want between 0.2 and 1:\n%s", got, out.String())
	}
	if got := rows["locks lost"]; got != 0 {
		t.Errorf("%v locks lost:\n%s", got, out.String())
	}
	for _, label := range []string{"script calls per renewal", "script calls per release on close"} {
		if got, ok := rows[label]; !ok || got <= 0 {
			t.Errorf("%s: %v, want a figure:\n%s", label, got, out.String())
		}
	}
	// Memory moves with the garbage collector: only that it is reported.
	for _, label := range []string{"RSS per lock, KiB", "RSS per connection, connected, KiB"} {
		if _, ok := rows[label]; !ok {
			t.Errorf("no %s:\n%s", label, out.String())
		}
	}
}

// A short run of each new kind, through one sidecar and two, and with
// -procs: it passes its checks and prints the kind's rows.
func TestRunKinds(t *testing.T) {
	bin := buildLockproxy(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"semaphore, one sidecar", []string{"-limit", "4"}},
		{"semaphore, two sidecars", []string{"-limit", "4", "-sidecars", "2"}},
		{"semaphore, processes", []string{"-limit", "4", "-procs"}},
		{"readers, one sidecar", []string{"-readers", "0.8"}},
		{"readers, two sidecars", []string{"-readers", "0.8", "-sidecars", "2"}},
		{"readers, processes", []string{"-readers", "0.8", "-procs"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.Start(t)
			var out strings.Builder
			args := append([]string{"-lockproxy", bin, "-redis", srv.URL(), "-baseline=false",
				"-clients", "8", "-names", "1", "-duration", "800ms", "-warmup", "100ms", "-hold", "500us", "-think", "200us"}, c.args...)
			if err := run(context.Background(), args, &out, io.Discard); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			o := out.String()
			for _, label := range []string{"throughput /s", "wait p50", "wait p99", "hand-off gap p50", "hand-off gap p99",
				"fairness (max/min per client)", "upstream commands / acquisition"} {
				if v := figure(o, label); v == "" || v == "0 µs" || v == "0.00" {
					t.Errorf("%s: %q, want a figure:\n%s", label, v, o)
				}
			}
			if slices.Contains(c.args, "-limit") {
				checkSemaphoreRows(t, o)
			} else {
				checkReadWriteRows(t, o)
			}
		})
	}
}

// checkSemaphoreRows checks a -limit 4 run's own rows: no hold over the
// limit, and permits held together, as both the records and the Redis
// gauge (which each client process reports, with -procs) show.
func checkSemaphoreRows(t *testing.T, out string) {
	t.Helper()
	if v := figure(out, "holds over the limit (records, Redis gauge)"); v != "0" {
		t.Errorf("holds over the limit: %q, want 0:\n%s", v, out)
	}
	var records, gauge int
	if _, err := fmt.Sscanf(figure(out, "most holds of a name at once (records / Redis gauge)"), "%d / %d", &records, &gauge); err != nil ||
		records < 2 || records > 4 || gauge < 2 || gauge > 4 {
		t.Errorf("most holds at once %d / %d (%v), want 2 to 4 each: 8 clients on 4 permits:\n%s", records, gauge, err, out)
	}
	if !strings.Contains(out, "semaphores of LIMIT 4") {
		t.Errorf("heading lacks the semaphore:\n%s", out)
	}
}

// checkReadWriteRows checks a -readers 0.8 run's own rows: no overlap with
// a writer, writers and readers both there (each client process reports
// which it was, with -procs), each with its waits.
func checkReadWriteRows(t *testing.T, out string) {
	t.Helper()
	if v := figure(out, "lost updates, overlaps with a writer"); v != "0" {
		t.Errorf("lost updates, overlaps with a writer: %q, want 0:\n%s", v, out)
	}
	var share int
	if _, err := fmt.Sscanf(figure(out, "writers' share of acquisitions"), "%d%%", &share); err != nil || share == 0 || share >= 50 {
		t.Errorf("writers' share %d%% (%v), want about 20%%:\n%s", share, err, out)
	}
	for _, label := range []string{"writers' wait p50", "writers' wait p99", "readers' wait p50", "readers' wait p99",
		"to a writer: gap p50 / p99", "to a reader: gap p50 / p99", "most readers of a name at once"} {
		if figure(out, label) == "" {
			t.Errorf("no %s:\n%s", label, out)
		}
	}
}

// figure is what the line labelled exactly label shows (the table pads a
// label with at least two spaces), or "".
func figure(out, label string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok && strings.HasPrefix(rest, "  ") {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// hold is a history entry in µs, for the checkers' and gaps' tests.
func hold(client int, asked, got, freed int, shared bool) acquisition {
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	return acquisition{client: client, asked: us(asked), got: us(got), freed: us(freed), shared: shared}
}

// The counted-overlap checker fails a grant while n holds are in place,
// and only then: holds that touch (one ends as the next begins) do not
// overlap.
func TestCountedOverlaps(t *testing.T) {
	h := []acquisition{
		hold(0, 0, 0, 100, false),
		hold(1, 0, 50, 150, false),
		hold(2, 0, 100, 200, false), // as client 0 lets go: 2 at once
		hold(3, 0, 120, 300, false), // beside clients 1 and 2: 3 at once
	}
	if b := countedOverlaps(h[:3], 2); b.count != 0 || b.most != 2 {
		t.Errorf("2 holds at once on 2 permits: %+v, want no breach and most 2", b)
	}
	b := countedOverlaps(h, 2)
	if b.count != 1 || b.first.client != 3 || b.held != 2 || b.most != 3 {
		t.Errorf("3 holds at once on 2 permits: %+v, want client 3's grant, beside 2 holds, caught", b)
	}
	if b := countedOverlaps(h, 3); b.count != 0 || b.most != 3 {
		t.Errorf("3 holds at once on 3 permits: %+v, want no breach", b)
	}
	if b := countedOverlaps(h[:2], 1); b.count != 1 || b.first.client != 1 {
		t.Errorf("2 holds at once of a plain lock: %+v, want client 1's grant caught", b)
	}
}

// The read-write checker lets readers overlap each other and a writer
// follow them as they let go, and catches any writer beside another hold
// and any reader beside a writer.
func TestReadWriteOverlaps(t *testing.T) {
	readers := []acquisition{hold(0, 0, 0, 100, true), hold(1, 0, 50, 150, true), hold(2, 0, 60, 150, true)}
	for _, c := range []struct {
		name  string
		h     []acquisition
		count int
	}{
		{"readers together", readers, 0},
		{"a writer after the readers", append(slices.Clone(readers), hold(3, 0, 150, 250, false)), 0},
		{"a writer beside readers", append(slices.Clone(readers), hold(3, 0, 90, 250, false)), 1},
		{"a reader inside a writer's hold", []acquisition{hold(0, 0, 0, 100, false), hold(1, 0, 50, 60, true)}, 1},
		{"two writers", []acquisition{hold(0, 0, 0, 100, false), hold(1, 0, 99, 200, false)}, 1},
	} {
		b := readWriteOverlaps(c.h)
		if b.count != c.count {
			t.Errorf("%s: %d breaches (%+v), want %d", c.name, b.count, b, c.count)
		}
	}
	if b := readWriteOverlaps(readers); b.most != 3 {
		t.Errorf("most readers at once %d, want 3", b.most)
	}
}

// A semaphore's hand-offs from a known history of one name with 2 permits
// (times in µs): each grant that waited is timed from the release whose
// permit it took, the oldest one free, not the latest before it.
func TestPermitGaps(t *testing.T) {
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	as := []acquisition{
		hold(0, 0, 0, 1000, false),  // a permit nobody had held
		hold(1, 0, 10, 1010, false), // the other
		// Client 0's permit: 100, not 90 from client 1's release, the
		// latest before the grant.
		hold(2, 20, 1100, 2100, false),
		hold(3, 30, 1150, 2150, false),   // client 1's: 140
		hold(0, 1500, 2200, 3200, false), // client 2's: 100
		hold(1, 3000, 3000, 4000, false), // client 3's, free since 2150: no wait
	}
	r := &result{}
	r.permitGaps(config{limit: 2}, 1, as)
	sortDurations(r.gap)
	if want := []time.Duration{us(100), us(100), us(140)}; !slices.Equal(r.gap, want) {
		t.Errorf("gaps %v, want %v", r.gap, want)
	}
}

// A read-write lock's hand-offs from a known history of one name (times
// in µs): a writer from the last release before it, readers let in
// together from the writer's, and a reader that joined readers not at all.
func TestReadWriteGaps(t *testing.T) {
	us := func(n int) time.Duration { return time.Duration(n) * time.Microsecond }
	as := []acquisition{
		hold(0, 0, 0, 1000, false),
		hold(2, 200, 1030, 1060, true), // after writer 0: 30
		// Let in with reader 2, from writer 0's release: 80, although
		// reader 2 let go since.
		hold(1, 100, 1080, 2000, true),
		hold(3, 300, 2120, 3120, false),  // after the last reader: 120
		hold(1, 2500, 3150, 4000, true),  // after writer 3: 30
		hold(2, 3500, 3500, 4100, true),  // joined reader 1: no wait
		hold(0, 4050, 4200, 5000, false), // after the last reader: 100
	}
	r := &result{}
	r.readWriteGaps(config{readers: 0.5}, 2, as)
	for _, d := range [][]time.Duration{r.gap, r.gapToReaders, r.gapToWriters, r.gapAcross, r.gapWithin} {
		sortDurations(d)
	}
	for _, c := range []struct {
		name      string
		got, want []time.Duration
	}{
		{"gaps", r.gap, []time.Duration{us(30), us(30), us(80), us(100), us(120)}},
		{"to readers", r.gapToReaders, []time.Duration{us(30), us(30), us(80)}},
		{"to writers", r.gapToWriters, []time.Duration{us(100), us(120)}},
		// Clients 0 and 2 on one sidecar, 1 and 3 on the other.
		{"across sidecars", r.gapAcross, []time.Duration{us(80)}},
		{"within a sidecar", r.gapWithin, []time.Duration{us(30), us(30), us(100), us(120)}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s %v, want %v", c.name, c.got, c.want)
		}
	}
}
