package main

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
)

// healthNoted is the Redis store, with its refusal to grant before any
// health check succeeded (redisstore.ErrUnreached) told why the last check
// failed, which the store does not keep: a client then reads "connection
// refused" or "WRONGPASS" in its reply, as the log does.
type healthNoted struct {
	lockcore.Store
	lastErr atomic.Pointer[string] // the last Health's error; nil after a success
}

// Health implements lockcore.Store.
func (s *healthNoted) Health(ctx context.Context) (lockcore.Health, error) {
	h, err := s.Store.Health(ctx)
	if err != nil {
		msg := err.Error()
		s.lastErr.Store(&msg)
	} else {
		s.lastErr.Store(nil)
	}
	return h, err
}

// Acquire implements lockcore.Store.
func (s *healthNoted) Acquire(ctx context.Context, req lockcore.AcquireRequest) (lockcore.Grant, error) {
	g, err := s.Store.Acquire(ctx, req)
	if errors.Is(err, redisstore.ErrUnreached) {
		if last := s.lastErr.Load(); last != nil {
			err = unreachedError{last: *last}
		}
	}
	return g, err
}

// unreachedError is redisstore.ErrUnreached with the last health check's
// error. It is only text: unwrapping to that error could make a timeout or
// a cancellation of the check look like one of the acquire.
type unreachedError struct{ last string }

func (e unreachedError) Error() string {
	return "the upstream could not be reached since lockproxy started (last error: " + e.last + "); retry in a moment"
}

func (e unreachedError) Unwrap() error { return redisstore.ErrUnreached }
