package lockcore

import "time"

// Clock is the time source of Locks: validity deadlines, renewal timers,
// WAIT deadlines and polls all go through it, so tests can drive them
// without sleeping (see lockcore/clocktest).
type Clock interface {
	Now() time.Time
	// AfterFunc runs f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call, reporting whether it did (false: it has run
	// or is running).
	Stop() bool
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
