// Package sidecar builds and runs one lockproxy sidecar from its
// configuration: store, lock core, command table, RESP server, metrics and
// health, and stops it in order. cmd/lockproxy and lockproxytest are both
// this, started from different configurations.
package sidecar

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/lockproxy/lockproxy/commands"
	"github.com/lockproxy/lockproxy/internal/logging"
	"github.com/lockproxy/lockproxy/lockcore"
	"github.com/lockproxy/lockproxy/lockcore/memstore"
	"github.com/lockproxy/lockproxy/lockcore/redisstore"
	"github.com/lockproxy/lockproxy/metrics"
	"github.com/lockproxy/lockproxy/resp"
)

// Options are what a Sidecar takes beyond its Config: what no variable
// can carry.
type Options struct {
	// Log receives the log, in LOCKPROXY_LOG_FORMAT at LOCKPROXY_LOG_LEVEL
	// (nil: discarded).
	Log io.Writer
	// TLS, when set, serves RESP over TLS with it, in place of the files
	// LOCKPROXY_TLS_CERT and LOCKPROXY_TLS_KEY name.
	TLS *tls.Config
}

// Sidecar is a running lockproxy.
type Sidecar struct {
	cfg   Config
	log   *slog.Logger
	store lockcore.Store
	// upstream is the store's supervision side, timed as the op health.
	upstream lockcore.Upstream
	locks    *lockcore.Locks
	srv      *resp.Server
	h        *commands.Handler
	http     *metrics.HTTPServer // nil when metrics are off
	metrics  *metrics.Metrics

	stopping   atomic.Bool // shutdown began: not ready
	upstreamUp atomic.Bool
	checked    bool // the first check ran; written by Start, then only by watchUpstream
	risksRead  bool // the upstream's settings were read; like checked
	risks      atomic.Pointer[[]string]
	persists   atomic.Pointer[string] // the upstream's Persistence, once read
	mode       string                 // LOCKPROXY_UPSTREAM_MODE as resolved; "" for the embedded store
	partial    string                 // the last check's error when only some shards failed it; like checked
	recheck    chan struct{}          // a store's hint that the upstream may have reset
	stopHealth context.CancelFunc
	healthDone chan struct{}
	closeOnce  sync.Once
}

// Start checks cfg, builds every part and serves in the background until
// Shutdown; on error it undoes what it did. The result is unnamed so that
// an error return cannot nil the a that the undo steps use.
func Start(cfg Config, opt Options) (_ *Sidecar, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logw := opt.Log
	if logw == nil {
		logw = io.Discard
	}
	a := &Sidecar{cfg: cfg, log: logging.New(logw, cfg.LogFormat, cfg.LogLevel, 0),
		healthDone: make(chan struct{}), recheck: make(chan struct{}, 1)}
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
	a.metrics = metrics.New(reg, Version())

	store, storeKind, err := a.newStore()
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { store.Close() })
	a.store = lockcore.Instrument(store, a.metrics.Upstream)
	a.upstream = lockcore.InstrumentUpstream(store, a.metrics.Upstream)

	lc := cfg.lockcoreConfig()
	lc.Observer, lc.Logger = a.metrics, a.log
	a.locks, err = lockcore.New(a.store, lc)
	if err != nil {
		return nil, err
	}
	// Shutdown stops its background work after a full start; this, after
	// a failed one.
	undo = append(undo, func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		_ = a.locks.Shutdown(ctx)
	})
	if a.h, err = a.newHandler(storeKind); err != nil {
		return nil, err
	}

	network, addr := "tcp", cfg.Listen
	hctx, cancel := context.WithCancel(context.Background())
	a.stopHealth = cancel
	undo = append(undo, cancel)
	// Before listening: /readyz is right from the first request, and the
	// Redis store grants nothing before it has seen the upstream once.
	a.checkUpstream(hctx)

	if path, ok := strings.CutPrefix(cfg.Listen, "unix:"); ok {
		network, addr = "unix", path
	}
	a.srv, err = listenRESP(cfg, opt.TLS, network, addr, a.h, resp.Options{
		Limits:         cfg.respLimits(),
		MaxClients:     cfg.MaxClients,
		WriteTimeout:   cfg.WriteTimeout,
		RequestTimeout: cfg.RequestTimeout,
		OnOpen:         a.h.OnOpen,
		OnClose:        a.h.OnClose,
		Logger:         a.log,
	})
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { a.srv.Close(context.Background()) })

	if cfg.MetricsListen != "" {
		a.http, err = metrics.Serve(cfg.MetricsListen, reg, a.Ready)
		if err != nil {
			return nil, fmt.Errorf("LOCKPROXY_METRICS_LISTEN: %w", err)
		}
	}

	go a.watchUpstream(hctx)

	attrs := []any{"version", Version(), "sidecar_id", a.locks.ID(), "listen", a.srv.Addr().String(), "store", storeKind}
	if a.mode != "" {
		// What auto resolved to.
		attrs = append(attrs, "upstream_mode", a.mode)
	}
	a.log.Info("lockproxy started", append(attrs, slog.Group("config", cfg.logAttrs()...))...)
	if storeKind == "embedded" {
		a.log.Info("using the embedded store: locks are local to this process; set LOCKPROXY_UPSTREAM to share them")
	}
	return a, nil
}

