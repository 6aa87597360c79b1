#!/usr/bin/env bash
# Measures how much memory one hostile client can pin in lockproxy and in its
# upstream Redis with plain lock commands.
#
#   detached-embedded, detached-redis: N connections each pipeline M
#       `LOCK.ACQUIRE <unique B-byte name> <ttl> DETACHED` and close; on the
#       embedded store, and through a fresh redis-server of its own. Counts
#       the replies by kind, and reports lockproxy's RSS and Go heap, the
#       memory and keys Redis gained, locks_held, and the flood's wall time.
#   released-names: one connection acquires (owned, no WAIT) and releases K
#       distinct B-byte names, pipelined 1000 pairs a batch, on the embedded
#       store; reports lockproxy's RSS and Go heap.
#
# Each scenario is read before its load, SECS after it, and (unless -q) after
# lockproxy's next garbage collection: the Go heap shortly after a load is
# mostly the load's garbage, and only a GC tells what stays. An idle Go
# process collects at the latest 2 minutes after its last GC, so the run
# leaves each scenario's processes up and waits for that (about 2.5 to 4
# minutes in all with the defaults on 2 CPUs).
#
# Usage: scripts/hostile-memory.sh [options] [lockproxy-binary]
#   With no binary, builds ./cmd/lockproxy from this checkout once; pass a
#   binary to run the same load on an old and a new build.
#   -n N      connections in detached-embedded           (default 100)
#   -r N      connections in detached-redis              (default: -n)
#   -m M      DETACHED acquires per connection           (default 1000)
#   -b BYTES  lock name length                           (default 1024)
#   -k K      distinct names in released-names          (default 100000)
#   -t MS     ttl of the detached locks                  (default 86400000, 24 h)
#   -s SECS   settle before the "after" reading          (default 3)
#   -q        skip the wait for lockproxy's next GC
#   -x LIST   scenarios, comma-separated                 (default:
#             detached-embedded,detached-redis,released-names); also
#             released-names-redis: released-names through a fresh Redis
# lockproxy runs with its defaults, except LOCKPROXY_LISTEN, _METRICS_LISTEN
# (free ports) and _UPSTREAM; other LOCKPROXY_* variables in the caller's
# environment reach it, e.g. LOCKPROXY_MAX_LOCKS_PER_CONN=500.
# Needs go (unless given a binary), python3, redis-server, redis-cli and curl.
# Redis runs on a free port in a temp dir, without persistence.
set -euo pipefail
cd "$(dirname "$0")/.."

conns=100 locks=1000 redis_conns="" name_bytes=1024 names=100000
ttl=86400000 settle=3 wait_gc=yes scenarios="detached-embedded,detached-redis,released-names"
while getopts "n:m:r:b:k:t:s:x:qh" opt; do
  case "$opt" in
    n) conns="$OPTARG" ;; m) locks="$OPTARG" ;; r) redis_conns="$OPTARG" ;;
    b) name_bytes="$OPTARG" ;; k) names="$OPTARG" ;; t) ttl="$OPTARG" ;;
    s) settle="$OPTARG" ;; x) scenarios="$OPTARG" ;; q) wait_gc=no ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
redis_conns="${redis_conns:-$conns}"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

