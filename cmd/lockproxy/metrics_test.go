package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
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
		"lockproxy_acquire_wait_seconds", "lockproxy_hold_seconds", "lockproxy_upstream_seconds", "lockproxy_upstream_up"} {
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
	mustInt(t, 1, c, "LOCK.RELEASE", "m")
	text = scrape(t, p)
	for series, want := range map[string]string{
		"lockproxy_locks_held":                           "0",
		`lockproxy_acquire_total{result="timeout"}`:      "1",
		`lockproxy_release_total{result="released"}`:     "1",
		"lockproxy_hold_seconds_count":                   "1",
		`lockproxy_upstream_seconds_count{op="acquire"}`: "2",
		"lockproxy_connections":                          "2",
	} {
		if v := metric(t, text, series); v != want {
			t.Errorf("%s = %s, want %s", series, v, want)
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get("http://" + p.MetricsAddr().String() + path)
		if err != nil || resp.StatusCode != want {
			t.Errorf("GET %s: %v %v", path, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}
