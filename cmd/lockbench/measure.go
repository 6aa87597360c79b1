package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// locker takes and gives back locks for one client.
type locker interface {
	acquire(name string, k holdKind) error // blocks until the lock is held
	release(name string) error
	Close() error
}

// workload is one way of locking: through lockproxy, or polling Redis.
type workload struct {
	name string
	// addr is what its clients talk to; its idle PING round trip is
	// printed beside the hand-off gap, for scale.
	addr string
	// countCommands picks this workload's lock commands out of Redis's
	// commandstats (calls by command), given how many counter updates ran.
	countCommands func(calls map[string]int64, updates int64) int64
	newLocker     func(client int) (locker, error)
	// statsAddrs are more Redis servers whose commandstats count towards
	// the workload's commands: the sidecars' upstream, when it is not the
	// Redis of the counters (a Redis Cluster's nodes, say).
	statsAddrs []string
	// sidecarAddrs are the sidecars the clients are spread over, in turn
	// (none for the baseline), so hand-offs across sidecars can be told
	// apart.
	sidecarAddrs []string
}

// acquisition is one hold of a lock, in time since the run began.
type acquisition struct {
	client, name      int
	asked, got, freed time.Duration
	shared            bool // a reader's (-readers)
	inside            int  // a semaphore's holders in the Redis gauge as it came in, itself included (-limit)
}

// result is one workload's figures.
type result struct {
	name         string
	ping         time.Duration // idle round trip p50 to what the clients talk to, for scale
	duration     time.Duration
	acquisitions int   // after the warm-up
	all          int   // all, for the counter check
	perClient    []int // after the warm-up
	wait         []time.Duration
	waitWriters  []time.Duration // of those, of a read-write lock's writers
	waitReaders  []time.Duration // and of its readers
	gap          []time.Duration // hand-offs to another client
	gapAcross    []time.Duration // of those, to a client of another sidecar
	gapWithin    []time.Duration // of those, to a client of the same sidecar
	gapToWriters []time.Duration // of a read-write lock's, to a writer
	gapToReaders []time.Duration // and to a reader
	// idle is, for every release while another client waited, the time
	// until the next grant, whoever got it (the releaser included): how
	// long the lock sat free while someone wanted it.
	idle       []time.Duration
	selfShare  float64
	meanHold   time.Duration
	cycle      time.Duration // time per acquisition of one name
	commands   float64       // upstream lock commands per acquisition
	violations int
	problems   []string // what the violations were
	// most is the most holds of one name at once in the records (of a
	// read-write lock, readers); mostCounted, of a semaphore's holders in
	// its Redis gauge.
	most, mostCounted int
	// handOffs are the sidecars' hand-offs to their waiters during the run,
	// by how (INFO's handoffs_<how>_total); nil for the baseline.
	handOffs map[string]int64
}

// measure runs w for cfg.duration and computes its figures.
func measure(ctx context.Context, cfg config, redisAddr string, w workload) (*result, error) {
	admin, err := dial(redisAddr)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	counter := counterKey(w.name)
	for n := range cfg.names {
		if _, err := admin.do("DEL", counter(n), holdersKey(counter(n))); err != nil {
			return nil, err
		}
	}
	ping, err := pingRTT(w.addr)
	if err != nil {
		return nil, err
	}
	before, err := allCommandstats(admin, w.statsAddrs)
	if err != nil {
		return nil, err
	}
	handOffsBefore, err := handOffs(w.sidecarAddrs)
	if err != nil {
		return nil, err
	}

	run := runGoroutines
	if cfg.procs {
		run = runProcesses
	}
	records, elapsed, err := run(ctx, cfg, redisAddr, w)
	if err != nil {
		return nil, err
	}
	after, err := allCommandstats(admin, w.statsAddrs)
	if err != nil {
		return nil, err
	}
	handOffsAfter, err := handOffs(w.sidecarAddrs)
	if err != nil {
		return nil, err
	}

	r := &result{name: w.name, duration: elapsed - cfg.warmup, perClient: make([]int, cfg.clients), ping: ping}
	for how, n := range handOffsAfter {
		if r.handOffs == nil {
			r.handOffs = map[string]int64{}
		}
		r.handOffs[how] = n - handOffsBefore[how]
	}
	var acqs []acquisition
	for _, rs := range records {
		r.all += len(rs)
		acqs = append(acqs, rs...)
	}
	calls := map[string]int64{}
	for k, v := range after {
		calls[k] = v - before[k]
	}
	r.commands = float64(w.countCommands(calls, int64(r.all))) / float64(max(r.all, 1))
	r.stats(cfg, len(w.sidecarAddrs), acqs)

	if cfg.limit > 0 {
		r.checkGauge(cfg, acqs)
		return r, nil
	}
	return r, r.checkCounters(cfg, admin, counter, acqs)
}

