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
)

// ServerError is an error reply from lockproxy, such as
// "UPSTREAM connection refused" or "ERR invalid lock name: it is empty".
// Match it with errors.As.
type ServerError struct {
	Msg string // the reply as sent, code first
}

func (e *ServerError) Error() string { return "lockproxy: " + e.Msg }

// Code is the error's first word: "ERR", "UPSTREAM", "NOAUTH",
// "WRONGPASS"…
func (e *ServerError) Code() string {
	code, _, _ := strings.Cut(e.Msg, " ")
	return code
}
