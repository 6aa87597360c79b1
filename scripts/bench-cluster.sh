#!/usr/bin/env bash
# Measures waiting and hand-off across two sidecars on a Redis Cluster of 3
# primaries, against two sidecars on one Redis, in the same run
# (docs/performance.md, "Redis Cluster"): 32 clients on one lock, 1 ms
# holds, 1 ms think time. The sidecars run on CPU 0; every redis-server and
# the load tool on CPU 1.
# Usage: scripts/bench-cluster.sh [seconds per workload, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
dir="$(mktemp -d)"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
go build -o "$dir/lockproxy" ./cmd/lockproxy
go build -o "$dir/lockbench" ./cmd/lockbench
# A Cluster node's bus listens 10,000 above its port, so the port is at most 55535.
free_port() {
	python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p <= 55535: print(p); break'
}
nodes=()
for i in 1 2 3; do
	port="$(free_port)"
	mkdir -p "$dir/n$i"
	taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/n$i" --save '' --appendonly no \
		--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
		--logfile "$dir/n$i/redis.log" &
	pids+=($!)
	nodes+=("127.0.0.1:$port")
done
for n in "${nodes[@]}"; do
	until redis-cli -h 127.0.0.1 -p "${n##*:}" ping >/dev/null 2>&1; do sleep 0.05; done
done
redis-cli --cluster create "${nodes[@]}" --cluster-yes >/dev/null
for n in "${nodes[@]}"; do
	until redis-cli -h 127.0.0.1 -p "${n##*:}" cluster info | grep -q 'cluster_state:ok'; do sleep 0.1; done
done
url="redis://${nodes[0]}?addr=${nodes[1]}&addr=${nodes[2]}"
common=(-lockproxy "$dir/lockproxy" -clients 32 -names 1 -hold 1ms -think 1ms -duration "${secs}s"
        -sidecar-cpu 0 -redis-cpu 1 -sidecars 2 -baseline=false)
echo "== two sidecars on a Redis Cluster of 3 primaries"
taskset -c 1 "$dir/lockbench" "${common[@]}" -upstream "$url"
echo
echo "== two sidecars on one Redis"
taskset -c 1 "$dir/lockbench" "${common[@]}"
