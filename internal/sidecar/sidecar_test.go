package sidecar

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// A sidecar started from the defaults serves on the address it bound, and
// Shutdown, called twice, leaves no goroutine behind.
func TestStartShutdown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	s, err := Start(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr().String()})
	if tok, err := rdb.Do(context.Background(), "LOCK.ACQUIRE", "started").Text(); err != nil || tok == "" {
		t.Errorf("LOCK.ACQUIRE = %q, %v", tok, err)
	}
	rdb.Close()
	if err := s.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if err := s.Shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := s.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if s.Ready() == nil {
		t.Error("ready after Shutdown")
	}
}

// A start that fails part way undoes every part started before, the lock
// core's background work included.
func TestFailedStartLeavesNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = taken.Addr().String()
	if s, err := Start(cfg, Options{}); err == nil || !strings.HasPrefix(err.Error(), "LOCKPROXY_METRICS_LISTEN: ") {
		t.Fatalf("Start = %v, %v; want a LOCKPROXY_METRICS_LISTEN error", s, err)
	}
}

// Start checks a configuration built in code, as LoadConfig checks one
// read from the environment.
func TestStartRefusesBadConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MaxWait = -1
	if s, err := Start(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "LOCKPROXY_MAX_WAIT") {
		t.Fatalf("Start = %v, %v; want an error naming LOCKPROXY_MAX_WAIT", s, err)
	}
}
