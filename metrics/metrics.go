// Package metrics defines lockproxy's Prometheus metrics and serves them,
// with the health probes, over HTTP. Metrics go to an injected registry,
// never the global one, and carry no lock name or token as a label.
package metrics

import (
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// buckets span 100µs to about 60s: hand-offs are sub-millisecond, waits
// and holds can last minutes.
var buckets = prometheus.ExponentialBucketsRange(0.0001, 60, 16)

// Metrics records lockproxy's figures. Its methods satisfy the observer
// interfaces of lockcore and commands.
type Metrics struct {
	acquire     *prometheus.CounterVec
	release     *prometheus.CounterVec
	renew       *prometheus.CounterVec
	autoRenew   *prometheus.CounterVec
	lost        prometheus.Counter
	held        prometheus.Gauge
	heldByKind  *prometheus.GaugeVec
	waiters     prometheus.Gauge
	detached    prometheus.Gauge
	handoffs    *prometheus.CounterVec
	connections prometheus.Gauge
	acquireWait prometheus.Histogram
	hold        prometheus.Histogram
	upstream    *prometheus.HistogramVec
	upstreamUp  prometheus.Gauge
	shards      *prometheus.GaugeVec
	risk        *prometheus.GaugeVec
	durability  *prometheus.GaugeVec
	quiet       prometheus.Gauge
	buildInfo   *prometheus.GaugeVec
}

// HandOffKinds are the values of lockproxy_handoffs_total's how label
// (lockcore.HandOffKinds, which this package may not import).
var HandOffKinds = []string{"local", "local_ahead", "upstream", "remote"}

// LockKinds are the values of lockproxy_locks_held_by_kind's kind label
// (lockcore.Kind.Mode's).
var LockKinds = []string{"exclusive", "shared", "semaphore"}

// RiskKinds are the values of lockproxy_upstream_risk's kind label.
var RiskKinds = []string{"eviction", "no_persistence", "unknown"}

// New registers lockproxy's metrics with reg; version is the build's, for
// lockproxy_build_info.
func New(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		acquire: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockproxy_acquire_total", Help: "LOCK.ACQUIRE calls by result: acquired, timeout (held by someone else) or error.",
		}, []string{"result"}),
		release: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockproxy_release_total", Help: "LOCK.RELEASE calls by result: released, not_held or error.",
		}, []string{"result"}),
		renew: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockproxy_renew_total", Help: "LOCK.RENEW calls by result: renewed, not_held or error.",
		}, []string{"result"}),
		autoRenew: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockproxy_auto_renew_total", Help: "Background renewals of owned locks by result: ok, lost or error.",
		}, []string{"result"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockproxy_locks_lost_total", Help: "Owned locks lost: not renewed before their validity ran out, or gone upstream.",
		}),
		heldByKind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockproxy_locks_held_by_kind", Help: "Locks held by this sidecar's connections, by kind: exclusive (one holder, or a read-write lock's writer), shared (a reader) or semaphore (a permit). They add up to lockproxy_locks_held.",
		}, []string{"kind"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockproxy_locks_held", Help: "Locks held by this sidecar's connections.",
		}),
		detached: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockproxy_detached_locks", Help: "DETACHED locks granted through this sidecar that may still be held, whether or not their connection is open (bounded by LOCKPROXY_MAX_DETACHED).",
		}),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockproxy_waiters", Help: "LOCK.ACQUIRE calls blocked in WAIT.",
		}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockproxy_handoffs_total", Help: "Locks passed by a release straight to a waiter of this sidecar, by how: local (no round trip on the waiter's path), local_ahead (the same, to a waiter not known to be first: possibly ahead of an earlier waiter on another sidecar, as LOCKPROXY_LOCAL_HANDOFFS allows), upstream (by the release script) or remote (by a release on another sidecar, through a wake message).",
		}, []string{"how"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockproxy_connections", Help: "Open client connections.",
		}),
		acquireWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lockproxy_acquire_wait_seconds", Help: "Time LOCK.ACQUIRE took, waiting included.", Buckets: buckets,
		}),
		hold: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lockproxy_hold_seconds", Help: "How long locks were held, until released or lost.", Buckets: buckets,
		}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lockproxy_upstream_seconds", Help: "Upstream call latency by operation.", Buckets: buckets,
		}, []string{"op"}),
		upstreamUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockproxy_upstream_up", Help: "1 when the upstream answered its last health check, else 0.",
		}),
		shards: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockproxy_upstream_shards", Help: "On a Redis Cluster upstream: its shards by state at the last health check, ok (checked) or failing (not answering, or failing over: no lock is granted in its slots meanwhile).",
		}, []string{"state"}),
		risk: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockproxy_upstream_risk", Help: "1 when the upstream has a setting that can lose locks: eviction (maxmemory-policy is not noeviction), no_persistence (neither RDB nor AOF), unknown (CONFIG refused).",
		}, []string{"kind"}),
		durability: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockproxy_upstream_durability", Help: "Always 1; its labels say what keeps acknowledged locks: the upstream's persistence (aof-always, aof-everysec, aof-no, rdb, none, unknown, embedded) and LOCKPROXY_REPLICA_ACKS.",
		}, []string{"persistence", "replica_acks"}),
		quiet: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockproxy_quiet_period_seconds", Help: "What is left of the quiet period after an upstream restart or failover, during which no lock is granted; 0 when none runs.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockproxy_build_info", Help: "Always 1; its labels say which build is running.",
		}, []string{"version", "go_version"}),
	}
	reg.MustRegister(m.acquire, m.release, m.renew, m.autoRenew, m.lost, m.held, m.heldByKind, m.waiters, m.detached, m.handoffs, m.connections,
		m.acquireWait, m.hold, m.upstream, m.upstreamUp, m.shards, m.risk, m.durability, m.quiet, m.buildInfo)
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	// Show every result from the start, so rate() works before the first event.
	for _, r := range []string{"acquired", "timeout", "error"} {
		m.acquire.WithLabelValues(r)
	}
	for _, r := range []string{"released", "not_held", "error"} {
		m.release.WithLabelValues(r)
	}
	for _, r := range []string{"renewed", "not_held", "error"} {
		m.renew.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "lost", "error"} {
		m.autoRenew.WithLabelValues(r)
	}
	for _, h := range HandOffKinds {
		m.handoffs.WithLabelValues(h)
	}
	for _, k := range LockKinds {
		m.heldByKind.WithLabelValues(k)
	}
	for _, k := range RiskKinds {
		m.risk.WithLabelValues(k)
	}
	return m
}

