// Package lockproxytest runs a lockproxy inside the test process, on its
// embedded store and a free port of 127.0.0.1, so that code which takes
// locks through lockproxy can be tested without a sidecar or a Redis.
package lockproxytest

import (
	"crypto/tls"
	"testing"

	"github.com/lockproxy/lockproxy/internal/sidecar"
)

// Option configures the server.
type Option func(*options)

type options struct {
	password string
	tls      *tls.Config
}

// WithPassword requires AUTH with password, as LOCKPROXY_PASSWORD does.
func WithPassword(password string) Option { return func(o *options) { o.password = password } }

// WithTLS serves RESP over TLS with config, as LOCKPROXY_TLS_CERT does.
func WithTLS(config *tls.Config) Option { return func(o *options) { o.tls = config } }

// Start runs a lockproxy for the test and returns its address
// ("127.0.0.1:port"). It is stopped by t.Cleanup: the waiting are answered,
// every lock is released and every connection closed.
func Start(t testing.TB, opts ...Option) string {
	t.Helper()
	addr, stop, err := StartServer(opts...)
	if err != nil {
		t.Fatalf("lockproxytest: %v", err)
	}
	t.Cleanup(stop)
	return addr
}

// StartServer runs a lockproxy until stop is called, for callers without a
// testing.TB, such as Example functions and TestMain. stop shuts it down
// as SIGTERM does, and is safe to call more than once.
func StartServer(opts ...Option) (addr string, stop func(), err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// The binary's defaults, from the same place, so that a test sees
	// what a sidecar left at its defaults does.
	cfg := sidecar.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Password = o.password
	s, err := sidecar.Start(cfg, sidecar.Options{TLS: o.tls})
	if err != nil {
		return "", nil, err
	}
	return s.Addr().String(), func() { _ = s.Shutdown() }, nil
}
