package redisstore

import (
	"errors"
	"net/url"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// NewClient returns a go-redis client for a redis:// or rediss:// URL (user,
// password, db and options such as pool_size in the query). Its own retries
// are off because the Store repeats calls itself and must know when it does.
// Each tune adjusts the options parsed from the URL, for what a URL cannot
// carry, such as the CA and client certificate in a rediss:// URL's
// TLSConfig; it runs before the settings the Store depends on, so it cannot
// undo them.
func NewClient(url string, tune ...func(*redis.Options)) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	for _, f := range tune {
		f(opt)
	}
	storeSettings(&opt.MaxRetries, &opt.ContextTimeoutEnabled)
	// Maintenance notifications are a Redis Cloud feature; asking a plain Redis
	// for them costs a failed command on every new connection.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(opt), nil
}

// NewFailoverClient returns a go-redis client that asks Redis Sentinels
// where the primary of a master set is, and follows it when they fail it
// over. url is read by ParseFailoverURL. Each tune adjusts the options, for
// what a URL cannot carry: the Sentinels' own credentials, the CA and client
// certificate in the TLSConfig (one for the Sentinels and the data nodes
// alike: go-redis has no other). As for NewClient, tunes run before the
// settings the Store depends on, which are the same. (go-redis turns
// maintenance notifications off for a failover client by itself: it has no
// option for them.)
func NewFailoverClient(url string, tune ...func(*redis.FailoverOptions)) (redis.UniversalClient, error) {
	opt, err := ParseFailoverURL(url)
	if err != nil {
		return nil, err
	}
	for _, f := range tune {
		f(opt)
	}
	storeSettings(&opt.MaxRetries, &opt.ContextTimeoutEnabled)
	return redis.NewFailoverClient(opt), nil
}

// storeSettings are what the Store depends on, in whichever client: go-redis's
// own retries off (-1), since the Store repeats a call itself and must know
// when it does; and the context's deadline on each call's socket, so that an
// upstream call ends with the command that made it. (Dial retries stay at
// go-redis's five: each failed dial counts towards its pool's breaker, which,
// once a pool size of them have failed, answers every dial with the last
// error until a background dial, once a second, succeeds; fewer tries per
// dial trip it sooner, and keep a sidecar failing for up to a second after
// its upstream is back.)
func storeSettings(maxRetries *int, contextTimeout *bool) {
	*maxRetries = -1
	*contextTimeout = true
}

// ParseFailoverURL reads go-redis's failover URL form,
//
//	redis[s]://[user:pass@]sentinel1:26379[/db]?master_name=NAME&addr=sentinel2:26379&addr=sentinel3:26379
//
// with go-redis's query options, and one change of meaning: the userinfo is
// the data nodes' credentials (Username, Password: the primary's and the
// replicas'), as in a single-Redis URL for NewClient, where go-redis's
// ParseFailoverURL takes it as the Sentinels'. So moving an upstream from one
// Redis behind a fixed address to Sentinels does not change what the password
// in its URL is for. The query's username= and password= may give the data
// nodes' credentials instead, but only when the userinfo has none. The
// Sentinels' own credentials (SentinelUsername, SentinelPassword) are left
// empty: Sentinels without auth, or one set by a tune.
//
// A rediss:// URL's TLSConfig checks each server against the host it dials,
// not against the first Sentinel's name as go-redis sets it: the same
// TLSConfig serves every Sentinel and the data nodes the Sentinels name.
//
// The options that would send the Store's writes to replicas (replica_only)
// or that NewFailoverClient does not take (route_by_latency,
// route_randomly: they are for go-redis's failover Cluster client) are
// refused, as is a URL without master_name or without the first Sentinel's
// port (go-redis would take Redis's 6379, not Sentinel's 26379).
func ParseFailoverURL(rawURL string) (*redis.FailoverOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	if q.Get("master_name") == "" {
		return nil, errors.New("redisstore: a Sentinel URL needs master_name=, the master set the Sentinels watch")
	}
	if u.Port() == "" {
		// go-redis would take 6379, a data node's port, not a Sentinel's.
		return nil, errors.New("redisstore: a Sentinel URL's host needs its port, usually 26379")
	}
	for _, name := range []string{"replica_only", "route_by_latency", "route_randomly"} {
		if q.Has(name) {
			return nil, errors.New("redisstore: " + name + "= is not supported: the Store writes, so every call goes to the primary")
		}
	}
	opt, err := redis.ParseFailoverURL(rawURL)
	if err != nil {
		return nil, err
	}
	// go-redis puts the userinfo in the Sentinel fields, and the query's
	// username= and password= in the data fields.
	if opt.SentinelUsername != "" || opt.SentinelPassword != "" {
		if opt.Username != "" || opt.Password != "" {
			return nil, errors.New("redisstore: the data nodes' credentials are given twice, in the URL's user:pass@ and in its username= or password=: give them once")
		}
		opt.Username, opt.Password = opt.SentinelUsername, opt.SentinelPassword
		opt.SentinelUsername, opt.SentinelPassword = "", ""
	}
	if opt.TLSConfig != nil {
		// Empty, crypto/tls checks each connection's certificate against
		// the host it dials.
		opt.TLSConfig.ServerName = ""
	}
	return opt, nil
}
