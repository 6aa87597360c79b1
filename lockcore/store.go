package lockcore

import (
	"context"
	"time"
)

// Store keeps lock records. Every method must be atomic, and idempotent per
// token: a call repeated after a lost reply has the same effect as one call.
//
// A token is "<fence>:<nonce>". Renew and Release also accept a nonce-only
// token ":<nonce>", which matches whatever fence the store assigned to that
// nonce; the session uses it to clean up after an acquire whose reply was
// lost and whose fence it therefore never learned.
type Store interface {
	// Acquire takes name for ttl when it is free. When name is already held
	// under nonce (a retried call), it resets the ttl and returns the same
	// token. When someone else holds it, Grant.Acquired is false and
	// Grant.HolderTTL says how long their lease has left.
	Acquire(ctx context.Context, name, nonce string, ttl time.Duration) (Grant, error)
	// Renew sets the ttl of name to ttl from now if token holds it.
	Renew(ctx context.Context, name, token string, ttl time.Duration) (bool, error)
	// Release frees name if token holds it.
	Release(ctx context.Context, name, token string) (bool, error)
	// ReleaseAll frees each named lock that its token holds, in as few round
	// trips as the store allows. It is used when a connection closes.
	ReleaseAll(ctx context.Context, locks []Held) error
	// Inspect reports who holds name, without changing anything.
	Inspect(ctx context.Context, name string) (State, error)
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources. Leases in it are left to expire.
	Close() error
}

// Held names a lease by its lock name and token.
type Held struct {
	Name  string
	Token string
}

// Grant is the outcome of Store.Acquire.
type Grant struct {
	Acquired  bool
	Token     string        // set when Acquired
	HolderTTL time.Duration // when not Acquired: the current holder's time left
}

// State is what Store.Inspect sees of one name.
type State struct {
	Held  bool
	Token string // the holder's token, when Held; never shown to clients
	// Fence is the holder's fence when Held, otherwise the last fence issued
	// for the name while the store still remembers it, or 0.
	Fence int64
	TTL   time.Duration // time left when Held
}
