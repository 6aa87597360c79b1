package lockcore

import (
	"context"
	"time"
)

// Instrument wraps store so that observe sees the latency of every call,
// by operation: acquire, renew, release, release_all, inspect or ping.
func Instrument(store Store, observe func(op string, took time.Duration)) Store {
	return &instrumented{Store: store, observe: observe}
}

type instrumented struct {
	Store
	observe func(op string, took time.Duration)
}

func (s *instrumented) since(op string, start time.Time) { s.observe(op, time.Since(start)) }

func (s *instrumented) Acquire(ctx context.Context, name, nonce string, ttl time.Duration) (Grant, error) {
	defer s.since("acquire", time.Now())
	return s.Store.Acquire(ctx, name, nonce, ttl)
}

func (s *instrumented) Renew(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	defer s.since("renew", time.Now())
	return s.Store.Renew(ctx, name, token, ttl)
}

func (s *instrumented) Release(ctx context.Context, name, token string) (bool, error) {
	defer s.since("release", time.Now())
	return s.Store.Release(ctx, name, token)
}

func (s *instrumented) ReleaseAll(ctx context.Context, locks []Held) error {
	defer s.since("release_all", time.Now())
	return s.Store.ReleaseAll(ctx, locks)
}

func (s *instrumented) Inspect(ctx context.Context, name string) (State, error) {
	defer s.since("inspect", time.Now())
	return s.Store.Inspect(ctx, name)
}

func (s *instrumented) Ping(ctx context.Context) error {
	defer s.since("ping", time.Now())
	return s.Store.Ping(ctx)
}