// newStore makes the store the configuration names: the embedded one, or
// Redis; kind says which, for INFO.
func (a *Sidecar) newStore() (store interface {
	lockcore.Store
	lockcore.Upstream
}, kind string, err error) {
	cfg := a.cfg
	if cfg.Upstream == "" {
		return memstore.New(memstore.Options{}), "embedded", nil
	}
	// go-redis's logger is one for the whole process, as the sidecar is:
	// set here, where that sidecar is wired, not by a library.
	redis.SetLogger(redisLog{a.log})
	rdb, mode, err := upstreamClient(cfg, a.log)
	if err != nil {
		return nil, "", err
	}
	a.mode = mode
	rs, err := redisstore.New(rdb, redisstore.Options{
		Prefix: cfg.KeyPrefix, Logger: a.log, Guard: true, OnReset: a.pokeCheck, ReplicaAcks: cfg.ReplicaAcks,
		BatchMax: cfg.UpstreamBatch})
	if err != nil {
		rdb.Close()
		return nil, "", err
	}
	return rs, "redis", nil
}

// newHandler makes the command table over the sidecar's locks.
func (a *Sidecar) newHandler(storeKind string) (*commands.Handler, error) {
	cfg := a.cfg
	return commands.New(a.locks, commands.Config{
		MinTTL:        cfg.MinTTL,
		MaxTTL:        cfg.MaxTTL,
		MaxWait:       cfg.MaxWait,
		MaxNameBytes:  cfg.MaxNameBytes,
		MaxLimit:      cfg.MaxLimit,
		Password:      cfg.Password,
		AdminPassword: cfg.AdminPassword,
		Version:       Version(),
		Store:         storeKind,
		UpstreamUp:    a.upstreamUp.Load,
		UpstreamRisks: func() []string {
			if r := a.risks.Load(); r != nil {
				return *r
			}
			return nil
		},
		UpstreamPersistence: func() string {
			if p := a.persists.Load(); p != nil {
				return *p
			}
			return ""
		},
		ReplicaAcks: cfg.ReplicaAcks,
		Observer:    a.metrics,
		Logger:      a.log,
	})
}

// Addr is the RESP listen address.
func (a *Sidecar) Addr() net.Addr { return a.srv.Addr() }

// MetricsAddr is the HTTP address, or nil when metrics are off.
func (a *Sidecar) MetricsAddr() net.Addr {
	if a.http == nil {
		return nil
	}
	return a.http.Addr()
}

// Logger is the sidecar's log, for its owner's own lines.
func (a *Sidecar) Logger() *slog.Logger { return a.log }

// Ready is /readyz: nil while serving and the upstream answered its last
// health check (not a PING: see checkUpstream).
func (a *Sidecar) Ready() error {
	if a.stopping.Load() {
		return errors.New("shutting down")
	}
	if !a.upstreamUp.Load() {
		return errors.New("upstream does not answer its health check")
	}
	return nil
}

// watchUpstream checks the upstream every check interval until ctx ends,
// and every recheckGap while it is down, so that grants go on soon after it
// is back.
func (a *Sidecar) watchUpstream(ctx context.Context) {
	defer close(a.healthDone)
	interval := a.locks.Config().CheckInterval
	t := time.NewTimer(interval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.recheck:
			// Pokes come from acquires, as fast as clients retry: while the
			// upstream is down or unchecked, check at most every 100 ms.
			if wait := time.Until(last.Add(recheckGap)); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		a.checkUpstream(ctx)
		next := interval
		if !a.upstreamUp.Load() {
			next = recheckGap
		}
		t.Reset(next)
	}
}

// recheckGap is the least time between two health checks asked for by
// acquires that found the upstream changed or unchecked.
const recheckGap = 100 * time.Millisecond

// pokeCheck asks watchUpstream to check now. It never blocks: one pending
// poke is enough.
func (a *Sidecar) pokeCheck() {
	select {
	case a.recheck <- struct{}{}:
	default:
	}
}

