"""The compatibility scenario for redis-py (Debian's python3-redis), run by
compat/scenario_test.go with LOCKPROXY_ADDR=host:port.

Prints "ok <step>" or "FAIL <step>: why" for each step, and exits 1 when one
failed. Regions between "snippet:begin" and "snippet:end" are quoted in
docs/clients.md.
"""

import os
import re
import sys
import threading
import time
import traceback

import redis

host, _, port = os.environ["LOCKPROXY_ADDR"].rpartition(":")
port = int(port)
PREFIX = "redis-py:"
TOKEN = re.compile(rb"^[1-9][0-9]*:[0-9a-f]{16}\.[0-9a-f]{32}$")


class LockBusy(Exception):
    """Someone else held the lock for the whole WAIT."""


def fence_of(token):
    assert token is not None and TOKEN.match(token), f"{token!r} is not a token"
    return int(token.split(b":", 1)[0])


def info(r, name):
    flat = r.execute_command("LOCK.INFO", name)  # a flat list in RESP2
    return {k.decode(): v.decode() if isinstance(v, bytes) else v for k, v in zip(flat[::2], flat[1::2])}


def expect(what, got, want):
    assert got == want, f"{what} = {got!r}, want {want!r}"


def wait_until(what, cond):
    deadline = time.monotonic() + 5
    while not cond():
        assert time.monotonic() < deadline, f"timed out after 5s waiting until {what}"
        time.sleep(0.01)


# snippet:begin redis-py-owned
# redis.Redis hands each command to whichever pooled connection is free.
# An owned lock needs one connection for its whole life: a client with
# single_connection_client=True (or a Redis of its own) keeps one.
def with_lock(name, work, host="127.0.0.1", port=6380):
    r = redis.Redis(host=host, port=port, single_connection_client=True)
    try:
        token = r.execute_command("LOCK.ACQUIRE", name, 30000, "WAIT", 5000)
        if token is None:
            raise LockBusy(name)  # someone else held it for the whole WAIT
        try:
            return work(int(token.split(b":", 1)[0]))  # pass the fence on
        finally:
            r.execute_command("LOCK.RELEASE", name)
    finally:
        # Close the socket (if this process dies, that happens by itself).
        # redis-py 4's r.close() only returns it to the pool, still open.
        r.connection_pool.disconnect()
# snippet:end


