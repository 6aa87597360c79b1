package lockclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// DialOption configures a Client.
type DialOption func(*dialOptions)

type dialOptions struct {
	password string
	tls      *tls.Config
}

// WithPassword authenticates every connection as lockproxy's default user
// (LOCKPROXY_PASSWORD), in its HELLO.
func WithPassword(password string) DialOption {
	return func(o *dialOptions) { o.password = password }
}

// WithTLS connects with TLS (LOCKPROXY_TLS_CERT on the sidecar). When
// config has no ServerName, the host of the address is used.
func WithTLS(config *tls.Config) DialOption {
	return func(o *dialOptions) { o.tls = config }
}

// Option configures one Acquire (or WithLock).
type Option func(*acquireOptions)

type acquireOptions struct {
	ttl, wait, maxHold time.Duration
	detached           bool
	limit              int
	limited            bool // Limit was given: Limit(0) is a mistake, not its absence
	shared             bool
}

// TTL sets the lock's ttl: for an owned lock, how long it outlives a
// sidecar that dies (lockproxy renews it while the connection lives); for a
// detached lock, how long it lives. 0 leaves it to the sidecar's
// LOCKPROXY_DEFAULT_TTL. Times are sent in whole milliseconds, rounded up.
func TTL(d time.Duration) Option { return func(o *acquireOptions) { o.ttl = d } }

// Wait blocks Acquire up to d while someone else holds the lock, in a queue
// served in arrival order. Without it, Acquire tries once. Cancelling
// Acquire's context abandons the wait at once.
func Wait(d time.Duration) Option { return func(o *acquireOptions) { o.wait = d } }

// MaxHold caps how long an owned lock may be kept, renewals included: at
// the cap lockproxy releases it and Lost fires, even if the holder hangs
// with its connection open.
func MaxHold(d time.Duration) Option { return func(o *acquireOptions) { o.maxHold = d } }

// Detached takes a lock that is not tied to a connection: it is not
// renewed, it survives the Client, and it lives until its TTL (which must
// be given) or Release. Its Lost fires when the TTL, measured from when
// the acquire or last renewal was sent, minus a margin for clock drift,
// has run out.
func Detached() Option { return func(o *acquireOptions) { o.detached = true } }

// Limit takes one of n permits of a counting semaphore: up to n holders of
// the name at once, each with a Lock, token and fence of its own, renewed,
// released and lost one by one as a lock held alone is. Acquire reports
// ErrNotAcquired when all n are taken. Every holder must ask with the same
// n: the first holder sets it, and asking with another n, or without
// Limit, while the name is held so is refused with ErrWrongKind rather
// than let more holders in than either n allows. n must be at least 1, and
// Limit does not go with Shared; Acquire refuses both before sending
// anything.
func Limit(n int) Option {
	return func(o *acquireOptions) { o.limit, o.limited = n, true }
}

// Shared takes the read side of a read-write lock: any number of Shared
// holders at once, or one holder without Shared, the writer. The queue is
// served in arrival order across both, so a reader that comes after a
// waiting writer queues behind it (and, trying once, gets ErrNotAcquired):
// writers are not starved by a stream of readers. Asking for the name as a
// semaphore (Limit) while it is held as a read-write lock is ErrWrongKind.
func Shared() Option { return func(o *acquireOptions) { o.shared = true } }

// check refuses options that cannot work, before a connection is taken:
// a Detached lock's Lost needs its TTL known here, and the kinds lockproxy
// would refuse anyway are better told as the caller's mistake than as a
// round trip's "ERR syntax error".
func (o *acquireOptions) check() error {
	switch {
	case o.detached && o.ttl <= 0:
		return errors.New("a Detached lock needs a TTL, which is its whole life")
	case o.limited && o.shared:
		return errors.New("Limit and Shared do not go together: a name is held either as a semaphore or as a read-write lock")
	case o.limited && o.limit < 1:
		return fmt.Errorf("Limit(%d): a semaphore needs at least 1 permit", o.limit)
	}
	return nil
}

// millis formats d in whole milliseconds, rounded up.
func millis(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}

// drift is the margin by which a detached lock's validity ends before
// lockproxy's expiry could: 1ms plus 1% of the ttl, as the sidecar uses.
func drift(ttl time.Duration) time.Duration { return time.Millisecond + ttl/100 }