if [[ $# -ge 1 ]]; then
  bin="$(realpath "$1")"
else
  go build -o "$tmp/lockproxy" ./cmd/lockproxy
  bin="$tmp/lockproxy"
fi

# The load: raw RESP over sockets, every connection in one select loop, each
# reply classified by its first byte. Requests are built before the clock starts.
cat > "$tmp/load.py" <<'EOF'
import selectors, socket, sys, time

def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)

def name(tag, i, j, size):
    n = ("%s:%d:%d:" % (tag, i, j)).encode()
    if len(n) > size:
        sys.exit("name length %d is too small for %r" % (size, n))
    return n + b"x" * (size - len(n))

class Replies:
    """Parses a stream of RESP2 replies; keeps each reply's kind."""
    def __init__(self):
        self.buf = bytearray()
        self.kinds = []  # (kind, text): token | null | error | int | array
    def feed(self, data):
        self.buf += data
        at = 0
        while True:
            r = self._one(at)
            if r is None:
                break
            at, kind, text = r
            self.kinds.append((kind, text))
        del self.buf[:at]
    def _line(self, at):
        e = self.buf.find(b"\r\n", at)
        return None if e < 0 else (bytes(self.buf[at:e]), e + 2)
    def _one(self, at):
        ln = self._line(at)
        if ln is None:
            return None
        line, nxt = ln
        t, rest = line[:1], line[1:]
        if t == b"-":
            return nxt, "error", rest.decode(errors="replace")
        if t == b":":
            return nxt, "int", rest.decode()
        if t == b"+":
            return nxt, "status", rest.decode()
        if t == b"$":
            n = int(rest)
            if n < 0:
                return nxt, "null", None
            if len(self.buf) < nxt + n + 2:
                return None
            return nxt + n + 2, "token", bytes(self.buf[nxt:nxt + n]).decode(errors="replace")
        if t == b"*":
            n = int(rest)
            if n < 0:
                return nxt, "null", None
            items = []
            for _ in range(n):
                r = self._one(nxt)
                if r is None:
                    return None
                nxt, _, text = r
                items.append(text)
            return nxt, "array", items
        raise SystemExit("unexpected reply %r" % line[:80])

def connect(host, port):
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def flood(host, port, conns, payloads, expect):
    """Sends each payload on its own connection, reads `expect` replies (or
    EOF) on each, closes it. Returns the replies of every connection."""
    sel = selectors.DefaultSelector()
    state = {}
    for i in range(conns):
        s = connect(host, port)
        s.setblocking(False)
        st = {"i": i, "out": memoryview(payloads[i]), "rep": Replies(), "eof": False}
        state[s] = st
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    done = []
    while state:
        for key, ev in sel.select():
            s, st = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE and st["out"]:
                try:
                    n = s.send(st["out"][:262144])
                    st["out"] = st["out"][n:]
                except (BlockingIOError, InterruptedError):
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    st["out"] = memoryview(b"")
                if not st["out"]:
                    sel.modify(s, selectors.EVENT_READ, st)
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    st["rep"].feed(data)
                else:
                    st["eof"] = True
                if st["eof"] or len(st["rep"].kinds) >= expect:
                    sel.unregister(s)
                    s.close()
                    del state[s]
                    done.append(st)
    return sorted(done, key=lambda st: st["i"])

def roundtrip(s, payload, expect):
    s.sendall(payload)
    rep = Replies()
    while len(rep.kinds) < expect:
        data = s.recv(1 << 20)
        if not data:
            break
        rep.feed(data)
    return rep.kinds

def lock_info(host, port, n):
    with connect(host, port) as s:
        kinds = roundtrip(s, cmd(b"LOCK.INFO", n), 1)
    if not kinds or kinds[0][0] != "array":
        return "LOCK.INFO: %r" % (kinds,)
    f = kinds[0][1]
    d = dict(zip(f[0::2], f[1::2]))
    return "held=%s fence=%s ttl_ms=%s" % (d.get("held"), d.get("fence"), d.get("ttl"))

def tally(kinds, counts, first):
    for kind, text in kinds:
        k = kind + ":" + text if kind == "int" else kind
        counts[k] = counts.get(k, 0) + 1
        if kind == "error" and first[0] is None:
            first[0] = text

def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "detached":
        conns, per, size, ttl = map(int, sys.argv[4:8])
        payloads = [b"".join(cmd(b"LOCK.ACQUIRE", name("det", i, j, size), ttl, b"DETACHED")
                             for j in range(per)) for i in range(conns)]
        t0 = time.monotonic()
        done = flood(host, port, conns, payloads, per)
        secs = time.monotonic() - t0
        counts, first = {}, [None]
        short = 0
        for st in done:
            tally(st["rep"].kinds, counts, first)
            short += st["eof"] and len(st["rep"].kinds) < per
        got = sum(counts.values())
        print("flood_seconds=%.2f" % secs)
        print("sent=%d" % (conns * per))
        for k in ("token", "null", "error"):
            print("%s=%d" % (k, counts.get(k, 0)))
        print("other=%d" % (got - sum(counts.get(k, 0) for k in ("token", "null", "error"))))
        print("unanswered=%d" % (conns * per - got))
        print("conns_closed_by_server=%d" % short)
        print("first_error=%s" % (first[0] or "-"))
        print("probe_first=%s" % lock_info(host, port, name("det", 0, 0, size)))
        print("probe_last=%s" % lock_info(host, port, name("det", conns - 1, per - 1, size)))
    elif mode == "released":
        total, size, batch = map(int, sys.argv[4:7])
        acq, rel, first = {}, {}, [None]
        t0 = time.monotonic()
        with connect(host, port) as s:
            for b0 in range(0, total, batch):
                b1 = min(total, b0 + batch)
                payload = b"".join(cmd(b"LOCK.ACQUIRE", name("rel", 0, j, size), 30000)
                                   + cmd(b"LOCK.RELEASE", name("rel", 0, j, size))
                                   for j in range(b0, b1))
                kinds = roundtrip(s, payload, 2 * (b1 - b0))
                tally(kinds[0::2], acq, first)
                tally(kinds[1::2], rel, first)
                if len(kinds) < 2 * (b1 - b0):
                    break
        secs = time.monotonic() - t0
        print("seconds=%.2f" % secs)
        print("sent=%d" % total)
        print("acquired=%d" % acq.get("token", 0))
        print("released=%d" % rel.get("int:1", 0))
        print("release_other=%d" % (sum(rel.values()) - rel.get("int:1", 0)))
        print("answered=%d" % (sum(acq.values()) + sum(rel.values())))
        print("first_error=%s" % (first[0] or "-"))
        print("probe_first=%s" % lock_info(host, port, name("rel", 0, 0, size)))
    else:
        sys.exit("mode?")

main()
EOF

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_lockproxy NAME [upstream-url]: sets lp_pid, lp_port, lp_metrics.
start_lockproxy() {
  local log="$tmp/$1.log"
  lp_metrics="$(free_port)"
  LOCKPROXY_LISTEN=127.0.0.1:0 LOCKPROXY_METRICS_LISTEN="127.0.0.1:$lp_metrics" \
    LOCKPROXY_UPSTREAM="${2:-}" \
    "$bin" >"$log" 2>&1 &
  lp_pid=$!
  pids+=("$lp_pid")
  for _ in $(seq 100); do
    lp_port="$(sed -n 's/.*msg="lockproxy started".* listen=[^ ]*:\([0-9]*\) .*/\1/p' "$log")"
    [[ -n "$lp_port" ]] && return 0
    sleep 0.1
  done
  echo "lockproxy did not start:" >&2; cat "$log" >&2; exit 1
}

# start_redis: sets rd_pid, rd_port.
start_redis() {
  rd_port="$(free_port)"
  mkdir -p "$tmp/redis-$rd_port"
  redis-server --port "$rd_port" --bind 127.0.0.1 --dir "$tmp/redis-$rd_port" --save "" \
    --appendonly no --maxmemory-policy noeviction --logfile "$tmp/redis-$rd_port/redis.log" &
  rd_pid=$!
  pids+=("$rd_pid")
  for _ in $(seq 100); do
    redis-cli -p "$rd_port" PING 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  echo "redis-server did not start" >&2; exit 1
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# VmHWM is updated lazily and can trail VmRSS by a page or two.
peak_kb() { awk '/^Vm(HWM|RSS):/ {if ($2 > m) m = $2} END {print m}' "/proc/$1/status"; }
metric() { curl -s "127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {printf "%.0f\n", $2}'; }
info_field() { redis-cli -p "$1" INFO "$2" | tr -d '\r' | awk -F: -v k="$3" '$1 == k {print $2}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }
mbb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1048576}'; }
per() { awk -v d="$1" -v n="$2" 'BEGIN {printf "%.0f B", n ? d / n : 0}'; }
# r SCENARIO KEY: a figure recorded by the load or by snapshot.
r() { sed -n "s/^$2=//p" "$tmp/$1.res"; }

# snapshot SCENARIO WHEN: lockproxy's RSS, Go heap and locks_held, and the
# Redis figures when there is one, appended to the scenario's results.
snapshot() {
  local sc="$1" w="$2" lpid="${lp_pids[$1]}" mport="${lp_mports[$1]}" rport="${rd_ports[$1]:-}"
  {
    echo "rss_$w=$(rss_kb "$lpid")"
    echo "peak_$w=$(peak_kb "$lpid")"
    echo "heap_$w=$(metric "$mport" go_memstats_heap_alloc_bytes)"
    echo "held_$w=$(info_field "${lp_ports[$sc]}" locks locks_held)"
    echo "mheld_$w=$(metric "$mport" lockproxy_locks_held)"
    echo "conns_$w=$(metric "$mport" lockproxy_connections)"
    if [[ -n "$rport" ]]; then
      echo "redis_mem_$w=$(info_field "$rport" memory used_memory)"
      echo "redis_keys_$w=$(redis-cli -p "$rport" DBSIZE)"
    fi
  } >>"$tmp/$sc.res"
}

declare -A lp_pids lp_ports lp_mports rd_pids rd_ports
ran=()

# run SCENARIO: starts its processes, takes the "before" reading, runs the
# load, and after the settle the "after" reading. The processes stay up for
# the reading after Go's next GC.
run() {
  local sc="$1" upstream=""
  : >"$tmp/$sc.res"
  if [[ "$sc" == *-redis ]]; then
    start_redis
    rd_pids[$sc]="$rd_pid" rd_ports[$sc]="$rd_port"
    upstream="redis://127.0.0.1:$rd_port/0"
  fi
  start_lockproxy "$sc" "$upstream"
  lp_pids[$sc]="$lp_pid" lp_ports[$sc]="$lp_port" lp_mports[$sc]="$lp_metrics"
  sleep 1
  snapshot "$sc" before
  echo "-- $sc: load running" >&2
  case "$sc" in
    detached-embedded) python3 "$tmp/load.py" detached 127.0.0.1 "$lp_port" "$conns" "$locks" "$name_bytes" "$ttl" ;;
    detached-redis) python3 "$tmp/load.py" detached 127.0.0.1 "$lp_port" "$redis_conns" "$locks" "$name_bytes" "$ttl" ;;
    released-names*) python3 "$tmp/load.py" released 127.0.0.1 "$lp_port" "$names" "$name_bytes" 1000 ;;
  esac >>"$tmp/$sc.res"
  echo "load_end=$EPOCHREALTIME" >>"$tmp/$sc.res"
  if [[ -n "${rd_ports[$sc]:-}" ]]; then
    local k
    k="$(redis-cli -p "$rd_port" --scan --pattern "*:0:0:x*" | sort | head -n 2 | tr '\n' ' ')"
    local desc="none; "
    [[ -n "$k" ]] && desc=""
    for key in $k; do desc+="${key:0:20}…${key: -8} pttl $(redis-cli -p "$rd_port" PTTL "$key") ms; "; done
    echo "sample_key=${desc%; }" >>"$tmp/$sc.res"
  fi
  sleep "$settle"
  snapshot "$sc" after
  ran+=("$sc")
}

