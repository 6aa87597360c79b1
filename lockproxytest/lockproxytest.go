// Package lockproxytest runs a lockproxy inside the test process, on its
// embedded store and a free port of 127.0.0.1, so that code which takes
// locks through lockproxy can be tested without a sidecar or a Redis.
package lockproxytest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/commands"
	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
	"github.com/lockproxy/lockproxy/resp"
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
	// The sidecar's limits (cmd/lockproxy's Config); the rest are the
	// packages' own defaults, which are the sidecar's.
	store := memstore.New(memstore.Options{})
	locks, err := lockcore.New(store, lockcore.Config{
		MaxLocksPerSession: 1000,
		MaxWaitersPerName:  1000,
		MaxDetached:        10000,
	})
	if err != nil {
		store.Close()
		return "", nil, err
	}
	h := commands.New(locks, commands.Config{
		Password:   o.password,
		Version:    "lockproxytest",
		Store:      "embedded",
		UpstreamUp: func() bool { return true },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close()
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	if o.tls != nil {
		ln = tls.NewListener(ln, o.tls)
	}
	srv := resp.Serve(ln, h, resp.Options{
		RequestTimeout: 10 * time.Second,
		OnOpen:         h.OnOpen,
		OnClose:        h.OnClose,
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = h.Shutdown(ctx, srv, 2*time.Second)
			_ = store.Close()
		})
	}
	return srv.Addr().String(), stop, nil
}
