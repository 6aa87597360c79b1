#!/usr/bin/env bash
# The compatibility scenario for redis-cli, run by compat/scenario_test.go
# with LOCKPROXY_ADDR=host:port. Prints "ok <step>" or "FAIL <step>: why"
# for each step, and exits 1 when one failed. Regions between
# "snippet:begin" and "snippet:end" are quoted in docs/clients.md.
set -u

host=${LOCKPROXY_ADDR%:*}
port=${LOCKPROXY_ADDR##*:}
prefix=redis-cli:
failed=0
why=

cli() { redis-cli -h "$host" -p "$port" "$@"; }

# check <what> <got> <want>: sets why and fails when got is not want.
check() {
	[ "$2" = "$3" ] && return 0
	why="$1 = '$2', want '$3'"
	return 1
}

run_step() {
	why=
	if "$2"; then
		echo "ok $1"
	else
		echo "FAIL $1: ${why:-failed}"
		failed=1
		end_session # a step that failed half-way may leave its session open
	fi
}

# The session: one redis-cli reading commands from a pipe, one connection.
send() {
	[ -n "${S[1]:-}" ] || { why="the redis-cli session ended"; return 1; }
	printf '%s\n' "$*" >&"${S[1]}"
}
recv() { # recv [n]: the next n reply lines (default 1) into $reply, joined by spaces
	local n=${1:-1} line
	reply=
	for ((; n > 0; n--)); do
		if [ -z "${S[0]:-}" ] || ! IFS= read -r -t 5 line <&"${S[0]}"; then
			why="no reply from redis-cli within 5s"
			return 1
		fi
		reply="${reply:+$reply }$line"
	done
}
end_session() { # closing its input ends redis-cli, and the connection
	[ -n "${S_PID:-}" ] || return 0
	local pid=$S_PID
	[ -n "${S[1]:-}" ] && exec {S[1]}>&-
	wait "$pid" 2>/dev/null
	unset S_PID
}

# info <name> <field>: a LOCK.INFO field seen from a new connection.
info() { cli LOCK.INFO "$1" | sed -n "/^$2\$/{n;p;}"; }

fence_of() {
	[[ $1 =~ ^[1-9][0-9]*:[0-9a-f]{16}\.[0-9a-f]{32}$ ]] || {
		why="'$1' is not a token"
		return 1
	}
	fence=${1%%:*}
}

now_ms() { date +%s%3N; }

step_handshake() {
	check "PING" "$(cli PING)" PONG || return
	local line
	line=$(cli CLIENT INFO)
	[[ $line == *" resp=2"* ]] || { why="CLIENT INFO = $line, want resp=2"; return 1; }
	line=$(cli -3 CLIENT INFO)
	[[ $line == *" resp=3"* ]] || { why="redis-cli -3 CLIENT INFO = $line, want resp=3"; return 1; }
}

name=${prefix}a
step_acquire() {
	coproc S { cli; }
	send "LOCK.ACQUIRE $name 30000"
	recv || return
	token=$reply
	fence_of "$token" || return
	send "LOCK.INFO $name"
	recv 18 || return
	[[ $reply =~ ^held\ 1\ fence\ $fence\ ttl\ ([0-9]+)\ owner\ self\ mode\ owned\ waiters\ 0\ kind\ exclusive\ holders\ 1\ limit\ 0$ ]] ||
		{ why="LOCK.INFO = $reply"; return 1; }
	((BASH_REMATCH[1] > 25000 && BASH_REMATCH[1] <= 30000)) || { why="ttl ${BASH_REMATCH[1]}"; return 1; }
	send "LOCK.HELD"
	recv && check "LOCK.HELD" "$reply" "$name" || return
	check "LOCK.INFO owner from another connection" "$(info "$name" owner)" other
}

step_renew() {
	send "LOCK.RENEW $name 60000"
	recv && check "LOCK.RENEW" "$reply" 1 || return
	send "LOCK.INFO $name"
	recv 18 || return
	[[ $reply =~ ttl\ ([0-9]+) ]] && ((BASH_REMATCH[1] > 30000)) || { why="LOCK.INFO after renew = $reply"; return 1; }
}

step_release() {
	send "LOCK.RELEASE $name"
	recv && check "LOCK.RELEASE" "$reply" 1 || return
	send "LOCK.RELEASE $name"
	recv && check "second LOCK.RELEASE" "$reply" 0 || return
	send "LOCK.HELD"
	recv && check "LOCK.HELD" "$reply" "" || return
	send "LOCK.INFO $name"
	recv 16 || return
	[[ $reply =~ ^held\ 0\ fence\ [0-9]+\ ttl\ -2\ owner\ none\ waiters\ 0\ kind\ none\ holders\ 0\ limit\ 0$ ]] || { why="LOCK.INFO after release = $reply"; return 1; }
	end_session
}

step_wait() {
	local name=${prefix}w waiter out holder_fence
	out=$(mktemp)
	coproc S { cli; }
	send "LOCK.ACQUIRE $name 30000"
	recv && fence_of "$reply" || return
	holder_fence=$fence
	cli LOCK.ACQUIRE "$name" 30000 WAIT 5000 >"$out" &
	waiter=$!
	local deadline=$(($(now_ms) + 5000))
	until [ "$(info "$name" waiters)" = 1 ]; do
		(($(now_ms) < deadline)) || { why="the waiter never showed in LOCK.INFO waiters"; return 1; }
		sleep 0.01
	done
	local start
	start=$(now_ms)
	send "LOCK.RELEASE $name"
	recv && check "holder's LOCK.RELEASE" "$reply" 1 || return
	wait "$waiter"
	fence_of "$(cat "$out")" || return
	rm -f "$out"
	((fence > holder_fence)) || { why="waiter's fence $fence is not above the holder's $holder_fence"; return 1; }
	(($(now_ms) - start < 1000)) || { why="hand-off took $(($(now_ms) - start)) ms"; return 1; }
	end_session
}

step_detached() {
	local name=${prefix}d released=
	# snippet:begin redis-cli-detached
	# Each redis-cli run is a connection of its own that ends with it, so a
	# lock that outlives the command is DETACHED, and released by its token.
	token=$(redis-cli -h "$host" -p "$port" LOCK.ACQUIRE "$name" 60000 DETACHED)
	if [ -n "$token" ]; then # empty: someone else holds it
		# ... later, from any connection, of any process:
		released=$(redis-cli -h "$host" -p "$port" LOCK.RELEASE "$name" "$token")
	fi
	# snippet:end
	fence_of "$token" || return
	check "LOCK.RELEASE with the token from another connection" "$released" 1 || return
	check "LOCK.RELEASE of the released token" "$(cli LOCK.RELEASE "$name" "$token")" 0
}

# run_job stands for the work done under the lock; here it checks that
# the lock is held, from another connection.
run_job() {
	job_fence=$1
	job_owner=$(info "$name" owner)
}

step_close() {
	local name=${prefix}c job_fence= job_owner=
	# snippet:begin redis-cli-owned
	# Hold the lock while the job runs: one redis-cli session owns it (the
	# sidecar renews it), and closing the session releases it.
	coproc LOCK { redis-cli -h "$host" -p "$port"; }
	echo "LOCK.ACQUIRE $name 30000 WAIT 5000" >&"${LOCK[1]}"
	if read -r -t 10 token <&"${LOCK[0]}" && [ -n "$token" ]; then
		run_job "${token%%:*}" # the fence
	fi
	exec {LOCK[1]}>&- # end the session: the lock is released
	wait "$LOCK_PID"
	# snippet:end
	fence_of "$token" || return
	check "the fence given to the job" "$job_fence" "$fence" || return
	check "LOCK.INFO owner during the job" "$job_owner" other || return
	local start
	start=$(now_ms)
	fence_of "$(cli LOCK.ACQUIRE "$name" 30000 WAIT 2000)" || return
	(($(now_ms) - start < 1000)) || { why="the lock took $(($(now_ms) - start)) ms to come free"; return 1; }
}

# MAXHOLD 200 on one RESP2 session: at the cap the lock is gone, RENEW
# says 0, and the session stays in step.
step_lost() {
	local name=${prefix}m
	coproc S { cli; }
	send "LOCK.ACQUIRE $name 30000 MAXHOLD 200"
	recv && fence_of "$reply" || return
	local deadline=$(($(now_ms) + 5000))
	while :; do
		send "LOCK.HELD"
		recv || return
		if [ "$reply" = lock.lost ]; then # a push, printed before the reply
			recv 2 || return
			why="a lock.lost push on a RESP2 connection"
			return 1
			recv || return
		fi
		[ -z "$reply" ] && break
		(($(now_ms) < deadline)) || { why="LOCK.HELD still lists it after 5s"; return 1; }
		sleep 0.02
	done
	send "LOCK.RENEW $name 30000"
	recv && check "LOCK.RENEW after the cap" "$reply" 0 || return
	send "PING"
	recv && check "PING after the cap" "$reply" PONG || return
	end_session
	fence_of "$(cli LOCK.ACQUIRE "$name" 1000 DETACHED)" || { why="another connection could not take it: $why"; return 1; }
}

step_lost_push() {
	local name=${prefix}p out
	# snippet:begin redis-cli-push
	# A RESP3 session (-3) receives lock.lost pushes; redis-cli prints them
	# on a terminal, and with --show-pushes yes when its output is a pipe.
	out=$({ echo "LOCK.ACQUIRE $name 30000 MAXHOLD 200"; sleep 1; echo "LOCK.HELD"; } |
		redis-cli -h "$host" -p "$port" -3 --show-pushes yes)
	# snippet:end
	local lines
	mapfile -t lines <<<"$out"
	fence_of "${lines[0]}" || return
	# The push comes before LOCK.HELD's reply, which is empty (and trimmed).
	check "the session's output" "${lines[*]:1}" "lock.lost $name ${lines[0]}"
}

run_step handshake step_handshake
run_step acquire-info-held step_acquire
run_step renew step_renew
run_step release step_release
run_step wait-handoff step_wait
run_step detached-pooled step_detached
run_step release-on-close step_close
run_step lock-lost step_lost
run_step lock-lost-push step_lost_push
exit $failed
