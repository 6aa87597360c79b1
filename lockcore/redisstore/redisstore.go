// Package redisstore keeps lockproxy's locks in Redis, with one atomic Lua
// script per operation. It works through go-redis's UniversalClient, so a
// single Redis, Sentinel or Cluster can back it.
//
// Each lock name uses two keys that share one hash slot: the lock key, whose
// value is the holder's token and whose TTL is the lease, and a fence key that
// remembers the last fence for a retention period. Both expire on their own,
// so the keyspace does not grow with the number of names ever used.
package redisstore

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/lockproxy/lockproxy/lockcore"
)

// DefaultRetention is how long a name's last fence is remembered after its
// lock was last used. Fences come from Redis's clock, so this only matters if
// that clock steps back; it bounds the step that is tolerated.
const DefaultRetention = time.Hour

var (
	//go:embed scripts/acquire.lua
	acquireSrc string
	//go:embed scripts/renew.lua
	renewSrc string
	//go:embed scripts/release.lua
	releaseSrc string
	//go:embed scripts/inspect.lua
	inspectSrc string
)

// Options tune a Store.
type Options struct {
	Prefix    string        // key prefix, e.g. "lock:"; must not contain '{' or '}'
	Retention time.Duration // default DefaultRetention
	// Attempts is how many times a call is sent when the connection fails
	// under it (the reply is lost). The scripts are idempotent, so repeating
	// is safe. Default 3.
	Attempts int
}

// Store is a lockcore.Store on Redis.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	retention int64 // ms
	attempts  int

	acquire, renew, release, inspect *redis.Script
}

var _ lockcore.Store = (*Store)(nil)

// New returns a Store over rdb. The Store owns rdb: Close closes it.
// rdb should have its own retries turned off (MaxRetries: -1), because the
// Store retries itself and must know when a call is a repeat.
func New(rdb redis.UniversalClient, opt Options) (*Store, error) {
	if strings.ContainsAny(opt.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: key prefix %q must not contain '{' or '}'", opt.Prefix)
	}
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 3
	}
	return &Store{
		rdb:       rdb,
		prefix:    opt.Prefix,
		retention: opt.Retention.Milliseconds(),
		attempts:  opt.Attempts,
		acquire:   redis.NewScript(acquireSrc),
		renew:     redis.NewScript(renewSrc),
		release:   redis.NewScript(releaseSrc),
		inspect:   redis.NewScript(inspectSrc),
	}, nil
}

// Keys returns the lock key and the fence key of name. Both carry the same
// hash tag, so Cluster puts them in one slot. A name containing '}' would end
// the tag early (and "}…" would make it empty, hashing each whole key apart),
// so such names are tagged with a digest of the name instead.
func (s *Store) Keys(name string) (lock, fence string) {
	if strings.IndexByte(name, '}') < 0 {
		lock = s.prefix + "{" + name + "}"
	} else {
		sum := sha256.Sum256([]byte(name))
		lock = s.prefix + "{" + hex.EncodeToString(sum[:8]) + "}" + name
	}
	return lock, lock + ":fence"
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// run sends a script, sending it again while the connection fails under it
// and ctx allows. repeat tells the caller whether the reply it got is from a
// repeat of a call that may already have run.
func (s *Store) run(ctx context.Context, sc *redis.Script, keys []string, args func(repeat bool) []any) (any, error) {
	var err error
	for i := 0; i < s.attempts; i++ {
		var v any
		v, err = sc.Run(ctx, s.rdb, keys, args(i > 0)...).Result()
		if err == nil || !lostReply(err) || ctx.Err() != nil {
			return v, err
		}
	}
	return nil, err
}

// lostReply reports whether err means the connection failed, so the command
// may or may not have run: not a Redis error reply, not our own deadline.
func lostReply(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return false // the reply may still be on its way; a repeat would race it
	}
	return true
}

