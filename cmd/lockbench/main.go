// Command lockbench is lockproxy's load tool. It runs N clients on M lock
// names, each taking a lock, doing a read-modify-write of a counter in Redis
// while it holds it, holding it for H, releasing it and thinking for T. It
// runs that workload through lockproxy (one or more sidecars, which it can
// start itself) and, in the same run, as a polling baseline straight to
// Redis, and prints throughput, waits, hand-off gaps, self re-acquires and
// fairness for both, with their ratios. It fails if any counter shows a lost
// update or any two holds of one name overlap. With -limit n the clients
// take permits of a counting semaphore instead, and the run fails if more
// than n holds of one name overlap; with -readers f they take a read-write
// lock, a fraction f of the acquisitions as readers, and the run fails if a
// writer's hold overlaps any other.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// config is lockbench's flags.
type config struct {
	clients    int
	rounds     int
	names      int
	locks      int
	hold       time.Duration
	think      time.Duration
	duration   time.Duration
	warmup     time.Duration
	ttl        time.Duration
	sidecars   int
	store      string
	redisURL   string
	upstream   string
	mode       string
	lockproxy  string
	connect    string
	sidecarCPU string
	redisCPU   string
	baseline   bool
	retry      time.Duration
	procs      bool
	floor      bool
	limit      int     // > 0: every acquisition is a permit of a semaphore of limit
	readers    float64 // > 0: the share of acquisitions that are readers of a read-write lock
}

func main() {
	// The tool measures microseconds: collect its garbage rarely, so its own
	// pauses do not show up as the system's.
	debug.SetGCPercent(800)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(os.Args) == 3 && os.Args[1] == clientFlag {
		if err := runClientProcess(ctx, os.Args[2], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "lockbench client:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && os.Args[1] == floorFlag {
		if err := serveFloor(ctx, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "lockbench floor server:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("lockbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.mode, "mode", "wait", "wait: clients contend for -names locks, holding and waiting; uncontended: each client acquires and releases names of its own, and Redis's and the sidecars' CPU per pair is reported against direct EVALSHA; locks: -clients connections hold -locks owned locks for -duration, and the lowest PTTL, the script calls per renewal and the sidecars' memory are reported")
	fs.IntVar(&c.locks, "locks", 10000, "owned locks held in -mode locks, spread over the -clients connections")
	fs.IntVar(&c.rounds, "rounds", 1, "in -mode uncontended: rounds of each workload, run in turn, each for -duration; the figures are their sums")
	fs.IntVar(&c.clients, "clients", 32, "clients (N), each on its own connection")
	fs.IntVar(&c.names, "names", 1, "lock names (M); clients are spread over them in turn")
	fs.DurationVar(&c.hold, "hold", time.Millisecond, "hold time (H) after the counter update")
	fs.DurationVar(&c.think, "think", time.Millisecond, "think time (T) after each release")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "how long each workload runs")
	fs.DurationVar(&c.warmup, "warmup", 300*time.Millisecond, "start of each run left out of the figures")
	fs.DurationVar(&c.ttl, "ttl", 30*time.Second, "lock ttl")
	fs.IntVar(&c.sidecars, "sidecars", 1, "lockproxy sidecars to start; clients are spread over them")
	fs.StringVar(&c.store, "store", "redis", "store of the sidecars it starts: redis or embedded (one sidecar only)")
	fs.StringVar(&c.redisURL, "redis", "", "Redis for the store, the counters and the baseline (default: start a redis-server)")
	fs.StringVar(&c.upstream, "upstream", "", "LOCKPROXY_UPSTREAM of the sidecars it starts, e.g. a Redis Cluster's redis://node1:7000?addr=node2:7001 (default: the -redis)")
	fs.StringVar(&c.lockproxy, "lockproxy", "lockproxy", "lockproxy binary used to start sidecars")
	fs.StringVar(&c.connect, "connect", "", "comma-separated addresses of running sidecars, instead of starting them")
	fs.StringVar(&c.sidecarCPU, "sidecar-cpu", "", "taskset CPU list for the sidecars it starts, e.g. 0")
	fs.StringVar(&c.redisCPU, "redis-cpu", "", "taskset CPU list for the redis-server it starts, e.g. 1")
	fs.BoolVar(&c.baseline, "baseline", true, "also run the polling baseline straight to Redis")
	fs.DurationVar(&c.retry, "baseline-retry", 10*time.Millisecond, "the baseline's retry interval (redislock's LinearBackoff)")
	fs.BoolVar(&c.procs, "procs", false, "run each client in its own process, as separate application instances are, rather than as goroutines of this one")
	fs.BoolVar(&c.floor, "floor", false, "also run the workload against a sidecar that does the least a lock server can (lockproxy's RESP server over an in-memory FIFO per name, no store), on -sidecar-cpu: what a hop costs on this machine")
	fs.IntVar(&c.limit, "limit", 0, "in -mode wait: every client takes a permit of a counting semaphore (LOCK.ACQUIRE … LIMIT `n`): up to n holders of a name at once; the run fails if more than n holds overlap. 0: a plain lock. Needs -baseline=false, and not -floor: neither has a semaphore")
	fs.Float64Var(&c.readers, "readers", 0, "in -mode wait: each acquisition is a reader of a read-write lock (LOCK.ACQUIRE … SHARED) with probability `f` (0..1), else a writer (a plain acquire); writers' and readers' waits are reported apart, and the run fails if a writer's hold overlaps any other. 0: a plain lock. Needs -baseline=false, and not -floor: neither has a read-write lock")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.mode != "wait" && c.mode != "uncontended" && c.mode != "locks":
		return c, errors.New("-mode must be wait, uncontended or locks")
	case c.clients < 1 || c.names < 1 || c.sidecars < 1 || c.rounds < 1:
		return c, errors.New("-clients, -names, -sidecars and -rounds must be at least 1")
	case c.store != "redis" && c.store != "embedded":
		return c, errors.New("-store must be redis or embedded")
	case c.store == "embedded" && c.upstream != "":
		return c, errors.New("-upstream is for -store redis")
	case c.store == "embedded" && c.sidecars > 1:
		return c, errors.New("-store embedded keeps locks inside one sidecar: use -sidecars 1")
	case c.floor && c.mode == "locks":
		return c, errors.New("-floor is for -mode wait and uncontended")
	case c.duration <= c.warmup:
		return c, errors.New("-duration must exceed -warmup")
	}
	return c, checkKind(c)
}

