package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/internal/redistest"
	"github.com/lockproxy/lockproxy/internal/sidecar"
	"github.com/lockproxy/lockproxy/internal/syncbuf"
)

// runOnce runs lockproxy with environ (LOCKPROXY_ prefixes included) and
// args until it has started, then stops it. It returns the log and run's
// error, which is a start-up failure when started was never reached.
func runOnce(t *testing.T, args, environ []string, started func(*sidecar.Sidecar)) (string, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncbuf.Buffer{}
	err := run(ctx, args, environ, io.Discard, logs, func(a *sidecar.Sidecar) {
		if started != nil {
			started(a)
		}
		cancel()
	})
	return logs.String(), err
}

// A metrics address that cannot be bound stops start-up with a message
// naming the variable, and undoes what had started: the RESP listener and
// the upstream's connections are closed.
func TestMetricsListenFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	srv := redistest.Start(t)
	direct := srv.Client(t)
	for _, addr := range []string{taken.Addr().String(), "notanaddr"} {
		sock := filepath.Join(t.TempDir(), "l.sock")
		logs, err := runOnce(t, nil, []string{"LOCKPROXY_LISTEN=unix:" + sock, "LOCKPROXY_UPSTREAM=" + srv.URL(),
			"LOCKPROXY_METRICS_LISTEN=" + addr}, func(*sidecar.Sidecar) { t.Errorf("%s: started", addr) })
		if err == nil || !strings.HasPrefix(err.Error(), "LOCKPROXY_METRICS_LISTEN: ") {
			t.Errorf("%s: run returned %v, want LOCKPROXY_METRICS_LISTEN: …\n%s", addr, err, logs)
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			t.Errorf("%s: the RESP listener still accepts after the failed start", addr)
		}
		// The server sees the clients' connections close a little later.
		waitFor(t, func() bool { return strings.Count(direct.ClientList(bg()).Val(), "\n") == 1 })
	}
}

// The start-up log speaks of an upstream only when there is one: the
// embedded store has none to be up, restart or fail over.
func TestStartupLogEmbedded(t *testing.T) {
	upstreamOnly := []string{"upstream is up", "of this upstream"}
	logs, err := runOnce(t, nil, []string{"LOCKPROXY_LISTEN=127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "using the embedded store") {
		t.Errorf("embedded store: the log does not say so:\n%s", logs)
	}
	for _, s := range upstreamOnly {
		if strings.Contains(logs, s) {
			t.Errorf("embedded store: the log says %q:\n%s", s, logs)
		}
	}
	srv := redistest.Start(t)
	logs, err = runOnce(t, nil, []string{"LOCKPROXY_LISTEN=127.0.0.1:0", "LOCKPROXY_UPSTREAM=" + srv.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range upstreamOnly {
		if !strings.Contains(logs, s) {
			t.Errorf("redis upstream: the log lacks %q:\n%s", s, logs)
		}
	}
}

// With LOCKPROXY_LOG_FORMAT=json, every line the process writes is JSON,
// the Redis client's own complaints about an unreachable upstream included.
func TestJSONLogWhileUpstreamDown(t *testing.T) {
	down := closedAddr(t)
	stderr := &syncbuf.Buffer{}
	c := startChildTo(t, map[string]string{"UPSTREAM": "redis://" + down + "/0", "LOG_FORMAT": "json"}, stderr)
	rdb := redis.NewClient(&redis.Options{Addr: c.addr})
	defer rdb.Close()
	// The Redis client logs its failed dials; acquires make it dial.
	waitFor(t, func() bool {
		_ = rdb.Do(bg(), "LOCK.ACQUIRE", "json-log").Err()
		return strings.Contains(stderr.String(), "failed to dial")
	})
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(); err != nil {
		t.Errorf("exit: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %s", line)
		}
	}
}

// closedAddr is a local address where nothing listens: every dial to it
// is refused. Port 1 (tcpmux) is privileged and unused; a freed ephemeral
// port would not do, as another test's server may take it meanwhile.
func closedAddr(t *testing.T) string {
	t.Helper()
	const addr = "127.0.0.1:1"
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("something listens on %s; these tests need a port that refuses", addr)
	}
	return addr
}

// Until a health check has reached the upstream, an acquire is refused
// with the truth: the upstream could not be reached, and why.
func TestAcquireBeforeUpstreamReached(t *testing.T) {
	p := startProxy(t, map[string]string{"UPSTREAM": "redis://" + closedAddr(t) + "/0"})
	err := do(t, p.conn(t, 2), "LOCK.ACQUIRE", "unreached").Err()
	if err == nil {
		t.Fatal("LOCK.ACQUIRE succeeded with no upstream")
	}
	msg := err.Error()
	for _, want := range []string{"UPSTREAM ", "the upstream could not be reached", "(last error: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("reply %q lacks %q", msg, want)
		}
	}
	// The last check's own error: the refusal, or, when go-redis's dial
	// retries outlast the check on a busy machine, the check's deadline.
	if !strings.Contains(msg, "connection refused") && !strings.Contains(msg, "deadline exceeded") {
		t.Errorf("reply %q gives neither the refusal nor the check's deadline as the last error", msg)
	}
	if strings.Contains(msg, "not been checked") {
		t.Errorf("reply %q says the upstream was not checked; it was", msg)
	}
}

