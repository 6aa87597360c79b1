package main

import (
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/relay"
	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/metrics"
)

func scrape(t *testing.T, p *proxy) string {
	t.Helper()
	resp, err := http.Get("http://" + p.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func metric(t *testing.T, text, series string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %s in /metrics", series)
	}
	return m[1]
}

// Every metric of SPEC §5 is exported, and moves with the workload.
func TestMetrics(t *testing.T) {
	p := startProxy(t, map[string]string{"METRICS_LISTEN": "127.0.0.1:0"})
	text := scrape(t, p)
	for _, name := range []string{"lockproxy_acquire_total", "lockproxy_release_total", "lockproxy_renew_total",
		"lockproxy_locks_lost_total", "lockproxy_locks_held", "lockproxy_waiters", "lockproxy_connections",
		"lockproxy_acquire_wait_seconds", "lockproxy_hold_seconds", "lockproxy_upstream_seconds", "lockproxy_upstream_up",
		"lockproxy_auto_renew_total", "lockproxy_handoffs_total", "lockproxy_build_info", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(text, "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if v := metric(t, text, "lockproxy_locks_held"); v != "0" {
		t.Errorf("locks_held = %s at start", v)
	}
	c := p.conn(t, 2)
	mustToken(t, c, "m")
	text = scrape(t, p)
	if v := metric(t, text, "lockproxy_locks_held"); v != "1" {
		t.Errorf("locks_held = %s while held, want 1", v)
	}
	if v := metric(t, text, `lockproxy_acquire_total{result="acquired"}`); v != "1" {
		t.Errorf(`acquire_total{acquired} = %s, want 1`, v)
	}
	mustNull(t, p.conn(t, 2), "m")
	mustInt(t, 1, c, "LOCK.RENEW", "m", 60000)
	mustInt(t, 0, p.conn(t, 2), "LOCK.RENEW", "m", 60000)
	// A client blocked in WAIT shows as a waiter until the lock is its own.
	waiter := p.conn(t, 2)
	got := make(chan string, 1)
	go func() {
		tok, _ := do(t, waiter, "LOCK.ACQUIRE", "m", 60000, "WAIT", 10000).Text()
		got <- tok
	}()
	waitFor(t, func() bool { return metric(t, scrape(t, p), "lockproxy_waiters") == "1" })
	mustInt(t, 1, c, "LOCK.RELEASE", "m")
	if tok := <-got; tok == "" {
		t.Fatal("the waiter did not get the lock")
	}
	mustInt(t, 1, waiter, "LOCK.RELEASE", "m")
	mustInt(t, 0, c, "LOCK.RELEASE", "m")
	text = scrape(t, p)
	for series, want := range map[string]string{
		"lockproxy_locks_held":                         "0",
		"lockproxy_waiters":                            "0",
		`lockproxy_acquire_total{result="acquired"}`:   "2",
		`lockproxy_acquire_total{result="timeout"}`:    "1",
		`lockproxy_renew_total{result="renewed"}`:      "1",
		`lockproxy_renew_total{result="not_held"}`:     "1",
		`lockproxy_release_total{result="released"}`:   "2",
		`lockproxy_release_total{result="not_held"}`:   "1",
		"lockproxy_acquire_wait_seconds_count":         "3",
		"lockproxy_hold_seconds_count":                 "2",
		`lockproxy_upstream_seconds_count{op="renew"}`: "1",
		"lockproxy_connections":                        "4",
	} {
		if v := metric(t, text, series); v != want {
			t.Errorf("%s = %s, want %s", series, v, want)
		}
	}
	// The release passed the lock straight to the waiter, one way or another.
	info, _ := do(t, c, "INFO", "locks").Text()
	handoffs := 0
	for _, how := range metrics.HandOffKinds {
		n, _ := strconv.Atoi(metric(t, text, `lockproxy_handoffs_total{how="`+how+`"}`))
		handoffs += n
		if !strings.Contains(info, "handoffs_"+how+"_total:"+strconv.Itoa(n)+"\r\n") {
			t.Errorf("INFO locks lacks handoffs_%s_total:%d, as in /metrics:\n%s", how, n, info)
		}
	}
	if handoffs != 1 {
		t.Errorf("lockproxy_handoffs_total sums to %d over its kinds, want 1 hand-off", handoffs)
	}
	if !slices.Equal(metrics.HandOffKinds, lockcore.HandOffKinds[:]) {
		t.Errorf("metrics.HandOffKinds %v, lockcore.HandOffKinds %v: the label values must be the kinds", metrics.HandOffKinds, lockcore.HandOffKinds)
	}
	// INFO locks shows the same figures to redis-cli.
	for _, want := range []string{"upstream_up:1", "locks_held:0", "waiters:0", "local_handoffs:0", "acquire_acquired_total:2",
		"acquire_timeout_total:1", "release_released_total:2", "release_not_held_total:1", "renew_renewed_total:1"} {
		if !strings.Contains(info, want+"\r\n") {
			t.Errorf("INFO locks lacks %s:\n%s", want, info)
		}
	}
	// Held by kind: a permit and a read lock count apart, and in the total.
	sem, reader := p.conn(t, 2), p.conn(t, 2)
	mustToken(t, sem, "k-sem", 60000, "LIMIT", 2)
	mustToken(t, reader, "k-rw", 60000, "SHARED")
	text = scrape(t, p)
	for series, want := range map[string]string{
		"lockproxy_locks_held":                           "2",
		`lockproxy_locks_held_by_kind{kind="exclusive"}`: "0",
		`lockproxy_locks_held_by_kind{kind="shared"}`:    "1",
		`lockproxy_locks_held_by_kind{kind="semaphore"}`: "1",
	} {
		if v := metric(t, text, series); v != want {
			t.Errorf("%s = %s, want %s", series, v, want)
		}
	}
	info, _ = do(t, c, "INFO", "locks").Text()
	for _, want := range []string{"locks_held:2", "locks_held_shared:1", "locks_held_semaphore:1"} {
		if !strings.Contains(info, want+"\r\n") {
			t.Errorf("INFO locks lacks %s:\n%s", want, info)
		}
	}
	mustInt(t, 1, sem, "LOCK.RELEASE", "k-sem")
	if v := metric(t, scrape(t, p), `lockproxy_locks_held_by_kind{kind="semaphore"}`); v != "0" {
		t.Errorf("semaphore permits held = %s after the release, want 0", v)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get("http://" + p.MetricsAddr().String() + path)
		if err != nil || resp.StatusCode != want {
			t.Errorf("GET %s: %v %v", path, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}

// With the upstream frozen, the lost lock is counted, the upstream shows
// down and /readyz fails; thawed, they recover.
func TestMetricsWhenUpstreamFreezes(t *testing.T) {
	srv := redistest.Start(t)
	r := relay.Start(t, srv.Addr())
	p := startProxy(t, map[string]string{"UPSTREAM": "redis://" + r.Addr() + "/0", "METRICS_LISTEN": "127.0.0.1:0",
		"UPSTREAM_TIMEOUT": "200ms"})
	c := p.conn(t, 2)
	mustToken(t, c, "frozen", 500)
	text := scrape(t, p)
	for series, want := range map[string]string{
		"lockproxy_locks_lost_total": "0", "lockproxy_upstream_up": "1", "lockproxy_locks_held": "1",
	} {
		if v := metric(t, text, series); v != want {
			t.Fatalf("%s = %s before the freeze, want %s", series, v, want)
		}
	}
	r.Freeze()
	defer r.Thaw()
	waitFor(t, func() bool { return metric(t, scrape(t, p), "lockproxy_locks_lost_total") == "1" })
	waitFor(t, func() bool { return metric(t, scrape(t, p), "lockproxy_upstream_up") == "0" })
	text = scrape(t, p)
	if v := metric(t, text, "lockproxy_locks_held"); v != "0" {
		t.Errorf("locks_held = %s after the loss", v)
	}
	if v := metric(t, text, `lockproxy_auto_renew_total{result="error"}`); v == "0" {
		t.Error("no failed renewal counted while frozen")
	}
	if code := status(t, p, "/readyz"); code != 503 {
		t.Errorf("/readyz = %d with the upstream down, want 503", code)
	}
	if code := status(t, p, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d with the upstream down, want 200: the process serves", code)
	}
	r.Thaw()
	waitFor(t, func() bool { return metric(t, scrape(t, p), "lockproxy_upstream_up") == "1" })
	if code := status(t, p, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d after the thaw", code)
	}
}

func status(t *testing.T, p *proxy, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + p.MetricsAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A client that hangs up while it waits is not an upstream error: counted
// as timeout, and not logged.
func TestHangUpInWaitIsNotAnError(t *testing.T) {
	p := startProxy(t, map[string]string{"METRICS_LISTEN": "127.0.0.1:0"})
	c := p.conn(t, 2)
	mustToken(t, c, "busy", 60000)
	r := dialRaw(t, p.Addr().String())
	r.send(t, cmd("LOCK.ACQUIRE", "busy", "1000", "WAIT", "60000"))
	waitFor(t, func() bool { return metric(t, scrape(t, p), "lockproxy_waiters") == "1" })
	r.Close()
	waitFor(t, func() bool { return metric(t, scrape(t, p), `lockproxy_acquire_total{result="timeout"}`) == "1" })
	if v := metric(t, scrape(t, p), `lockproxy_acquire_total{result="error"}`); v != "0" {
		t.Errorf("acquire errors = %s after a client hung up", v)
	}
	if logs := p.logs.String(); strings.Contains(logs, "upstream error") {
		t.Errorf("a hang-up was logged as an upstream error:\n%s", logs)
	}
}

// On a Cluster, lockproxy_upstream_shards counts the shards the last check
// found fine and those it could not check; a shard down leaves the
// sidecar up, and its other names granted.
func TestClusterShardsMetric(t *testing.T) {
	cl := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3,
		Args: []string{"--cluster-require-full-coverage", "no"}})
	p := startProxy(t, map[string]string{"UPSTREAM": cl.URL(), "METRICS_LISTEN": "127.0.0.1:0"})
	shards := func() (ok, failing, up string) {
		text := scrape(t, p)
		return metric(t, text, `lockproxy_upstream_shards{state="ok"}`), metric(t, text, `lockproxy_upstream_shards{state="failing"}`),
			metric(t, text, "lockproxy_upstream_up")
	}
	waitFor(t, func() bool { ok, failing, _ := shards(); return ok == "3" && failing == "0" })
	down := cl.Primary(t, 0)
	down.Kill(t)
	waitFor(t, func() bool { ok, failing, _ := shards(); return ok == "2" && failing == "1" })
	if _, _, up := shards(); up != "1" {
		t.Errorf("lockproxy_upstream_up = %s with 2 of 3 shards answering, want 1", up)
	}
	// A name in another shard's slots is still granted.
	c := p.conn(t, 2)
	for i := 0; ; i++ {
		name := "elsewhere" + strconv.Itoa(i)
		if slot := cl.Client(t).ClusterKeySlot(bg(), "{"+name+"}").Val(); cl.Primary(t, int(slot)) != down {
			mustToken(t, c, name)
			break
		}
	}
}