# after_gc SCENARIO: waits (at most 150 s from the end of the load) for a GC
# of lockproxy's that started after the load ended, so that the heap is the
# live heap and not the load's garbage, then takes the "gc" reading.
after_gc() {
  local sc="$1" mport="${lp_mports[$1]}" end deadline last
  end="$(r "$sc" load_end)"
  deadline="$(awk -v e="$end" 'BEGIN {printf "%d", e + 150}')"
  echo "-- $sc: waiting for lockproxy's next GC (Go forces one after 2 min idle)" >&2
  while :; do
    last="$(metric "$mport" go_memstats_last_gc_time_seconds)"
    if awk -v l="$last" -v e="$end" 'BEGIN {exit !(l > e)}'; then
      sleep 1
      snapshot "$sc" gc
      echo "gc_seen=yes" >>"$tmp/$sc.res"
      return 0
    fi
    if [[ "$(date +%s)" -ge "$deadline" ]]; then
      echo "gc_seen=no" >>"$tmp/$sc.res"
      return 0
    fi
    sleep 2
  done
}

stop_scenario() {
  stop_pid "${lp_pids[$1]}"
  [[ -n "${rd_pids[$1]:-}" ]] && stop_pid "${rd_pids[$1]}"
  return 0
}

row() { printf '  %-36s %s\n' "$1" "$2"; }

