package lockclient

import (
	"errors"
	"strings"
)

var (
	// ErrNotAcquired: someone else holds the lock, and Wait ran out or was
	// not given (lockproxy's null reply). Contention, not a failure.
	ErrNotAcquired = errors.New("lockclient: lock not acquired: held by someone else")
	// ErrNotHeld: LOCK.RENEW or LOCK.RELEASE answered 0, or the lock was
	// already released or lost: the caller does not hold it.
	ErrNotHeld = errors.New("lockclient: lock not held")
	// ErrLost: the lock was lost while WithLock's fn ran. It is also the
	// cause (context.Cause) of the context fn was given.
	ErrLost = errors.New("lockclient: lock lost")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("lockclient: client closed")
	// ErrWrongKind: the name is held (or, free, first waited for) as
	// another kind than the acquire asked for: a semaphore of another
	// Limit, a semaphore against a lock or read-write lock, or the other
	// way round (lockproxy's -WRONGTYPE). Unlike ErrNotAcquired, waiting
	// would not help: the callers disagree on what the name is. The error
	// is a *ServerError too, whose Msg says how the name is held.
	ErrWrongKind = errors.New("lockclient: lock held as another kind")
)

// ServerError is an error reply from lockproxy, such as
// "UPSTREAM connection refused" or "ERR invalid lock name: it is empty".
// Match it with errors.As.
type ServerError struct {
	Msg string // the reply as sent, code first
}

func (e *ServerError) Error() string { return "lockproxy: " + e.Msg }

// Is matches ErrWrongKind for a WRONGTYPE reply, so that callers can test
// for it as for the other outcomes, without parsing the message.
func (e *ServerError) Is(target error) bool {
	return target == ErrWrongKind && e.Code() == "WRONGTYPE"
}

// Code is the error's first word: "ERR", "UPSTREAM", "NOAUTH",
// "WRONGPASS"…
func (e *ServerError) Code() string {
	code, _, _ := strings.Cut(e.Msg, " ")
	return code
}
