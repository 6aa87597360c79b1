//go:build linux

package faults

import (
	"testing"
)

// TestFaults runs every scenario in turn (they measure time, so they do
// not share the machine with each other) and reports them in one table.
func TestFaults(t *testing.T) {
	rep := &report{}
	defer rep.publish(t)
	for _, s := range []struct {
		name, fault string
		run         func(*testing.T, *row)
	}{
		{"client-killed", "client process SIGKILL mid-hold and mid-wait", clientKilled},
		{"client-paused", "client process SIGSTOP past its ttl, without and with MAXHOLD", clientPaused},
		{"permit-holders", "semaphore and read-lock holders: process SIGKILL mid-hold, SIGSTOP with MAXHOLD, under load", permitHolders},
		{"sidecar-sigterm", "sidecar SIGTERM holding 1,000 locks", sidecarTerm},
		{"sidecar-killed", "sidecar SIGKILL", sidecarKilled},
		{"sidecar-stopped", "sidecar SIGSTOP past the ttl, then SIGCONT", sidecarStopped},
		{"upstream-restart", "upstream SIGKILL and restart (no persistence)", upstreamRestart},
		{"upstream-paused", "upstream SIGSTOP past the ttl, then SIGCONT", upstreamPaused},
		{"latency", "upstream latency, round trip 0.5–2× ttl", latency},
		{"partition-frozen", "partition: frozen (black hole)", partitionFrozen},
		{"partition-refused", "partition: refused (resets, new connections refused)", partitionRefused},
		{"partition-reset", "partition: every upstream connection reset", partitionReset},
		{"partition-frozen-starved", "partition: frozen, CPUs hogged, holder pipelining RENEW/INFO/HELD", frozenStarved},
		{"renew-behind-renewal", "partition: frozen, LOCK.RENEW while the background renewal waits (ttl 10s)", renewBehindRenewal},
		{"reply-lost", "replies lost after the script ran", replyLost},
		{"reply-lost-local-handoffs", "replies lost after the script ran, LOCKPROXY_LOCAL_HANDOFFS=2", replyLostLocalHandoffs},
		{"eviction", "upstream maxmemory 2mb, allkeys-lru, filled", evictionEpoch},
		{"eviction-per-lock", "upstream maxmemory 2mb, volatile-lru (epoch key spared), filled", evictionPerLock},
		{"restart-aof", "upstream restarted cleanly, AOF everysec", restartAOF},
		{"restart-rdb", "upstream restarted cleanly, RDB", restartRDB},
		{"kill9-aof-always", "upstream kill -9, appendfsync always", kill9AOFAlways},
		{"kill9-empty", "upstream kill -9 without persistence, 2s ttls", kill9Empty},
		{"data-lost-sidecar-down", "upstream loses its data while a sidecar is down", dataLostSidecarDown},
		{"sentinel-failover", "SENTINEL FAILOVER under load, REPLICA_ACKS=0", sentinelFailoverAcks0},
		{"sentinel-failover-acks", "SENTINEL FAILOVER under load, REPLICA_ACKS=1", sentinelFailoverAcks1},
		{"sentinel-failover-acks-all", "SENTINEL FAILOVER under load, REPLICA_ACKS=2 (every replica)", sentinelFailoverAcks2},
		{"sentinel-kill-primary", "kill -9 of the Sentinel primary, REPLICA_ACKS=1", sentinelKillPrimary},
		{"split-brain-acks", "split brain: old primary cut off from sentinels and replicas, a sidecar still on it, REPLICA_ACKS=1", splitBrainAcks},
		{"split-brain-min-replicas", "split brain: old primary cut off, REPLICA_ACKS=0, min-replicas-to-write 1, max-lag 1s (-faults.long)", splitBrainMinReplicas},
		{"cluster-reshard", "Redis Cluster: a third of the slots migrate under load", clusterReshard},
		{"cluster-failover", "Redis Cluster: CLUSTER FAILOVER of one shard under load, REPLICA_ACKS=1", clusterFailover},
		{"cluster-kill-primary", "Redis Cluster: kill -9 of one shard's primary, REPLICA_ACKS=1", clusterKillPrimary},
		{"cluster-restart-empty", "Redis Cluster: one primary restarted without persistence", clusterRestartEmpty},
		{"idle-connections", "idle client connections", idleConnections},
		{"slowloris", "slowloris clients (a byte a second)", slowloris},
		{"malformed-frames", "malformed frames (fuzz corpus and hand-written)", malformedFrames},
	} {
		t.Run(s.name, func(t *testing.T) { s.run(t, rep.add(t, s.fault)) })
	}
}