memory_rows() { # memory_rows SCENARIO COUNT WHAT
  local sc="$1" n="$2" what="$3"
  row "lockproxy RSS before / after" \
      "$(mb "$(r "$sc" rss_before)") / $(mb "$(r "$sc" rss_after)") (+$(mb $(( $(r "$sc" rss_after) - $(r "$sc" rss_before) ))), $(per $(( ($(r "$sc" rss_after) - $(r "$sc" rss_before)) * 1024 )) "$n") per $what; peak $(mb "$(r "$sc" peak_after)"))"
  row "lockproxy Go heap before / after" \
      "$(mbb "$(r "$sc" heap_before)") / $(mbb "$(r "$sc" heap_after)") (includes the load's garbage)"
  if [[ "$(r "$sc" gc_seen)" == yes ]]; then
    local dh=$(( $(r "$sc" heap_gc) - $(r "$sc" heap_before) )) dr=$(( ($(r "$sc" rss_gc) - $(r "$sc" rss_before)) * 1024 ))
    row "after lockproxy's next GC: heap" "$(mbb "$(r "$sc" heap_gc)") (+$(mbb "$dh"), $(per "$dh" "$n") per $what)"
    row "after lockproxy's next GC: RSS" "$(mb "$(r "$sc" rss_gc)") (+$(mbb "$dr"), $(per "$dr" "$n") per $what)"
  elif [[ -n "$(r "$sc" gc_seen)" ]]; then
    row "after lockproxy's next GC" "no GC within 150 s of the load"
  fi
  row "locks_held (INFO / metric) after" "$(r "$sc" held_after) / $(r "$sc" mheld_after) (connections: $(r "$sc" conns_after))"
}

