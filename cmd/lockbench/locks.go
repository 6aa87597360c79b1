package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/lockproxy/lockproxy/internal/respclient"
)

// The many-locks mode (-mode locks) measures what holding locks costs:
// -clients connections take -locks owned locks between them and hold them
// for -duration while their sidecars renew them. It samples the locks'
// PTTLs in Redis all along and reports the lowest as a share of the ttl,
// the upstream script calls per renewal and per release when the
// connections close, the locks lost, and the sidecars' RSS per connection
// and per lock.

// pipelineDepth is how many commands one connection sends at once, while
// taking its locks and while sampling PTTLs.
const pipelineDepth = 100

// locksResult is what the many-locks mode measured.
type locksResult struct {
	locks, conns           int
	held                   time.Duration
	lowest                 float64 // lowest PTTL seen, as a share of the ttl
	samples                int64
	missing                int64 // samples that found no key: a lock gone
	renewals               float64
	holdScripts            int64
	releaseScripts         int64
	lost                   float64
	rssIdle, rssConns, rss int64 // bytes: idle, connected, holding
}

func runLocks(ctx context.Context, cfg config, redisAddr string, sidecars []string, pids []int, metrics []string, stdout io.Writer) error {
	if cfg.locks < cfg.clients {
		return errors.New("-locks must be at least -clients")
	}
	if len(pids) == 0 || len(metrics) == 0 {
		return errors.New("-mode locks starts its own sidecars: leave out -connect")
	}
	r := &locksResult{locks: cfg.locks, conns: cfg.clients}
	var err error
	if r.rssIdle, err = rssOf(pids); err != nil {
		return err
	}
	conns := make([]*respclient.Timed, cfg.clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		if conns[i], err = respclient.DialTimed(sidecars[i%len(sidecars)], 5*time.Second, nil, nil); err != nil {
			return err
		}
	}
	if r.rssConns, err = rssOf(pids); err != nil {
		return err
	}
	names, err := takeLocks(ctx, cfg, conns)
	if err != nil {
		return err
	}

	scriptsBefore, renewedBefore, err := renewalCounts(redisAddr, metrics)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := sampleTTLs(ctx, cfg, redisAddr, names, r); err != nil {
		return err
	}
	r.held = time.Since(start)
	scriptsAfter, renewedAfter, err := renewalCounts(redisAddr, metrics)
	if err != nil {
		return err
	}
	r.renewals, r.holdScripts = renewedAfter-renewedBefore, scriptsAfter-scriptsBefore
	if r.rss, err = rssOf(pids); err != nil {
		return err
	}
	if r.lost, err = scrape(metrics, "lockproxy_locks_lost_total", ""); err != nil {
		return err
	}

	// Closing the connections releases every lock they hold.
	for i, c := range conns {
		c.Close()
		conns[i] = nil
	}
	if err := awaitReleased(ctx, metrics); err != nil {
		return err
	}
	end, err := snapshot(redisAddr, nil, nil)
	if err != nil {
		return err
	}
	r.releaseScripts = end.scripts - scriptsAfter
	reportLocks(stdout, cfg, r)
	if r.lost > 0 || r.missing > 0 {
		return fmt.Errorf("%v locks lost, %d samples found a lock gone", r.lost, r.missing)
	}
	return nil
}

// renewalCounts reads the script calls Redis has run and the renewals the
// sidecars have made.
func renewalCounts(redisAddr string, metrics []string) (scripts int64, renewed float64, err error) {
	u, err := snapshot(redisAddr, nil, nil)
	if err != nil {
		return 0, 0, err
	}
	renewed, err = scrape(metrics, "lockproxy_auto_renew_total", `result="ok"`)
	return u.scripts, renewed, err
}