// checkCounters checks that no update of a counter was lost: every writer
// (every holder of a plain lock) read, incremented and wrote back its
// name's counter, and every reader INCRed it (see update); a second holder
// beside a writer would have lost an update.
func (r *result) checkCounters(cfg config, admin *client, counter func(int) string, acqs []acquisition) error {
	perName := make([]int, cfg.names)
	for _, a := range acqs {
		perName[a.name]++
	}
	for n := range cfg.names {
		v, err := admin.do("GET", counter(n))
		if err != nil {
			return err
		}
		if got, _ := strconv.Atoi(v.Str); got != perName[n] {
			r.problems = append(r.problems, fmt.Sprintf("name %d: counter %d, acquisitions %d", n, got, perName[n]))
			r.violations++
		}
	}
	return nil
}

// runGoroutines runs the clients as goroutines of this process, and
// returns each one's acquisitions and how long the run took.
func runGoroutines(ctx context.Context, cfg config, redisAddr string, w workload) ([][]acquisition, time.Duration, error) {
	lockers := make([]locker, cfg.clients)
	updaters := make([]*client, cfg.clients)
	var err error
	for i := range lockers {
		if lockers[i], err = w.newLocker(i); err != nil {
			return nil, 0, err
		}
		defer lockers[i].Close()
		if updaters[i], err = dial(redisAddr); err != nil {
			return nil, 0, err
		}
		defer updaters[i].Close()
	}
	// One client's failure ends the run: the others may be blocked for the
	// lock it held, so their connections are closed under them.
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		for _, l := range lockers {
			l.Close()
		}
	}()
	start := time.Now()
	end := start.Add(cfg.duration)
	records := make([][]acquisition, cfg.clients)
	var first firstError
	var wg sync.WaitGroup
	for i := range cfg.clients {
		wg.Go(func() {
			var err error
			records[i], err = loop(ctx, cfg, i, lockers[i], updaters[i], counterKey(w.name), start, end)
			if err != nil {
				first.set(err)
				cancel()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancel()
	<-stopped
	return records, elapsed, first.get()
}

// firstError keeps the first of the clients' errors: the ones after it are
// mostly the others being stopped because of it.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// counterKey names the plain counter a workload's holders of lock n update.
func counterKey(workload string) func(n int) string {
	return func(n int) string { return "lockbench:counter:" + workload + ":" + strconv.Itoa(n) }
}

// loop is one client: acquire, update the counter, hold, release, think,
// until end; each acquisition as nextKind draws it.
func loop(ctx context.Context, cfg config, id int, l locker, up *client, counter func(int) string,
	start, end time.Time) ([]acquisition, error) {
	name := id % cfg.names
	lock := "lockbench-" + strconv.Itoa(name)
	var out []acquisition
	key := counter(name)
	for time.Now().Before(end) && ctx.Err() == nil {
		k := nextKind(cfg)
		asked := time.Since(start)
		if err := l.acquire(lock, k); err != nil {
			return out, fmt.Errorf("client %d acquire: %w", id, err)
		}
		got := time.Since(start)
		inside, err := update(up, k, key)
		if err != nil {
			return out, err
		}
		if rest := cfg.hold - (time.Since(start) - got); rest > 0 {
			time.Sleep(rest)
		}
		if err := leave(up, k, key); err != nil {
			return out, err
		}
		freed := time.Since(start)
		if err := l.release(lock); err != nil {
			return out, fmt.Errorf("client %d release: %w", id, err)
		}
		out = append(out, acquisition{client: id, name: name, asked: asked, got: got, freed: freed, shared: k.shared, inside: inside})
		time.Sleep(cfg.think)
	}
	return out, nil
}

// stats computes the figures from the acquisitions after the warm-up, and
// checks every hold, warm-up included, against the run's rule.
func (r *result) stats(cfg config, sidecars int, acqs []acquisition) {
	byName := make([][]acquisition, cfg.names)
	for _, a := range acqs {
		byName[a.name] = append(byName[a.name], a)
	}
	var holds time.Duration
	var pairs, self int
	seen := make([]bool, cfg.clients)
	for n, as := range byName {
		sort.Slice(as, func(i, j int) bool { return as[i].got < as[j].got })
		r.checkHolds(cfg, n, as)
		for _, a := range as {
			if a.asked < cfg.warmup {
				continue
			}
			r.acquisitions++
			r.perClient[a.client]++
			r.wait = append(r.wait, a.got-a.asked)
			switch {
			case cfg.readers > 0 && a.shared:
				r.waitReaders = append(r.waitReaders, a.got-a.asked)
			case cfg.readers > 0:
				r.waitWriters = append(r.waitWriters, a.got-a.asked)
			}
			holds += a.freed - a.got
		}
		switch {
		case cfg.limit > 0:
			r.permitGaps(cfg, sidecars, as)
		case cfg.readers > 0:
			r.readWriteGaps(cfg, sidecars, as)
		default:
			p, s := r.lockGaps(cfg, sidecars, as, seen)
			pairs, self = pairs+p, self+s
		}
	}
	if r.acquisitions > 0 {
		r.meanHold = holds / time.Duration(r.acquisitions)
		r.cycle = r.duration * time.Duration(cfg.names) / time.Duration(r.acquisitions)
	}
	if pairs > 0 {
		r.selfShare = float64(self) / float64(pairs)
	}
	for _, d := range [][]time.Duration{r.wait, r.waitWriters, r.waitReaders, r.gap, r.gapAcross, r.gapWithin,
		r.gapToWriters, r.gapToReaders, r.idle} {
		sortDurations(d)
	}
}

// lockGaps times a plain lock's hand-offs on one name (as in grant order):
// each grant after the warm-up from the release before it, when another
// client held it, and how long the lock sat free while others waited. It
// returns the consecutive pairs looked at and how many were one client's
// re-acquires.
func (r *result) lockGaps(cfg config, sidecars int, as []acquisition, seen []bool) (pairs, self int) {
	for i, a := range as {
		if a.asked < cfg.warmup || i == 0 {
			continue
		}
		pairs++
		if othersWaited(as, i, seen) {
			r.idle = append(r.idle, a.got-as[i-1].freed)
		}
		if prev := as[i-1]; prev.client == a.client {
			self++
		} else {
			r.handOff(prev, a, sidecars)
		}
	}
	return pairs, self
}

// othersWaited reports whether, when as[i-1] (of one name, in grant order)
// was released, a client other than its holder had asked for the lock and
// not been served yet: whether some client's first grant after that asked
// before it. seen is scratch space, one entry per client.
func othersWaited(as []acquisition, i int, seen []bool) bool {
	prev := as[i-1]
	clear(seen)
	left := len(seen)
	for _, a := range as[i:] {
		if seen[a.client] {
			continue
		}
		if a.asked < prev.freed && a.client != prev.client {
			return true
		}
		seen[a.client] = true
		if left--; left == 0 {
			break
		}
	}
	return false
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

// pct is the p-th percentile (0..100) of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// fairness is the most acquisitions of one client over the fewest.
func (r *result) fairness() float64 {
	lo, hi := r.perClient[0], r.perClient[0]
	for _, n := range r.perClient {
		lo, hi = min(lo, n), max(hi, n)
	}
	if lo == 0 {
		return float64(hi) // someone starved: report it as large
	}
	return float64(hi) / float64(lo)
}

// pingRTT is the median PING round trip to addr, over 1000.
func pingRTT(addr string) (time.Duration, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	rtts := make([]time.Duration, 1000)
	for i := range rtts {
		start := time.Now()
		if _, err := c.do("PING"); err != nil {
			return 0, err
		}
		rtts[i] = time.Since(start)
	}
	sortDurations(rtts)
	return pct(rtts, 50), nil
}

// handOffs adds up the sidecars' hand-off counters, by how, from INFO.
func handOffs(sidecars []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, addr := range sidecars {
		c, err := dial(addr)
		if err != nil {
			return nil, err
		}
		v, err := c.do("INFO", "locks")
		c.Close()
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(v.Str, "\r\n") {
			rest, ok := strings.CutPrefix(line, "handoffs_")
			if how, n, ok2 := strings.Cut(rest, "_total:"); ok && ok2 {
				v, _ := strconv.ParseInt(n, 10, 64)
				out[how] += v
			}
		}
	}
	return out, nil
}

// allCommandstats is commandstats of c and of each server at addrs,
// summed by command.
func allCommandstats(c *client, addrs []string) (map[string]int64, error) {
	out, err := commandstats(c)
	if err != nil {
		return nil, err
	}
	for _, addr := range addrs {
		o, err := dial(addr)
		if err != nil {
			return nil, err
		}
		more, err := commandstats(o)
		o.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		for k, v := range more {
			out[k] += v
		}
	}
	return out, nil
}

// commandstats reads Redis's per-command call counts.
func commandstats(c *client) (map[string]int64, error) {
	v, err := c.do("INFO", "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(v.Str, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		out[name] = n
	}
	return out, nil
}

// lockproxyWorkload locks through the sidecars: LOCK.ACQUIRE … WAIT, then
// LOCK.RELEASE; clients are spread over the sidecars in turn.
func lockproxyWorkload(sidecars []string) workload {
	return workload{
		name:         "lockproxy",
		addr:         sidecars[0],
		sidecarAddrs: sidecars,
		countCommands: func(calls map[string]int64, _ int64) int64 {
			// Each script is one EVALSHA (or EVAL when it is loaded); the
			// wake subscription changes as names gain and lose waiters.
			return calls["evalsha"] + calls["eval"] + calls["subscribe"] + calls["unsubscribe"] +
				calls["ssubscribe"] + calls["sunsubscribe"]
		},
		newLocker: func(i int) (locker, error) {
			c, err := dial(sidecars[i%len(sidecars)])
			if err != nil {
				return nil, err
			}
			return &proxyLocker{c}, nil
		},
	}
}

type proxyLocker struct{ *client }

func (p *proxyLocker) acquire(name string, k holdKind) error {
	args := append([]string{"LOCK.ACQUIRE", name, "30000", "WAIT", "3600000"}, k.args()...)
	for {
		r, err := p.do(args...)
		if err != nil {
			return err
		}
		if !r.Null {
			return nil
		}
	}
}

func (p *proxyLocker) release(name string) error {
	r, err := p.do("LOCK.RELEASE", name)
	if err == nil && r.Num != 1 {
		err = fmt.Errorf("LOCK.RELEASE %s = %d: the lock was lost", name, r.Num)
	}
	return err
}

// releaseScript is redislock's release: delete only our own token.
const releaseScript = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`

// pollingWorkload is the baseline: a client-side retry loop straight to
// Redis, as bsm/redislock with LinearBackoff(retry) does: SET NX PX, and on
// failure sleep retry and try again.
func pollingWorkload(redisAddr string, retry time.Duration) workload {
	return workload{
		name: "polling",
		addr: redisAddr,
		countCommands: func(calls map[string]int64, updates int64) int64 {
			// SETs are lock attempts plus one counter write per acquisition.
			return calls["set"] - updates + calls["evalsha"] + calls["eval"]
		},
		newLocker: func(int) (locker, error) {
			c, err := dial(redisAddr)
			if err != nil {
				return nil, err
			}
			r, err := c.do("SCRIPT", "LOAD", releaseScript)
			if err != nil {
				c.Close()
				return nil, err
			}
			return &pollLocker{client: c, retry: retry, sha: r.Str}, nil
		},
	}
}

type pollLocker struct {
	*client
	retry time.Duration
	sha   string
	token string
}

func (p *pollLocker) key(name string) string { return "lockbench:poll:{" + name + "}" }

func (p *pollLocker) acquire(name string, k holdKind) error {
	if k != (holdKind{}) {
		return errors.New("the polling baseline has no semaphore or read-write lock")
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	p.token = hex.EncodeToString(b[:])
	for {
		r, err := p.do("SET", p.key(name), p.token, "NX", "PX", "30000")
		if err != nil {
			return err
		}
		if !r.Null {
			return nil
		}
		time.Sleep(p.retry)
	}
}

func (p *pollLocker) release(name string) error {
	r, err := p.do("EVALSHA", p.sha, "1", p.key(name), p.token)
	if err == nil && r.Num != 1 {
		err = fmt.Errorf("release of %s found another token", name)
	}
	return err
}