report_detached() {
  local sc="$1" n="$2" store="${1#detached-}"
  local sent token null err other
  sent="$(r "$sc" sent)" token="$(r "$sc" token)" null="$(r "$sc" null)"
  err="$(r "$sc" error)" other="$(r "$sc" other)"
  echo "== detached, $store store: $n connections x $locks pipelined LOCK.ACQUIRE <$name_bytes-byte name> $ttl DETACHED, then close"
  row "replies token / null / error" "$token / $null / $err (other $other, unanswered $(r "$sc" unanswered))"
  row "replies add up to N x M = $sent" "$([[ $((token + null + err + other)) -eq $sent ]] && echo yes || echo NO)"
  row "connections closed by lockproxy" "$(r "$sc" conns_closed_by_server)"
  row "first error" "$(r "$sc" first_error)"
  row "flood wall time" "$(r "$sc" flood_seconds) s (python client included)"
  memory_rows "$sc" "$token" "granted lock"
  row "LOCK.INFO of the first name" "$(r "$sc" probe_first)"
  row "LOCK.INFO of the last name" "$(r "$sc" probe_last)"
  redis_rows "$sc" "$token" "granted lock"
  echo
}

redis_rows() { # redis_rows SCENARIO COUNT WHAT
  local sc="$1" n="$2" what="$3" rb ra kb ka
  [[ -n "$(r "$sc" redis_mem_before)" ]] || return 0
  rb="$(r "$sc" redis_mem_before)" ra="$(r "$sc" redis_mem_after)"
  kb="$(r "$sc" redis_keys_before)" ka="$(r "$sc" redis_keys_after)"
  row "Redis used_memory before / after" "$(mbb "$rb") / $(mbb "$ra") (+$(mbb $((ra - rb))), $(per $((ra - rb)) "$n") per $what)"
  row "Redis keys before / after" "$kb / $ka ($(awk -v d=$((ka - kb)) -v t="$n" 'BEGIN {printf "%.2f", t ? d / t : 0}') per $what)"
  row "Redis keys of the first name" "$(r "$sc" sample_key)"
}

report_released() {
  local sc="$1" store=embedded
  [[ "$sc" == *-redis ]] && store=redis
  echo "== released-names, $store store: one connection acquires (owned) and releases $names distinct $name_bytes-byte names, 1000 pairs a batch"
  row "acquired / released (other)" "$(r "$sc" acquired) / $(r "$sc" released) ($(r "$sc" release_other))"
  row "replies add up to 2 x $names" "$([[ "$(r "$sc" answered)" -eq $((2 * names)) ]] && echo yes || echo NO)"
  row "first error" "$(r "$sc" first_error)"
  row "wall time" "$(r "$sc" seconds) s (python client included)"
  memory_rows "$sc" "$names" "name"
  row "LOCK.INFO of the first name" "$(r "$sc" probe_first)"
  redis_rows "$sc" "$names" "name"
  echo
}

IFS=, read -ra want <<<"$scenarios"
for sc in "${want[@]}"; do
  case "$sc" in
    detached-embedded | detached-redis | released-names | released-names-redis) ;;
    *) echo "unknown scenario $sc" >&2; exit 2 ;;
  esac
done
for sc in "${want[@]}"; do run "$sc"; done
for sc in "${ran[@]}"; do
  [[ "$wait_gc" == yes ]] && after_gc "$sc"
  stop_scenario "$sc"
done

echo "lockproxy: $bin ($("$bin" -version 2>/dev/null || echo "no -version"))"
echo "RSS from /proc/PID/status; Go heap is go_memstats_heap_alloc_bytes; 'after' is ${settle} s after the load"
echo
for sc in "${ran[@]}"; do
  case "$sc" in
    detached-embedded) report_detached "$sc" "$conns" ;;
    detached-redis) report_detached "$sc" "$redis_conns" ;;
    released-names*) report_released "$sc" ;;
  esac
done
