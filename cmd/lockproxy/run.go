package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lockproxy/lockproxy/commands"
	"github.com/lockproxy/lockproxy/internal/logging"
	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
	"github.com/lockproxy/lockproxy/metrics"
	"github.com/lockproxy/lockproxy/resp"
)

// run is lockproxy's whole life: configure, serve until ctx ends, shut
// down in order. started, if not nil, is called once it serves.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer, started func(*app)) error {
	fs := flag.NewFlagSet("lockproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { printHelp(stdout) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, "lockproxy", metrics.Version())
		return nil
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	a, err := start(cfg, stderr)
	if err != nil {
		return err
	}
	if started != nil {
		started(a)
	}
	<-ctx.Done()
	return a.shutdown()
}

// app is a running lockproxy.
type app struct {
	cfg     Config
	log     *slog.Logger
	store   lockcore.Store
	locks   *lockcore.Locks
	srv     *resp.Server
	http    *metrics.HTTPServer // nil when metrics are off
	metrics *metrics.Metrics

	stopping   atomic.Bool // shutdown began: not ready
	upstreamUp atomic.Bool
	checked    bool // the first check ran; written by start, then only by watchUpstream
	stopHealth context.CancelFunc
	healthDone chan struct{}
	closeOnce  sync.Once
}

// start builds and starts every part; on error it undoes what it did.
func start(cfg Config, logw io.Writer) (a *app, err error) {
	a = &app{cfg: cfg, log: logging.New(logw, cfg.LogFormat, cfg.LogLevel, 0), healthDone: make(chan struct{})}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = metrics.New(reg)

	storeKind := "embedded"
	var store lockcore.Store
	if cfg.Upstream == "" {
		store = memstore.New(memstore.Options{})
	} else {
		storeKind = "redis"
		rdb, err := redisstore.NewClient(cfg.Upstream)
		if err != nil {
			return nil, fmt.Errorf("LOCKPROXY_UPSTREAM: %w", err)
		}
		if store, err = redisstore.New(rdb, redisstore.Options{Prefix: cfg.KeyPrefix, Logger: a.log}); err != nil {
			rdb.Close()
			return nil, err
		}
	}
	undo = append(undo, func() { store.Close() })
	a.store = lockcore.Instrument(store, a.metrics.Upstream)

	a.locks = lockcore.New(a.store, lockcore.Config{
		DefaultTTL:    cfg.DefaultTTL,
		RenewFraction: cfg.RenewFraction,
		Retry: lockcore.Backoff{Base: cfg.RetryBase, Multiplier: cfg.RetryMultiplier,
			Max: cfg.RetryMax, Jitter: cfg.RetryJitter},
		MaxLocksPerSession: cfg.MaxLocksPerConn,
		MaxWaitersPerName:  cfg.MaxWaitersPerName,
		MaxHold:            cfg.MaxHold,
		UpstreamTimeout:    cfg.UpstreamTimeout,
		WaiterTTL:          cfg.WaiterTTL,
		Observer:           a.metrics,
		Logger:             a.log,
	})
	h := commands.New(a.locks, commands.Config{
		MaxTTL:       cfg.MaxTTL,
		MaxWait:      cfg.MaxWait,
		MaxNameBytes: cfg.MaxNameBytes,
		Password:     cfg.Password,
		Version:      metrics.Version(),
		Store:        storeKind,
		UpstreamUp:   a.upstreamUp.Load,
		Observer:     a.metrics,
		Logger:       a.log,
	})
	network, addr := "tcp", cfg.Listen
	if path, ok := strings.CutPrefix(cfg.Listen, "unix:"); ok {
		network, addr = "unix", path
	}
	a.srv, err = resp.Listen(network, addr, h, resp.Options{
		Limits: resp.Limits{MaxArgs: cfg.MaxArgs, MaxBulkBytes: cfg.MaxBulkBytes,
			MaxInlineBytes: cfg.MaxInlineBytes, MaxQueryBytes: cfg.MaxQueryBytes},
		MaxClients:     cfg.MaxClients,
		WriteTimeout:   cfg.WriteTimeout,
		RequestTimeout: cfg.RequestTimeout,
		OnOpen:         h.OnOpen,
		OnClose:        h.OnClose,
		Logger:         a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("LOCKPROXY_LISTEN: %w", err)
	}
	undo = append(undo, func() { a.srv.Close(context.Background()) })

	if cfg.MetricsListen != "" {
		a.http, err = metrics.Serve(cfg.MetricsListen, reg, a.ready)
		if err != nil {
			return nil, fmt.Errorf("LOCKPROXY_METRICS_LISTEN: %w", err)
		}
	}

	hctx, cancel := context.WithCancel(context.Background())
	a.stopHealth = cancel
	a.checkUpstream(hctx) // so /readyz is right from the first request
	go a.watchUpstream(hctx)

	a.log.Info("lockproxy started", "version", metrics.Version(), "listen", a.srv.Addr().String(),
		"store", storeKind, slog.Group("config", cfg.logAttrs()...))
	if storeKind == "embedded" {
		a.log.Info("using the embedded store: locks are local to this process; set LOCKPROXY_UPSTREAM to share them")
	}
	return a, nil
}

// Addr is the RESP listen address.
func (a *app) Addr() net.Addr { return a.srv.Addr() }

// MetricsAddr is the HTTP address, or nil when metrics are off.
func (a *app) MetricsAddr() net.Addr {
	if a.http == nil {
		return nil
	}
	return a.http.Addr()
}

// ready is /readyz: serving, and the upstream answers.
func (a *app) ready() error {
	if a.stopping.Load() {
		return errors.New("shutting down")
	}
	if !a.upstreamUp.Load() {
		return errors.New("upstream does not answer PING")
	}
	return nil
}

// watchUpstream checks the upstream every second until ctx ends.
func (a *app) watchUpstream(ctx context.Context) {
	defer close(a.healthDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.checkUpstream(ctx)
		}
	}
}

// checkUpstream pings the store, for /readyz, the lockproxy_upstream_up
// gauge, and a log line at start and at each change.
func (a *app) checkUpstream(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	err := a.store.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	up := err == nil
	if was := a.upstreamUp.Swap(up); was != up || !a.checked {
		if up {
			a.log.Info("upstream is up")
		} else {
			a.log.Error("upstream is down", "err", err)
		}
	}
	a.checked = true
	a.metrics.UpstreamUp(up)
}

// shutdown stops in order, within the shutdown timeout: not ready, stop
// accepting, answer the waiting and release every lock, close connections,
// close the upstream, stop HTTP.
func (a *app) shutdown() error {
	var err error
	a.closeOnce.Do(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		held := a.locks.Stats().Held
		a.log.Info("shutting down", "locks_held", held, "timeout", a.cfg.ShutdownTimeout)
		a.stopping.Store(true)
		a.srv.StopAccepting()
		err = errors.Join(err, a.locks.Shutdown(ctx))
		err = errors.Join(err, a.srv.Close(ctx))
		a.stopHealth()
		<-a.healthDone
		err = errors.Join(err, a.store.Close())
		if a.http != nil {
			err = errors.Join(err, a.http.Shutdown(ctx))
		}
		a.log.Info("stopped", "released", held, "took", time.Since(start).Round(time.Millisecond), "err", err)
	})
	return err
}

// redactURL hides a URL's password for logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return s
	}
	return u.Redacted()
}