// checkUpstream asks the store who it is (lockcore.Locks.CheckUpstream:
// a restart or failover there loses every lock held through it and starts
// the quiet period), for /readyz, the lockproxy_upstream_up gauge, and a
// log line at start and at each change. The first time the upstream
// answers, it also reads the upstream's settings that can lose locks.
func (a *Sidecar) checkUpstream(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := a.locks.CheckUpstream(pctx, a.upstream)
	if ctx.Err() != nil {
		return
	}
	// A Cluster with one shard down serves the names in the others.
	up := err == nil || errors.Is(err, lockcore.ErrSomeShards)
	partial := ""
	if err != nil && up {
		partial = err.Error()
	}
	if partial != a.partial {
		if partial != "" {
			a.log.Warn("some shards of the upstream could not be checked: names in their slots may not be granted", "err", err)
		} else if a.partial != "" {
			a.log.Info("every shard of the upstream answered its check")
		}
		a.partial = partial
	}
	// The embedded store has no upstream to come and go: nothing to log.
	if was := a.upstreamUp.Swap(up); (was != up || !a.checked) && a.cfg.Upstream != "" {
		if up {
			a.log.Info("upstream is up")
		} else {
			a.log.Error("upstream is down", "err", err)
		}
	}
	a.checked = true
	a.metrics.UpstreamUp(up)
	if ok, failing := a.locks.ShardsChecked(); ok+failing > 0 {
		a.metrics.UpstreamShards(ok, failing)
	}
	a.metrics.QuietLeft(a.locks.QuietLeft())
	if up && !a.risksRead {
		a.readRisks(pctx)
	}
}

// readRisks warns about upstream settings that can lose locks, and shows
// them in INFO and lockproxy_upstream_risk.
func (a *Sidecar) readRisks(ctx context.Context) {
	risks, err := a.upstream.Risks(ctx)
	if err != nil {
		a.log.Warn("could not read the upstream's settings; will try again", "err", err)
		return
	}
	persistence, err := a.upstream.Persistence(ctx)
	if err != nil {
		a.log.Warn("could not read the upstream's persistence; will try again", "err", err)
		return
	}
	a.persists.Store(&persistence)
	a.metrics.UpstreamDurability(persistence, a.cfg.ReplicaAcks)
	a.risksRead = true
	kinds := make([]string, 0, len(risks))
	for _, r := range risks {
		kinds = append(kinds, r.Kind)
		a.log.Warn("the upstream can lose locks", "risk", r.Kind, "detail", r.Detail)
	}
	a.risks.Store(&kinds)
	a.metrics.UpstreamRisks(kinds)
	a.logRestartCost(kinds, persistence)
}

// Shutdown stops in order, within LOCKPROXY_SHUTDOWN_TIMEOUT: not ready,
// stop accepting, answer the waiting, close each connection and then
// release its locks, close the upstream, stop HTTP. A second call does
// nothing and returns nil.
func (a *Sidecar) Shutdown() error {
	var err error
	a.closeOnce.Do(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		held := a.locks.Stats().Held
		a.log.Info("shutting down", "locks_held", held, "timeout", a.cfg.ShutdownTimeout)
		a.stopping.Store(true)
		// One upstream call's worth of the budget is kept for releasing.
		err = errors.Join(err, a.h.Shutdown(ctx, a.srv, min(a.cfg.UpstreamTimeout, a.cfg.ShutdownTimeout/2)))
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

// redactURL hides a URL's password for logs: the userinfo's, and the
// query's password= that a Sentinel URL may carry instead.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return s
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// logRestartCost says, in one line, what a restart or failover of the
// upstream would cost under the current settings. The embedded store lives
// and dies with the process: it has no upstream to say this of.
func (a *Sidecar) logRestartCost(risks []string, persistence string) {
	if a.cfg.Upstream == "" {
		return
	}
	durability := []any{"persistence", persistence, "replica_acks", a.cfg.ReplicaAcks}
	pause := (a.cfg.CheckInterval + 100*time.Millisecond).String()
	loss := "grants stop until the longest lease granted could have run out (at most " + a.cfg.quietPeriod().String() + ")"
	if a.cfg.QuietPeriod.set {
		loss = "grants stop for LOCKPROXY_QUIET_PERIOD (" + a.cfg.quietPeriod().String() + ")"
	}
	if slices.Contains(risks, "no_persistence") {
		a.log.Warn("a restart of this upstream loses every lock (it has no persistence): every holder is told, and "+loss,
			append(durability, "failover_that_kept_the_data", "locks kept, grants pause "+pause)...)
		return
	}
	crash := "a crash may lose the last writes"
	if persistence == "aof-always" {
		crash = "a crash too keeps every acknowledged lock"
	}
	failover := "a failover may lose the last writes"
	if a.cfg.ReplicaAcks > 0 {
		failover = "a failover to a replica that confirmed them keeps every acknowledged lock"
	}
	a.log.Info("a restart or failover of this upstream that keeps its data keeps every lock, and grants pause "+pause+
		"; one that loses data tells every holder, and "+loss+"; "+crash+"; "+failover, durability...)
}
