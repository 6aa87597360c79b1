#!/usr/bin/env bash
# Measures waiting and hand-off (docs/waiting.md): 32 clients on one lock,
# 1 ms holds, 1 ms think time, through one and two sidecars (in strict
# arrival order, and with one local hand-off allowed ahead) and against a
# polling baseline, with lockproxy and Redis pinned to different CPUs.
# Usage: scripts/bench-waiting.sh [seconds per workload, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/lockproxy" ./cmd/lockproxy
go build -o "$bin/lockbench" ./cmd/lockbench
common=(-lockproxy "$bin/lockproxy" -clients 32 -names 1 -hold 1ms -think 1ms -duration "${secs}s"
        -sidecar-cpu 0 -redis-cpu 1)
# The load tool shares CPU 1 with Redis: the sidecar gets a CPU of its own.
echo "== one sidecar, Redis store, with the polling baseline; clients are goroutines of the tool"
taskset -c 1 "$bin/lockbench" "${common[@]}" -sidecars 1
echo
echo "== the same with each client in a process of its own (-procs), as application instances are"
taskset -c 1 "$bin/lockbench" "${common[@]}" -sidecars 1 -procs
echo
echo "== two sidecars on one Redis, strict arrival order (LOCKPROXY_LOCAL_HANDOFFS=0)"
LOCKPROXY_LOCAL_HANDOFFS=0 taskset -c 1 "$bin/lockbench" "${common[@]}" -sidecars 2 -baseline=false
echo
echo "== two sidecars on one Redis, LOCKPROXY_LOCAL_HANDOFFS=1"
LOCKPROXY_LOCAL_HANDOFFS=1 taskset -c 1 "$bin/lockbench" "${common[@]}" -sidecars 2 -baseline=false
echo
echo "== one sidecar, embedded store"
taskset -c 1 "$bin/lockbench" "${common[@]}" -store embedded -baseline=false