// Acquire implements lockcore.Store.
func (s *Store) Acquire(ctx context.Context, name, nonce string, ttl time.Duration) (lockcore.Grant, error) {
	lk, fk := s.Keys(name)
	v, err := s.run(ctx, s.acquire, []string{lk, fk}, func(bool) []any {
		return []any{nonce, ms(ttl), s.retention}
	})
	if err != nil {
		return lockcore.Grant{}, fmt.Errorf("acquire: %w", err)
	}
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		return lockcore.Grant{}, fmt.Errorf("acquire: unexpected reply %v", v)
	}
	switch arr[0] {
	case int64(1):
		token, ok := arr[1].(string)
		if !ok {
			return lockcore.Grant{}, fmt.Errorf("acquire: unexpected token %v", arr[1])
		}
		return lockcore.Grant{Acquired: true, Token: token}, nil
	case int64(0):
		pttl, _ := arr[1].(int64)
		return lockcore.Grant{HolderTTL: time.Duration(max(pttl, 0)) * time.Millisecond}, nil
	}
	return lockcore.Grant{}, fmt.Errorf("acquire: unexpected reply %v", v)
}

// Renew implements lockcore.Store.
func (s *Store) Renew(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	lk, fk := s.Keys(name)
	v, err := s.run(ctx, s.renew, []string{lk, fk}, func(bool) []any {
		return []any{token, ms(ttl), s.retention}
	})
	if err != nil {
		return false, fmt.Errorf("renew: %w", err)
	}
	return v == int64(1), nil
}

// Release implements lockcore.Store.
func (s *Store) Release(ctx context.Context, name, token string) (bool, error) {
	lk, fk := s.Keys(name)
	v, err := s.run(ctx, s.release, []string{lk, fk}, func(repeat bool) []any {
		return []any{token, s.retention, repeatFlag(repeat)}
	})
	if err != nil {
		return false, fmt.Errorf("release: %w", err)
	}
	return v == int64(1), nil
}

func repeatFlag(repeat bool) string {
	if repeat {
		return "1"
	}
	return "0"
}

// ReleaseAll implements lockcore.Store with one pipeline, which go-redis
// splits by node on a Cluster.
func (s *Store) ReleaseAll(ctx context.Context, locks []lockcore.Held) error {
	if len(locks) == 0 {
		return nil
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, l := range locks {
			lk, fk := s.Keys(l.Name)
			s.release.EvalSha(ctx, p, []string{lk, fk}, l.Token, s.retention, "0")
		}
		return nil
	})
	if err == nil {
		return nil
	}
	// The script cache may have been flushed, or the pipeline cut: send each
	// failed one on its own, which reloads the script and repeats lost replies.
	var errs []error
	for i, c := range cmds {
		if c.Err() == nil {
			continue
		}
		if _, err := s.Release(ctx, locks[i].Name, locks[i].Token); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Inspect implements lockcore.Store.
func (s *Store) Inspect(ctx context.Context, name string) (lockcore.State, error) {
	lk, fk := s.Keys(name)
	v, err := s.run(ctx, s.inspect, []string{lk, fk}, func(bool) []any { return nil })
	if err != nil {
		return lockcore.State{}, fmt.Errorf("inspect: %w", err)
	}
	arr, ok := v.([]any)
	if !ok || len(arr) != 3 {
		return lockcore.State{}, fmt.Errorf("inspect: unexpected reply %v", v)
	}
	var st lockcore.State
	if f, ok := arr[2].(string); ok {
		st.Fence, _ = strconv.ParseInt(f, 10, 64)
	}
	if token, ok := arr[0].(string); ok {
		pttl, _ := arr[1].(int64)
		st.Held, st.Token, st.TTL = true, token, time.Duration(max(pttl, 0))*time.Millisecond
		st.Fence, _, _ = lockcore.ParseToken(token)
	}
	return st, nil
}

// Ping implements lockcore.Store.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// NewClient returns a go-redis client for a redis:// or rediss:// URL (user,
// password, db and options such as pool_size in the query). Its own retries
// are off because the Store repeats calls itself and must know when it does.
func NewClient(url string) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	// Maintenance notifications are a Redis Cloud feature; asking a plain Redis
	// for them costs a failed command on every new connection.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opt), nil
}

// Close closes the Redis client.
func (s *Store) Close() error { return s.rdb.Close() }
