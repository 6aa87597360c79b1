package lockclient

import (
	"crypto/tls"
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

// millis formats d in whole milliseconds, rounded up.
func millis(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}

// drift is the margin by which a detached lock's validity ends before
// lockproxy's expiry could: 1ms plus 1% of the ttl, as the sidecar uses.
func drift(ttl time.Duration) time.Duration { return time.Millisecond + ttl/100 }