func TestUnknownVars(t *testing.T) {
	got := unknownVars([]string{
		"LOCKPROXY_DEFAULT_TTL=5s",          // known
		"LOCKPROXY_DEFAULTTTL=5s",           // an underscore left out
		"LOCKPROXY_log_level=debug",         // the wrong case
		"LOCKPROXY_MAX_TTLL=1h",             // a letter too many
		"LOCKPROXY_SHUTDOWN_TIMOUT=1m",      // a letter missing
		"LOCKPROXY_FANCY=1",                 // nothing like it
		"LOCKPROXY_SERVICE_HOST=10.0.0.1",   // Kubernetes' service links for a Service named lockproxy
		"LOCKPROXY_PORT_6380_TCP_PORT=6380", //
		"PATH=/bin", "LOCKPROXYX=1",
	})
	want := []unknownVar{
		{"LOCKPROXY_DEFAULTTTL", "LOCKPROXY_DEFAULT_TTL"},
		{"LOCKPROXY_log_level", "LOCKPROXY_LOG_LEVEL"},
		{"LOCKPROXY_MAX_TTLL", "LOCKPROXY_MAX_TTL"},
		{"LOCKPROXY_SHUTDOWN_TIMOUT", "LOCKPROXY_SHUTDOWN_TIMEOUT"},
		{"LOCKPROXY_FANCY", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("unknownVars:\n got %v\nwant %v", got, want)
	}
}

// A misspelt variable is not silently ignored: the log names it, and what
// was probably meant.
func TestUnknownVarLogged(t *testing.T) {
	logs, err := runOnce(t, nil, []string{"LOCKPROXY_LISTEN=127.0.0.1:0", "LOCKPROXY_LOG_LEVEL=warn",
		"LOCKPROXY_DEFAULTTTL=5s", "LOCKPROXY_FANCY=1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LOCKPROXY_DEFAULTTTL", "did_you_mean=LOCKPROXY_DEFAULT_TTL", "LOCKPROXY_FANCY"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
}

// Stray command-line arguments stop start-up, named: lockproxy takes its
// settings from the environment only.
func TestPositionalArgsRefused(t *testing.T) {
	logs, err := runOnce(t, []string{"serve", "--", "extra"}, []string{"LOCKPROXY_LISTEN=127.0.0.1:0"},
		func(*sidecar.Sidecar) { t.Error("started with stray arguments") })
	if err == nil || !strings.Contains(err.Error(), `"serve"`) || !strings.Contains(err.Error(), `"extra"`) {
		t.Errorf("run returned %v, want an error naming the arguments\n%s", err, logs)
	}
}

// /readyz says what failed, in the words the docs quote: the health check,
// which is not a PING (it reads the upstream's run_id, epoch key and quiet
// period).
func TestReadyzBodyWhenUpstreamDown(t *testing.T) {
	p := startProxy(t, map[string]string{"UPSTREAM": "redis://" + closedAddr(t) + "/0", "METRICS_LISTEN": "127.0.0.1:0"})
	resp, err := http.Get("http://" + p.MetricsAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	const want = "not ready: upstream does not answer its health check"
	if resp.StatusCode != 503 || strings.TrimSpace(string(body)) != want {
		t.Errorf("/readyz = %d %q, want 503 %q", resp.StatusCode, body, want)
	}
	for _, f := range []string{"../../docs/monitoring.md", "../../docs/troubleshooting.md"} {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), want) {
			t.Errorf("%s does not quote /readyz's %q", f, want)
		}
	}
}
