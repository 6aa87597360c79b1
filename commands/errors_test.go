package commands

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
)

func TestErrorReply(t *testing.T) {
	store := memstore.New(memstore.Options{})
	defer store.Close()
	locks, err := lockcore.New(store, lockcore.Config{MaxLocksPerSession: 7, MaxWaitersPerName: 9, MaxDetached: 11})
	if err != nil {
		t.Fatal(err)
	}
	defer locks.Shutdown(context.Background())
	h := &Handler{locks: locks}
	upstream := errors.New("dial tcp: connection refused")
	for _, tc := range []struct {
		err          error
		want         string
		wantUpstream bool
	}{
		{errSyntax, "ERR syntax error", false},
		{fmt.Errorf("acquire %q: %w", "a", lockcore.ErrTooManyLocks), "ERR max locks per connection reached (LOCKPROXY_MAX_LOCKS_PER_CONN=7)", false},
		{lockcore.ErrTooManyWaiters, "ERR max waiters for this lock reached (LOCKPROXY_MAX_WAITERS_PER_NAME=9)", false},
		{lockcore.ErrTooManyDetached, "ERR max detached locks reached on this sidecar (LOCKPROXY_MAX_DETACHED=11): release some by token, or wait for their ttl", false},
		{fmt.Errorf("acquire %q: %w", "a", lockcore.ErrShuttingDown), "ERR lockproxy is shutting down", false},
		// A closed session is a connection that went away, not a shutdown.
		{fmt.Errorf("acquire %q: %w", "a", lockcore.ErrClosed), "ERR connection closed", false},
		{context.Canceled, "ERR connection closed", false},
		{&lockcore.QuietError{Left: 90 * time.Second}, "UPSTREAM quiet period: the upstream restarted or failed over and may have lost its locks; no lock is granted for another 1m30s (LOCKPROXY_QUIET_PERIOD)", false},
		{lockcore.ErrStoreReset, "UPSTREAM the upstream restarted or failed over and may have lost its locks; lockproxy is checking it, retry shortly", false},
		{fmt.Errorf("acquire %q: %w", "a", upstream), `UPSTREAM acquire "a": dial tcp: connection refused`, true},
	} {
		got, up := h.errorReply(tc.err)
		if got != tc.want || up != tc.wantUpstream {
			t.Errorf("%v: %q, upstream %v; want %q, %v", tc.err, got, up, tc.want, tc.wantUpstream)
		}
	}
}
