package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The uncontended mode (-mode uncontended) measures what one lock costs:
// every client acquires and releases names of its own, 64 in turn, so no
// two ever meet. Through lockproxy, and, as the baseline, straight to Redis
// with the least a lock needs (directAcquire, directRelease), it reports
// pairs a second, Redis's CPU and script calls per pair, and the sidecars'
// CPU per pair; with -floor, also for a sidecar that does nothing (floor.go).

// The baseline's scripts: SET NX PX, and a release by token.
const (
	directAcquire = `return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])`
	directRelease = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`
)

// namesPerClient is how many names each client cycles through.
const namesPerClient = 64

// uncResult is one uncontended workload's figures, over the run after the
// warm-up.
type uncResult struct {
	name         string
	pairs        int64
	seconds      float64
	redisCPU     float64 // seconds of Redis CPU (user + sys)
	scriptCalls  int64   // EVALSHA and EVAL calls in Redis
	sidecarCPU   float64 // seconds of the sidecars' CPU; negative: not known
	toolCPU      float64 // seconds of this process's CPU, its clients'
	sidecarCount int
}

// pairFunc runs one acquire and release of name on its client.
type pairFunc func(name, token string) error

// runUncontended runs both workloads, in cfg.rounds alternating rounds so
// that both meet the same noise on a shared machine, and reports them.
func runUncontended(ctx context.Context, cfg config, redisAddr string, statsAddrs, sidecars []string, sidecarPIDs []int,
	floor *floorServer, stdout io.Writer) error {
	ttl := strconv.FormatInt(cfg.ttl.Milliseconds(), 10)
	proxyClient := func(addrs []string) func(i int) (pairFunc, func(), error) {
		return func(i int) (pairFunc, func(), error) {
			return sidecarPair(addrs[i%len(addrs)], ttl)
		}
	}
	var shas []string
	if cfg.baseline {
		var err error
		if shas, err = loadScripts(redisAddr, directAcquire, directRelease); err != nil {
			return err
		}
	}
	directClient := func(int) (pairFunc, func(), error) {
		c, err := dial(redisAddr)
		if err != nil {
			return nil, nil, err
		}
		return func(name, token string) error {
			key := "bench:{" + name + "}"
			if v, err := c.do("EVALSHA", shas[0], "1", key, token, ttl); err != nil || v.Str != "OK" {
				return fmt.Errorf("acquire %s = %v, %v", key, v, err)
			}
			if v, err := c.do("EVALSHA", shas[1], "1", key, token); err != nil || v.Num != 1 {
				return fmt.Errorf("release %s = %v, %v", key, v, err)
			}
			return nil
		}, func() { c.Close() }, nil
	}
	proxy := &uncResult{name: "lockproxy", sidecarCount: len(sidecars)}
	direct := &uncResult{name: "direct EVALSHA", sidecarCPU: -1}
	null := &uncResult{name: "floor", sidecarCount: 1}
	var rounds [][2]*uncResult
	for range cfg.rounds {
		p, err := measureUncontended(ctx, cfg, "lockproxy", redisAddr, statsAddrs, sidecarPIDs, proxyClient(sidecars))
		if err != nil {
			return fmt.Errorf("lockproxy workload: %w", err)
		}
		proxy.add(p)
		if floor != nil {
			f, err := measureUncontended(ctx, cfg, "floor", redisAddr, nil, []int{floor.pid}, proxyClient([]string{floor.addr}))
			if err != nil {
				return fmt.Errorf("floor workload: %w", err)
			}
			null.add(f)
		}
		if !cfg.baseline {
			continue
		}
		d, err := measureUncontended(ctx, cfg, "direct EVALSHA", redisAddr, nil, nil, directClient)
		if err != nil {
			return fmt.Errorf("baseline workload: %w", err)
		}
		direct.add(d)
		rounds = append(rounds, [2]*uncResult{p, d})
	}
	results := []*uncResult{proxy}
	if floor != nil {
		results = append(results, null)
	}
	if cfg.baseline {
		results = append(results, direct)
	}
	reportUncontended(stdout, cfg, results, rounds)
	return nil
}

// sidecarPair is one client of a sidecar at addr.
func sidecarPair(addr, ttl string) (pairFunc, func(), error) {
	c, err := dial(addr)
	if err != nil {
		return nil, nil, err
	}
	return func(name, _ string) error {
		if v, err := c.do("LOCK.ACQUIRE", name, ttl); err != nil || v.Null {
			return fmt.Errorf("LOCK.ACQUIRE %s = %v, %v", name, v, err)
		}
		if v, err := c.do("LOCK.RELEASE", name); err != nil || v.Num != 1 {
			return fmt.Errorf("LOCK.RELEASE %s = %v, %v", name, v, err)
		}
		return nil
	}, func() { c.Close() }, nil
}

// add sums r2's figures into r.
func (r *uncResult) add(r2 *uncResult) {
	r.pairs += r2.pairs
	r.seconds += r2.seconds
	r.redisCPU += r2.redisCPU
	r.scriptCalls += r2.scriptCalls
	r.toolCPU += r2.toolCPU
	if r2.sidecarCPU < 0 {
		r.sidecarCPU = -1 // not known
	} else if r.sidecarCPU >= 0 {
		r.sidecarCPU += r2.sidecarCPU
	}
}

// loadScripts loads each script into Redis and returns their SHA-1s.
func loadScripts(addr string, srcs ...string) ([]string, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var shas []string
	for _, src := range srcs {
		v, err := c.do("SCRIPT", "LOAD", src)
		if err != nil {
			return nil, err
		}
		shas = append(shas, v.Str)
	}
	return shas, nil
}

// measureUncontended runs cfg.clients clients of one workload for
// cfg.duration and measures the part after cfg.warmup.
func measureUncontended(ctx context.Context, cfg config, name, redisAddr string, statsAddrs []string, pids []int,
	newClient func(i int) (pairFunc, func(), error)) (*uncResult, error) {
	pairs := make([]pairFunc, cfg.clients)
	for i := range pairs {
		p, closeFn, err := newClient(i)
		if err != nil {
			return nil, err
		}
		defer closeFn()
		pairs[i] = p
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var done atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i, pair := range pairs {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				name := "u" + strconv.Itoa(i) + "-" + strconv.Itoa(n%namesPerClient)
				if err := pair(name, strconv.Itoa(i)+"-"+strconv.Itoa(n)); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						cancel()
					}
					return
				}
				done.Add(1)
			}
		})
	}
	select {
	case <-ctx.Done():
	case <-time.After(cfg.warmup):
	}
	before, err := snapshot(redisAddr, statsAddrs, pids)
	if err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	startPairs, start := done.Load(), time.Now()
	<-ctx.Done()
	endPairs, elapsed := done.Load(), time.Since(start)
	after, err := snapshot(redisAddr, statsAddrs, pids)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err != nil {
		return nil, err
	}
	r := &uncResult{name: name, pairs: endPairs - startPairs, seconds: elapsed.Seconds(),
		redisCPU: after.redisCPU - before.redisCPU, scriptCalls: after.scripts - before.scripts, sidecarCPU: -1,
		toolCPU: after.toolCPU - before.toolCPU}
	if len(pids) > 0 {
		r.sidecarCPU = after.sidecarCPU - before.sidecarCPU
	}
	return r, nil
}

// usage is what the servers and sidecars had spent at one moment.
type usage struct {
	redisCPU   float64
	scripts    int64
	sidecarCPU float64
	toolCPU    float64
}

func snapshot(redisAddr string, statsAddrs []string, pids []int) (usage, error) {
	var u usage
	for _, addr := range append([]string{redisAddr}, statsAddrs...) {
		c, err := dial(addr)
		if err != nil {
			return u, err
		}
		cpu, err := c.do("INFO", "cpu")
		if err == nil {
			for _, line := range strings.Split(cpu.Str, "\r\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
					f, _ := strconv.ParseFloat(v, 64)
					u.redisCPU += f
				}
			}
		}
		stats, serr := commandstats(c)
		c.Close()
		if err = errors.Join(err, serr); err != nil {
			return u, err
		}
		u.scripts += stats["evalsha"] + stats["eval"]
	}
	for _, pid := range pids {
		s, err := processCPU(pid)
		if err != nil {
			return u, err
		}
		u.sidecarCPU += s
	}
	s, err := processCPU(os.Getpid())
	u.toolCPU = s
	return u, err
}

// processCPU is the user and system CPU time pid has used, in seconds,
// from /proc/<pid>/stat (in clock ticks, 100 a second on Linux).
func processCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing one.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100, nil
}

func reportUncontended(w io.Writer, cfg config, rs []*uncResult, rounds [][2]*uncResult) {
	fmt.Fprintf(w, "lockbench: uncontended, %d connections, each cycling through %d names of its own, %v after a %v warm-up",
		cfg.clients, namesPerClient, cfg.duration-cfg.warmup, cfg.warmup)
	if cfg.rounds > 1 {
		fmt.Fprintf(w, ", %d rounds of each in turn", cfg.rounds)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t", r.name)
	}
	// With the baseline, the last column, each other workload's ratio to it.
	base := -1
	if cfg.baseline && len(rs) > 1 {
		base = len(rs) - 1
		for _, r := range rs[:base] {
			fmt.Fprintf(tw, "%s ÷ direct\t", r.name)
		}
	}
	fmt.Fprintln(tw)
	row := func(label string, f func(r *uncResult) (float64, bool), format string) {
		fmt.Fprintf(tw, "%s\t", label)
		var vals []float64
		for _, r := range rs {
			v, ok := f(r)
			if ok {
				fmt.Fprintf(tw, format+"\t", v)
			} else {
				fmt.Fprint(tw, "–\t")
			}
			vals = append(vals, v)
		}
		for _, v := range vals[:max(base, 0)] {
			if vals[base] > 0 {
				fmt.Fprintf(tw, "%.2f\t", v/vals[base])
			} else {
				fmt.Fprint(tw, "–\t")
			}
		}
		fmt.Fprintln(tw)
	}
	perPair := func(x float64, r *uncResult) float64 { return x / float64(max(r.pairs, 1)) }
	row("pairs/s", func(r *uncResult) (float64, bool) { return float64(r.pairs) / r.seconds, true }, "%.0f")
	row("Redis CPU per pair, µs", func(r *uncResult) (float64, bool) { return perPair(r.redisCPU*1e6, r), true }, "%.1f")
	row("script calls per pair", func(r *uncResult) (float64, bool) { return perPair(float64(r.scriptCalls), r), true }, "%.2f")
	row("sidecar CPU per pair, µs", func(r *uncResult) (float64, bool) {
		return perPair(r.sidecarCPU*1e6, r), r.sidecarCPU >= 0
	}, "%.1f")
	row("load tool CPU per pair, µs", func(r *uncResult) (float64, bool) { return perPair(r.toolCPU*1e6, r), true }, "%.1f")
	tw.Flush()
	if len(rs) == 3 && rs[1].name == "floor" && rs[0].sidecarCPU >= 0 {
		// What a pair through lockproxy would cost the machine if its
		// sidecar cost no more than the floor: the most its throughput could
		// be, against direct's, wherever the CPUs are what bounds both.
		proxy, floor, direct := rs[0], rs[1], rs[2]
		above := perPair(proxy.sidecarCPU, proxy) - perPair(floor.sidecarCPU, floor)
		total := func(r *uncResult) float64 { return perPair(r.redisCPU+max(r.sidecarCPU, 0)+r.toolCPU, r) }
		fmt.Fprintf(w, "lockproxy's sidecar CPU per pair above the floor's: %.1f µs; with a sidecar at the floor, all CPU per pair would be %.2f× direct's\n",
			above*1e6, (total(proxy)-above)/total(direct))
	}
	if len(rounds) > 1 {
		var ratios []string
		for _, rd := range rounds {
			ratios = append(ratios, fmt.Sprintf("%.2f", perPair(rd[0].redisCPU, rd[0])/perPair(rd[1].redisCPU, rd[1])))
		}
		fmt.Fprintf(w, "Redis CPU per pair, lockproxy ÷ direct, round by round: %s\n", strings.Join(ratios, " · "))
	}
}
