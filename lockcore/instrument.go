package lockcore

import (
	"context"
	"time"
)

// Instrument wraps store so that observe sees the latency of every call,
// by operation: acquire, renew, revoke, release, transfer, release_all,
// leave, keepalive or inspect. InstrumentUpstream does the same for health.
func Instrument(store Store, observe func(op string, took time.Duration)) Store {
	return &instrumented{Store: store, observe: observe}
}

type instrumented struct {
	Store
	observe func(op string, took time.Duration)
}

// Slot implements Slotter when the store does; -1 when it does not.
func (s *instrumented) Slot(name string) int {
	if sl, ok := s.Store.(Slotter); ok {
		return sl.Slot(name)
	}
	return -1
}

func (s *instrumented) since(op string, start time.Time) { s.observe(op, time.Since(start)) }

func (s *instrumented) Acquire(ctx context.Context, req AcquireRequest) (Grant, error) {
	defer s.since("acquire", time.Now())
	return s.Store.Acquire(ctx, req)
}

func (s *instrumented) Renew(ctx context.Context, req RenewRequest) (Renewed, error) {
	defer s.since("renew", time.Now())
	return s.Store.Renew(ctx, req)
}

func (s *instrumented) Revoke(ctx context.Context, req RevokeRequest) (bool, error) {
	defer s.since("revoke", time.Now())
	return s.Store.Revoke(ctx, req)
}

func (s *instrumented) Release(ctx context.Context, req ReleaseRequest) (Released, error) {
	defer s.since("release", time.Now())
	return s.Store.Release(ctx, req)
}

func (s *instrumented) Transfer(ctx context.Context, req TransferRequest) (Transferred, error) {
	defer s.since("transfer", time.Now())
	return s.Store.Transfer(ctx, req)
}

func (s *instrumented) ReleaseAll(ctx context.Context, reqs []ReleaseRequest) ([]Released, error) {
	defer s.since("release_all", time.Now())
	return s.Store.ReleaseAll(ctx, reqs)
}

func (s *instrumented) Leave(ctx context.Context, name, waiter string) error {
	defer s.since("leave", time.Now())
	return s.Store.Leave(ctx, name, waiter)
}

func (s *instrumented) KeepAlive(ctx context.Context, name string, waiters []string, ttl time.Duration) error {
	defer s.since("keepalive", time.Now())
	return s.Store.KeepAlive(ctx, name, waiters, ttl)
}

func (s *instrumented) Inspect(ctx context.Context, name string) (State, error) {
	defer s.since("inspect", time.Now())
	return s.Store.Inspect(ctx, name)
}

// InstrumentUpstream wraps up so that observe sees the latency of each
// health check, as the operation health.
func InstrumentUpstream(up Upstream, observe func(op string, took time.Duration)) Upstream {
	return &instrumentedUpstream{Upstream: up, observe: observe}
}

type instrumentedUpstream struct {
	Upstream
	observe func(op string, took time.Duration)
}

func (u *instrumentedUpstream) Health(ctx context.Context) (Health, error) {
	defer func(start time.Time) { u.observe("health", time.Since(start)) }(time.Now())
	return u.Upstream.Health(ctx)
}