// takeLocks has each connection take its share of the locks, pipelined,
// and returns every name.
func takeLocks(ctx context.Context, cfg config, conns []*respclient.Timed) ([]string, error) {
	ttl := strconv.FormatInt(cfg.ttl.Milliseconds(), 10)
	names := make([]string, 0, cfg.locks)
	per := make([][]string, len(conns))
	for i := range cfg.locks {
		c := i % len(conns)
		name := "m" + strconv.Itoa(c) + "-" + strconv.Itoa(len(per[c]))
		per[c] = append(per[c], name)
		names = append(names, name)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	sem := make(chan struct{}, 64)
	for i, c := range conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for start := 0; start < len(per[i]) && ctx.Err() == nil; start += pipelineDepth {
				var reqs [][]string
				for _, name := range per[i][start:min(start+pipelineDepth, len(per[i]))] {
					reqs = append(reqs, []string{"LOCK.ACQUIRE", name, ttl})
				}
				vs, _, err := c.Pipeline(10*time.Second, reqs...)
				if err != nil {
					errs[i] = err
					return
				}
				for j, v := range vs {
					if v.Kind != '$' {
						errs[i] = fmt.Errorf("LOCK.ACQUIRE %s = %v", reqs[j][1], v)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return names, errors.Join(append(errs, ctx.Err())...)
}

// sampleRate is how many PTTLs a second the sampler reads: enough to see
// every lock several times a renewal interval at 10,000 locks, and few
// enough at 100,000 that the sampling is not what keeps Redis busy.
const sampleRate = 20000

// sampleTTLs reads the locks' PTTLs in Redis, pipelineDepth at a time and
// round the names in turn, for cfg.duration, keeping the lowest.
func sampleTTLs(ctx context.Context, cfg config, redisAddr string, names []string, r *locksResult) error {
	tick := time.NewTicker(time.Second * pipelineDepth / sampleRate)
	defer tick.Stop()
	c, err := respclient.DialTimed(redisAddr, 5*time.Second, nil, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	r.lowest = 1
	ttl := float64(cfg.ttl.Milliseconds())
	end := time.Now().Add(cfg.duration)
	for next := 0; time.Now().Before(end) && ctx.Err() == nil; {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		reqs := make([][]string, 0, pipelineDepth)
		for range pipelineDepth {
			reqs = append(reqs, []string{"PTTL", "lock:{" + names[next] + "}"})
			next = (next + 1) % len(names)
		}
		vs, _, err := c.Pipeline(5*time.Second, reqs...)
		if err != nil {
			return err
		}
		for _, v := range vs {
			r.samples++
			if v.Num < 0 {
				r.missing++
				continue
			}
			r.lowest = min(r.lowest, float64(v.Num)/ttl)
		}
	}
	return ctx.Err()
}

// awaitReleased waits until the sidecars hold no locks.
func awaitReleased(ctx context.Context, metrics []string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		held, err := scrape(metrics, "lockproxy_locks_held", "")
		if err != nil {
			return err
		}
		if held == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%v locks still held a minute after their connections closed", held)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape sums a metric's samples whose labels contain label over the
// sidecars' /metrics.
func scrape(addrs []string, metric, label string) (float64, error) {
	var sum float64
	for _, addr := range addrs {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return 0, err
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			name, rest, _ := strings.Cut(line, " ")
			base, labels, _ := strings.Cut(name, "{")
			if base != metric || !strings.Contains(labels, label) {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				sum += v
			}
		}
		resp.Body.Close()
		if err := sc.Err(); err != nil {
			return 0, err
		}
	}
	return sum, nil
}

// rssOf is the sidecars' resident memory in bytes, from /proc/<pid>/status.
func rssOf(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("/proc/%d/status: VmRSS %q", pid, v)
				}
				sum += kb << 10
			}
		}
	}
	return sum, nil
}

func reportLocks(w io.Writer, cfg config, r *locksResult) {
	fmt.Fprintf(w, "lockbench: %d owned locks over %d connections, ttl %v, held %v\n",
		r.locks, r.conns, cfg.ttl, r.held.Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label, format string, v any) { fmt.Fprintf(tw, "%s\t"+format+"\t\n", label, v) }
	row("lowest PTTL seen, share of the ttl", "%.2f", r.lowest)
	row("PTTL samples", "%d", r.samples)
	row("renewals", "%.0f", r.renewals)
	row("script calls per renewal", "%.3f", float64(r.holdScripts)/max(r.renewals, 1))
	row("script calls per release on close", "%.3f", float64(r.releaseScripts)/float64(r.locks))
	row("locks lost", "%.0f", r.lost)
	row("RSS per connection, connected, KiB", "%.1f", float64(r.rssConns-r.rssIdle)/float64(r.conns)/1024)
	row("RSS per lock, KiB", "%.2f", float64(r.rss-r.rssConns)/float64(r.locks)/1024)
	row("RSS per connection with its locks, KiB", "%.1f", float64(r.rss-r.rssIdle)/float64(r.conns)/1024)
	tw.Flush()
}
