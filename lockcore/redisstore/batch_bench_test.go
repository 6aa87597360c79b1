package redisstore

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/lockcore"
)

// BenchmarkBatchScripts measures what the scripts of uncontended locks
// cost Redis inside batches: each step sends one batch of acquires, of
// names nobody holds, and then one batch of their releases. It reports
// Redis's time in the batch script a pair (INFO commandstats), apart from
// reading the commands and writing the replies, with the commands the
// scripts ran a pair. With BENCH_REDIS_CPU set (e.g. 1) the redis-server
// is pinned to that CPU list; run the benchmark under taskset for its own.
func BenchmarkBatchScripts(b *testing.B) {
	for _, size := range []int{8, 32} {
		b.Run(fmt.Sprint("batch=", size), func(b *testing.B) {
			srv := redistest.Start(b)
			if cpus := os.Getenv("BENCH_REDIS_CPU"); cpus != "" {
				if out, err := exec.Command("taskset", "-p", "-c", cpus, strconv.Itoa(srv.PID())).CombinedOutput(); err != nil {
					b.Fatalf("taskset: %v: %s", err, out)
				}
			}
			s, direct := newBatchStoreOn(b, srv)
			ctx := context.Background()
			if err := direct.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			pairs := 0
			for step := 0; b.Loop(); step++ {
				names := make([]string, size)
				acquires := make([]*batchCall, size)
				for i := range acquires {
					names[i] = fmt.Sprintf("u%d-%d", i, step%64)
					k := s.keys(names[i])
					req := lockcore.AcquireRequest{Name: names[i], Nonce: fmt.Sprintf("n%d.%d", i, step), TTL: 30 * time.Second}
					acquires[i] = &batchCall{ctx: ctx, op: "acquire", keys: s.withState(k), args: s.acquireArgs(req, k), done: make(chan struct{})}
				}
				s.batch.send(acquires)
				releases := make([]*batchCall, size)
				for i, c := range acquires {
					arr, ok := c.v.([]any)
					if c.err != nil || c.alone || !ok || arr[0] != int64(1) {
						b.Fatalf("acquire %s = %v, %v (alone %v)", names[i], c.v, c.err, c.alone)
					}
					k := s.keys(names[i])
					req := lockcore.ReleaseRequest{Name: names[i], Token: arr[1].(string), Self: "bench:"}
					releases[i] = &batchCall{ctx: ctx, op: "release", keys: s.withState(k), args: s.releaseArgs(req, k, false), done: make(chan struct{})}
				}
				s.batch.send(releases)
				for i, c := range releases {
					if arr, ok := c.v.([]any); c.err != nil || c.alone || !ok || arr[0] != int64(1) {
						b.Fatalf("release %s = %v, %v (alone %v)", names[i], c.v, c.err, c.alone)
					}
				}
				pairs += size
			}
			b.StopTimer()
			stats := direct.Info(ctx, "commandstats").Val()
			var scriptUsec, commands float64
			for _, m := range regexp.MustCompile(`cmdstat_([a-z|]+):calls=(\d+),usec=(\d+)`).FindAllStringSubmatch(stats, -1) {
				calls, _ := strconv.ParseFloat(m[2], 64)
				switch m[1] {
				case "evalsha":
					scriptUsec, _ = strconv.ParseFloat(m[3], 64)
				case "info", "config|resetstat", "script|load", "hello", "client|setinfo", "ping":
				default:
					commands += calls
				}
			}
			b.ReportMetric(scriptUsec/float64(pairs), "script-µs/pair")
			b.ReportMetric(commands/float64(pairs), "commands/pair")
		})
	}
}