// Acquire records one LOCK.ACQUIRE.
func (m *Metrics) Acquire(result string, waited time.Duration) {
	m.acquire.WithLabelValues(result).Inc()
	m.acquireWait.Observe(waited.Seconds())
}

// Release records one LOCK.RELEASE.
func (m *Metrics) Release(result string) { m.release.WithLabelValues(result).Inc() }

// Renew records one LOCK.RENEW.
func (m *Metrics) Renew(result string) { m.renew.WithLabelValues(result).Inc() }

// ConnectionsChanged moves the connection gauge.
func (m *Metrics) ConnectionsChanged(delta int) { m.connections.Add(float64(delta)) }

// LeaseStarted counts a lock of kind now held.
func (m *Metrics) LeaseStarted(kind string) {
	m.held.Inc()
	m.heldByKind.WithLabelValues(kind).Inc()
}

// LeaseEnded counts a lock of kind no longer held.
func (m *Metrics) LeaseEnded(kind string, held time.Duration, lost bool) {
	m.held.Dec()
	m.heldByKind.WithLabelValues(kind).Dec()
	m.hold.Observe(held.Seconds())
	if lost {
		m.lost.Inc()
	}
}

// AutoRenewed records one background renewal.
func (m *Metrics) AutoRenewed(result string) { m.autoRenew.WithLabelValues(result).Inc() }

// WaitersChanged moves the waiter gauge.
func (m *Metrics) WaitersChanged(delta int) { m.waiters.Add(float64(delta)) }

// DetachedChanged moves the detached-locks gauge.
func (m *Metrics) DetachedChanged(delta int) { m.detached.Add(float64(delta)) }

// HandedOff counts one hand-off to a waiter, by how.
func (m *Metrics) HandedOff(how string) { m.handoffs.WithLabelValues(how).Inc() }

// Upstream records one upstream call.
func (m *Metrics) Upstream(op string, took time.Duration) {
	m.upstream.WithLabelValues(op).Observe(took.Seconds())
}

// UpstreamShards records how many shards of a Cluster upstream answered
// the last check, and how many did not.
func (m *Metrics) UpstreamShards(ok, failing int) {
	m.shards.WithLabelValues("ok").Set(float64(ok))
	m.shards.WithLabelValues("failing").Set(float64(failing))
}

// UpstreamUp records whether the upstream answers.
func (m *Metrics) UpstreamUp(up bool) {
	if up {
		m.upstreamUp.Set(1)
	} else {
		m.upstreamUp.Set(0)
	}
}

// UpstreamRisks records the upstream's risky settings, by kind.
func (m *Metrics) UpstreamRisks(kinds []string) {
	for _, k := range RiskKinds {
		m.risk.WithLabelValues(k).Set(0)
	}
	for _, k := range kinds {
		m.risk.WithLabelValues(k).Set(1)
	}
}

// UpstreamDurability records what keeps acknowledged locks.
func (m *Metrics) UpstreamDurability(persistence string, replicaAcks int) {
	m.durability.Reset()
	m.durability.WithLabelValues(persistence, strconv.Itoa(replicaAcks)).Set(1)
}

// QuietLeft records what is left of the quiet period.
func (m *Metrics) QuietLeft(d time.Duration) { m.quiet.Set(d.Seconds()) }