// checkKind refuses the semaphore and read-write workloads where they
// cannot run: the polling baseline (SET NX) and the floor server have
// neither, and only the waiting mode takes a lock as a kind.
func checkKind(c config) error {
	switch {
	case c.limit < 0:
		return errors.New("-limit must be 0 (a plain lock) or more")
	case !(c.readers >= 0 && c.readers <= 1): // NaN too
		return errors.New("-readers is a share of the acquisitions: 0..1")
	case c.limit > 0 && c.readers > 0:
		return errors.New("-limit and -readers together: a name is either a semaphore or a read-write lock")
	}
	what := kindFlag(c)
	switch {
	case what == "":
		return nil
	case c.mode != "wait":
		return fmt.Errorf("%s is for -mode wait", what)
	case c.baseline:
		return fmt.Errorf("%s: the polling baseline has no semaphore or read-write lock; add -baseline=false", what)
	case c.floor:
		return fmt.Errorf("%s: the floor server is a plain FIFO lock; leave out -floor", what)
	}
	return nil
}

// kindFlag is the flag that makes the run's locks other than plain ones,
// as given, or "" for plain locks.
func kindFlag(c config) string {
	switch {
	case c.limit > 0:
		return fmt.Sprintf("-limit %d", c.limit)
	case c.readers > 0:
		return fmt.Sprintf("-readers %g", c.readers)
	}
	return ""
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var procs processes
	defer procs.stop()

	redisAddr, err := procs.redis(cfg)
	if err != nil {
		return err
	}
	sidecars := splitList(cfg.connect)
	if len(sidecars) == 0 {
		if sidecars, err = procs.sidecars(cfg, redisAddr); err != nil {
			return err
		}
	}
	if cfg.mode == "wait" {
		fmt.Fprintf(stdout, "lockbench: %d clients on %d name(s)%s, hold %v, think %v, %v per workload; Redis %s; sidecars %s\n",
			cfg.clients, cfg.names, kindDescription(cfg), cfg.hold, cfg.think, cfg.duration, redisAddr, strings.Join(sidecars, ","))
	} else {
		fmt.Fprintf(stdout, "lockbench: Redis %s; sidecars %s\n", redisAddr, strings.Join(sidecars, ","))
	}
	if cfg.upstream != "" {
		fmt.Fprintf(stdout, "lockbench: the sidecars' upstream is %s\n", cfg.upstream)
	}

	w := lockproxyWorkload(sidecars)
	if w.statsAddrs, err = upstreamAddrs(cfg.upstream); err != nil {
		return err
	}
	var floor *floorServer
	if cfg.floor {
		if floor, err = procs.floor(cfg); err != nil {
			return err
		}
	}
	switch cfg.mode {
	case "uncontended":
		return runUncontended(ctx, cfg, redisAddr, w.statsAddrs, sidecars, procs.sidecarPIDs, floor, stdout)
	case "locks":
		return runLocks(ctx, cfg, redisAddr, sidecars, procs.sidecarPIDs, procs.metricsAddrs, stdout)
	}
	proxy, err := measure(ctx, cfg, redisAddr, w)
	if err != nil {
		return fmt.Errorf("lockproxy workload: %w", err)
	}
	results := []*result{proxy}
	if floor != nil {
		fw := lockproxyWorkload([]string{floor.addr})
		fw.name = "floor"
		fw.countCommands = func(map[string]int64, int64) int64 { return 0 }
		r, err := measure(ctx, cfg, redisAddr, fw)
		if err != nil {
			return fmt.Errorf("floor workload: %w", err)
		}
		results = append(results, r)
	}
	if cfg.baseline {
		base, err := measure(ctx, cfg, redisAddr, pollingWorkload(redisAddr, cfg.retry))
		if err != nil {
			return fmt.Errorf("baseline workload: %w", err)
		}
		results = append(results, base)
	}
	report(stdout, cfg, results)
	for _, r := range results {
		if r.violations > 0 {
			return fmt.Errorf("%s: %d %s violations", r.name, r.violations, ruleName(cfg))
		}
	}
	return nil
}

// upstreamAddrs are the servers an -upstream URL names: its host and each
// addr= (a Redis Cluster's nodes, which should all be listed for the
// commands to be counted in full). None for no URL.
func upstreamAddrs(raw string) ([]string, error) {
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("-upstream: want redis://host:port[?addr=host:port…], got %q", raw)
	}
	return append([]string{u.Host}, u.Query()["addr"]...), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