def main():
    r = redis.Redis(host=host, port=port, single_connection_client=True)
    state = {}
    steps = []

    def step(name):
        def register(f):
            steps.append((name, f))
            return f
        return register

    @step("handshake")
    def _():
        expect("PING", r.ping(), True)
        line = r.execute_command("CLIENT", "INFO").decode()
        assert " resp=2" in line, f"CLIENT INFO = {line!r}, want resp=2"

    @step("client-info-parsed")
    def _():
        # Redis.client_info() parses the fields of Redis's CLIENT INFO line.
        got = r.client_info()
        expect("client_info()['resp']", got.get("resp"), "2")

    name = PREFIX + "a"

    @step("acquire-info-held")
    def _():
        token = r.execute_command("LOCK.ACQUIRE", name, 30000)
        fence = fence_of(token)
        state["fence"] = fence
        got = info(r, name)
        assert 25000 < got.pop("ttl") <= 30000, "ttl"
        expect("LOCK.INFO", got, {"held": 1, "fence": fence, "owner": "self", "mode": "owned", "waiters": 0,
                                      "kind": "exclusive", "holders": 1, "limit": 0})
        expect("LOCK.HELD", r.execute_command("LOCK.HELD"), [name.encode()])
        expect("acquiring again", r.execute_command("LOCK.ACQUIRE", name, 30000), token)
        other = redis.Redis(host=host, port=port)
        expect("owner from another connection", info(other, name)["owner"], "other")
        other.close()

    @step("renew")
    def _():
        expect("LOCK.RENEW", r.execute_command("LOCK.RENEW", name, 60000), 1)
        assert info(r, name)["ttl"] > 30000, "ttl after LOCK.RENEW"

    @step("release")
    def _():
        expect("LOCK.RELEASE", r.execute_command("LOCK.RELEASE", name), 1)
        expect("second LOCK.RELEASE", r.execute_command("LOCK.RELEASE", name), 0)
        expect("LOCK.HELD", r.execute_command("LOCK.HELD"), [])
        got = info(r, name)
        got.pop("fence")
        expect("LOCK.INFO", got, {"held": 0, "ttl": -2, "owner": "none", "waiters": 0,
                                      "kind": "none", "holders": 0, "limit": 0})

    @step("wait-handoff")
    def _():
        name = PREFIX + "w"
        holder_fence = fence_of(r.execute_command("LOCK.ACQUIRE", name, 30000))
        result = {}

        def waiter():
            try:
                result["fence"] = with_lock(name, lambda fence: fence, host, port)
            except Exception as e:  # reported below
                result["error"] = e

        t = threading.Thread(target=waiter)
        t.start()
        wait_until("the waiter is queued", lambda: info(r, name)["waiters"] == 1)
        start = time.monotonic()
        expect("holder's LOCK.RELEASE", r.execute_command("LOCK.RELEASE", name), 1)
        t.join(10)
        assert "error" not in result, f"waiter: {result.get('error')!r}"
        assert result["fence"] > holder_fence, f"waiter's fence {result['fence']} <= holder's {holder_fence}"
        assert time.monotonic() - start < 1, "hand-off took over 1s"

    @step("detached-pooled")
    def _():
        name = PREFIX + "d"
        pool = redis.Redis(host=host, port=port)
        # Hold one connection of the pool, so the next command surely runs
        # on another.
        busy = pool.connection_pool.get_connection("LOCK.ACQUIRE")
        busy.send_command("CLIENT", "ID")
        id_a = busy.read_response()
        # snippet:begin redis-py-detached
        # With a pooled client, each command may run on another connection:
        # take a DETACHED lock and release it by its token.
        token = pool.execute_command("LOCK.ACQUIRE", name, 60000, "DETACHED")
        if token is not None:  # None: someone else holds it
            # ... later, from any connection, of any process:
            released = pool.execute_command("LOCK.RELEASE", name, token)
        # snippet:end
        fence_of(token)
        expect("LOCK.RELEASE with the token", released, 1)
        id_b = pool.client_id()
        assert id_b != id_a, "the pool used the held connection"
        busy.send_command("LOCK.HELD")
        expect("LOCK.HELD on the held connection", busy.read_response(), [])
        pool.connection_pool.release(busy)
        expect("releasing the token again", pool.execute_command("LOCK.RELEASE", name, token), 0)
        pool.close()

    @step("release-on-close")
    def _():
        name = PREFIX + "c"
        owner = redis.Redis(host=host, port=port, single_connection_client=True)
        fence_of(owner.execute_command("LOCK.ACQUIRE", name, 30000))
        owner.close()
        if redis.__version__.startswith("4."):
            # What docs/clients.md says: close() keeps the socket open.
            expect("LOCK.INFO held after redis-py 4's close()", info(r, name)["held"], 1)
        owner.connection_pool.disconnect()
        start = time.monotonic()
        fence_of(r.execute_command("LOCK.ACQUIRE", name, 30000, "WAIT", 2000))
        assert time.monotonic() - start < 1, f"the lock took {time.monotonic() - start:.3f}s to come free"
        expect("LOCK.RELEASE", r.execute_command("LOCK.RELEASE", name), 1)

    @step("lock-lost")
    def _():
        # python3-redis 4.3 speaks RESP2 only: no push; a lost lock shows in
        # LOCK.HELD, LOCK.RENEW and LOCK.RELEASE.
        name = PREFIX + "m"
        fence_of(r.execute_command("LOCK.ACQUIRE", name, 30000, "MAXHOLD", 200))
        wait_until("the MAXHOLD cap drops the lock", lambda: r.execute_command("LOCK.HELD") == [])
        expect("LOCK.RENEW after the cap", r.execute_command("LOCK.RENEW", name, 30000), 0)
        expect("PING after the cap", r.ping(), True)
        other = redis.Redis(host=host, port=port)
        # LOCK.HELD drops the lock as the cap's release is sent, a round
        # trip before it lands: wait for it.
        fence_of(other.execute_command("LOCK.ACQUIRE", name, 1000, "DETACHED", "WAIT", 1000))
        other.close()

    failed = False
    for step_name, f in steps:
        try:
            f()
            print(f"ok {step_name}", flush=True)
        except Exception as e:
            failed = True
            frames = traceback.extract_tb(e.__traceback__)
            here = [f for f in frames if f.filename == __file__][-1]
            where = f"scenario.py:{here.lineno}: {here.line}"
            if frames[-1] is not here:
                where += f"; raised at {frames[-1].filename}:{frames[-1].lineno}: {frames[-1].line}"
            print(f"FAIL {step_name}: {type(e).__name__}: {e} ({where})", flush=True)
    r.close()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
