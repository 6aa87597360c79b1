"""LockClient against a running sidecar (LOCKPROXY_URL)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from conftest import info, wait_until

import lockproxy
from lockproxy import (
    LockClient,
    LockError,
    LockKindError,
    LockLost,
    LockNotAcquired,
    LockNotOwned,
)

TOKEN = re.compile(r"^[1-9][0-9]*:[0-9a-f]{16}\.[0-9a-f]{32}$")


def test_lock_held_then_released(client: LockClient, raw: redis.Redis, name: str) -> None:
    with client.lock(name, ttl=10.0, wait=1.0) as lk:
        assert lk.name == name
        assert TOKEN.match(lk.token), lk.token
        assert lk.fence == int(lk.token.split(":")[0]) and lk.fence > 0
        assert lk.token not in repr(lk)
        got = info(raw, name)
        assert (got["held"], got["owner"], got["kind"]) == (1, "other", "exclusive")
        assert 0 < got["ttl"] <= 10_000
    assert info(raw, name)["held"] == 0
    assert not lk.lost.is_set()


def test_fences_rise(client: LockClient, other: LockClient, name: str) -> None:
    fences = []
    for c in (client, other, client):
        with c.lock(name) as lk:
            fences.append(lk.fence)
    assert fences == sorted(set(fences)), fences


def test_try_lock_returns_none_when_held(client: LockClient, other: LockClient, name: str) -> None:
    held = client.try_lock(name, ttl=10)
    assert held is not None
    # Each owned lock has a connection of its own, so the same client
    # contends like another one.
    assert client.try_lock(name) is None
    assert other.try_lock(name) is None
    held.release()
    again = other.try_lock(name)
    assert again is not None and again.fence > held.fence
    again.release()


def test_wait_runs_out(client: LockClient, other: LockClient, name: str) -> None:
    with client.lock(name):
        start = time.monotonic()
        with pytest.raises(LockNotAcquired) as caught:
            other.lock(name, wait=0.2)
        assert time.monotonic() - start >= 0.2  # the sidecar's WAIT, not a retry loop
    assert isinstance(caught.value, LockError)
    assert other.try_lock(name) is not None  # the waiter left no trace


def test_wait_gets_the_lock_at_release(client: LockClient, other: LockClient, raw: redis.Redis, name: str) -> None:
    holder = client.lock(name)
    got: list[lockproxy.Lock] = []
    waiter = threading.Thread(target=lambda: got.append(other.lock(name, wait=10)))
    waiter.start()
    wait_until("the waiter is queued", lambda: info(raw, name)["waiters"] == 1)
    holder.release()
    waiter.join(10)
    assert got and got[0].fence > holder.fence
    got[0].release()


def test_released_when_the_block_raises(client: LockClient, raw: redis.Redis, name: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with client.lock(name) as lk:
            raise RuntimeError("boom")
    assert info(raw, name)["held"] == 0
    assert not lk.lost.is_set()


def test_release_is_idempotent(client: LockClient, name: str) -> None:
    lk = client.lock(name, ttl=5)
    assert lk.release() is True
    assert lk.release() is False
    with pytest.raises(LockNotOwned):
        lk.extend()


def test_extend(client: LockClient, raw: redis.Redis, name: str) -> None:
    with client.lock(name, ttl=2) as lk:
        lk.extend(60)
        assert info(raw, name)["ttl"] > 2_000
        lk.extend()  # the last ttl again
        assert info(raw, name)["ttl"] > 2_000
    with client.lock(name) as lk:  # the sidecar's default ttl: none to repeat
        with pytest.raises(ValueError):
            lk.extend()


def test_lost_at_maxhold(client: LockClient, raw: redis.Redis, name: str) -> None:
    start = time.monotonic()
    with pytest.raises(LockLost):
        with client.lock(name, ttl=5, maxhold=0.3) as lk:
            assert lk.lost.wait(5), "lost was not set within 5 s of a MAXHOLD of 0.3 s"
            # Noticed within the check interval (ttl/3 capped at 1 s) of the cap.
            assert 0.3 <= time.monotonic() - start < 0.3 + 1.0 + 0.5
    assert info(raw, name)["held"] == 0
    with pytest.raises(LockNotOwned):  # released by the with, lost or not
        lk.extend(5)


def test_lost_when_revoked_by_token(client: LockClient, other: LockClient, name: str) -> None:
    lk = client.lock(name, ttl=30)
    assert other.release(name, lk.token) is True
    assert lk.lost.wait(5)
    assert lk.release() is False


def test_lost_when_the_sidecar_says_so_at_release(url: str, other: LockClient, name: str) -> None:
    # A check interval longer than the test: only release() can notice.
    with LockClient(url, check_interval=60) as client:
        lk = client.lock(name, ttl=30)
        # Answered once the holder's lease has ended (PROTOCOL.md).
        assert other.release(name, lk.token) is True
        with pytest.raises(LockLost):
            with lk:
                pass
        assert lk.lost.is_set()


def test_close_releases_owned_locks(url: str, other: LockClient, name: str) -> None:
    client = LockClient(url)
    lk = client.lock(name, ttl=30)
    client.close()
    assert lk.release() is False and not lk.lost.is_set()
    other.lock(name, wait=5).release()  # freed when the sidecar saw the close


def test_connection_reused_after_release(client: LockClient, name: str) -> None:
    for i in range(5):
        with client.lock(f"{name}:{i}"):
            pass
    # One connection served them all, each holding nothing when given back.
    assert client._owned._created_connections == 1


@dataclass
class Order:
    id: int


def test_with_lock_formats_names(client: LockClient, raw: redis.Redis, name: str) -> None:
    seen: list[str] = []

    def held_now(lock_name: str) -> None:
        assert info(raw, lock_name)["held"] == 1, lock_name
        seen.append(lock_name)

    @client.with_lock(name + ":payment:{0}", ttl=10)
    def pay(order_id: int, amount: int = 0) -> str:
        held_now(f"{name}:payment:{order_id}")
        return "paid"

    @client.with_lock(name + ":order:{0.id}")
    def ship(order: Order) -> None:
        held_now(f"{name}:order:{order.id}")

    @client.with_lock(name + ":user:{user_id}:{region}")
    def greet(user_id: int, region: str = "eu", **extra: object) -> None:
        held_now(f"{name}:user:{user_id}:{region}")

    @client.with_lock(name + ":tag:{tag}")
    def tagged(**kwargs: object) -> None:
        held_now(f"{name}:tag:{kwargs['tag']}")

    assert pay(42, amount=5) == "paid"
    assert pay.__name__ == "pay"
    ship(Order(7))
    greet(1)
    greet(user_id=2, region="us")
    tagged(tag="x")
    assert len(seen) == 5
    for lock_name in seen:
        assert info(raw, lock_name)["held"] == 0


def test_with_lock_releases_on_exception(client: LockClient, raw: redis.Redis, name: str) -> None:
    @client.with_lock(name + ":{0}")
    def fail(x: int) -> None:
        raise KeyError(x)

    with pytest.raises(KeyError):
        fail(1)
    assert info(raw, f"{name}:1")["held"] == 0


def test_with_lock_raises_when_held(client: LockClient, other: LockClient, name: str) -> None:
    @client.with_lock(name, wait=0.05)
    def work() -> None:
        raise AssertionError("ran without the lock")

    with other.lock(name):
        with pytest.raises(LockNotAcquired):
            work()


def test_semaphore(client: LockClient, raw: redis.Redis, name: str) -> None:
    a = client.try_lock(name, limit=2)
    b = client.try_lock(name, limit=2)
    assert a is not None and b is not None and b.fence > a.fence
    assert client.try_lock(name, limit=2) is None
    got = info(raw, name)
    assert (got["kind"], got["holders"], got["limit"]) == ("semaphore", 2, 2)
    with pytest.raises(LockKindError, match="LIMIT 2"):
        client.try_lock(name, limit=3)
    with pytest.raises(LockKindError):
        client.try_lock(name)  # a plain lock against the semaphore
    a.release()
    c = client.try_lock(name, limit=2)
    assert c is not None and c.fence > b.fence
    b.release()
    c.release()


def test_shared_readers(client: LockClient, raw: redis.Redis, name: str) -> None:
    r1 = client.lock(name, shared=True)
    r2 = client.lock(name, shared=True)
    assert info(raw, name)["holders"] == 2
    assert client.try_lock(name) is None  # the writer waits for the readers
    with pytest.raises(LockKindError):
        client.try_lock(name, limit=2)
    r1.release()
    r2.release()
    with client.lock(name):
        assert client.try_lock(name, shared=True) is None


def test_limit_and_shared_exclude_each_other(client: LockClient, name: str) -> None:
    with pytest.raises(ValueError):
        client.try_lock(name, limit=2, shared=True)
    with pytest.raises(ValueError):
        client.try_lock(name, limit=0)


def test_detached(url: str, other: LockClient, raw: redis.Redis, name: str) -> None:
    with pytest.raises(ValueError):
        other.try_lock(name, detached=True)  # no ttl
    with pytest.raises(ValueError):
        other.try_lock(name, ttl=5, detached=True, maxhold=1)
    client = LockClient(url)
    lk = client.lock(name, ttl=30, detached=True)
    assert lk.detached and TOKEN.match(lk.token)
    lk.extend(60)
    client.close()  # a detached lock outlives its client
    assert other.try_lock(name) is None
    assert 30_000 < info(raw, name)["ttl"] <= 60_000
    assert other.release(name, lk.token) is True  # by its token, from anywhere
    assert other.try_lock(name, ttl=1) is not None


def test_detached_expires(client: LockClient, name: str) -> None:
    with pytest.raises(LockLost):
        with client.lock(name, ttl=0.2, detached=True) as lk:
            assert lk.lost.wait(5)
    again = client.lock(name, ttl=5, detached=True, wait=1)  # the sidecar let it go too
    assert again.release() is True


def test_server_refusal_is_a_lock_error(client: LockClient, name: str) -> None:
    with pytest.raises(LockError, match="ttl"):
        client.try_lock(name, ttl=0.001)  # under LOCKPROXY_MIN_TTL
    with client.lock(name, ttl=5):  # the connection is still in step
        pass


def test_mutual_exclusion_across_processes(url: str, name: str, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0 0")
    procs, each = 4, 25
    workers = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("counter_worker.py")), url, name, str(counter), str(each)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    assert int(counter.read_text().split()[0]) == procs * each


def test_url_with_password() -> None:
    client = LockClient("redis://:s3cret@127.0.0.1:1/0")
    assert client._owned.connection_kwargs["password"] == "s3cret"
    client.close()


def test_ms_conversion() -> None:
    from lockproxy._common import to_ms

    assert (to_ms(0.3, "t"), to_ms(10, "t"), to_ms(0.0004, "t"), to_ms(0, "t")) == (300, 10_000, 1, 0)
    for bad in (-1, float("nan"), "1"):
        with pytest.raises(ValueError):
            to_ms(bad, "t")  # type: ignore[arg-type]


def test_error_replies_map_to_errors() -> None:
    from redis.exceptions import ResponseError

    from lockproxy import UpstreamError
    from lockproxy._common import lock_error

    assert type(lock_error(ResponseError('WRONGTYPE "x" is held as exclusive'))) is LockKindError
    assert type(lock_error(ResponseError("UPSTREAM quiet period"))) is UpstreamError
    assert type(lock_error(ResponseError("syntax error"))) is LockError
    assert issubclass(LockLost, LockNotOwned) and issubclass(LockNotOwned, LockError)


def test_version() -> None:
    assert lockproxy.__version__ == "0.1.0"
    assert os.path.exists(Path(lockproxy.__file__).with_name("py.typed"))
