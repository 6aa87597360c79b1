package lockcore

import "errors"

// Contention is not an error: Acquire reports it as an empty token. These are
// the ways a call can fail; anything else comes from the store (upstream).
var (
	// ErrTooManyLocks: the session holds Config.MaxLocksPerSession leases.
	ErrTooManyLocks = errors.New("lockcore: too many locks on this connection")
	// ErrTooManyWaiters: Config.MaxWaitersPerName acquires already wait
	// for the name on this sidecar.
	ErrTooManyWaiters = errors.New("lockcore: too many waiters for this lock")
	// ErrTooManyDetached: Config.MaxDetached detached locks granted through
	// this sidecar may still be held.
	ErrTooManyDetached = errors.New("lockcore: too many detached locks on this sidecar")
	// ErrShuttingDown: Locks.Shutdown has begun; nothing new is granted.
	ErrShuttingDown = errors.New("lockcore: shutting down")
	// ErrClosed: the session was closed (its connection went away).
	ErrClosed = errors.New("lockcore: session closed")
	// ErrTooSlow: the store granted the lock, but its reply came after the
	// lease's validity had already run out, so the grant was given back.
	ErrTooSlow = errors.New("lockcore: the upstream's reply arrived after the lease's validity ran out")
	// ErrNotChecked is what a store returns, wrapped, when it refuses a
	// grant because no health check (CheckUpstream) has succeeded since
	// it was made: nothing reached the upstream, so nothing is given back.
	ErrNotChecked = errors.New("lockcore: the upstream has not answered a health check yet")
	// ErrStoreReset is what a store returns when it can tell that it has
	// lost its locks since the sidecar last checked it (it restarted empty,
	// or another server took over): nothing may be granted until Locks has
	// been told, through CheckUpstream.
	ErrStoreReset = errors.New("lockcore: the upstream has lost its locks since it was last checked (restart or failover)")
	// ErrServerChanged is what a store returns when a grant came from a
	// server other than the one CheckUpstream last accepted (it restarted
	// or another took over), which may not have every lock yet. The grant
	// may have been written: the caller gives it back.
	ErrServerChanged = errors.New("lockcore: the upstream restarted or failed over since it was last checked")
)
