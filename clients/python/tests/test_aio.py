"""AsyncLockClient against a running sidecar (LOCKPROXY_URL). pytest-asyncio
is not a Debian package of Debian 12, so each test runs its own loop."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, Awaitable, Callable

import pytest
import redis
from conftest import info

from lockproxy import AsyncLock, AsyncLockClient, LockKindError, LockLost, LockNotAcquired


def run(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(test)  # keeps the signature, for pytest's fixtures
    def sync(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 60))

    return sync


@run
async def test_lock_held_then_released(url: str, raw: redis.Redis, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        async with aclient.lock(name, ttl=10.0, wait=1.0) as lk:
            assert isinstance(lk, AsyncLock) and lk.fence > 0
            assert info(raw, name)["held"] == 1
        assert info(raw, name)["held"] == 0
        lk2 = await aclient.lock(name)  # awaited rather than entered
        assert lk2.fence > lk.fence
        assert await lk2.release() is True
        assert await lk2.release() is False


@run
async def test_try_lock_and_timeout(url: str, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        held = await aclient.try_lock(name)
        assert held is not None
        assert await aclient.try_lock(name) is None
        start = time.monotonic()
        with pytest.raises(LockNotAcquired):
            async with aclient.lock(name, wait=0.2):
                pass
        assert time.monotonic() - start >= 0.2
        await held.release()


@run
async def test_waiters_do_not_block_the_loop(url: str, raw: redis.Redis, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        holder = await aclient.lock(name)
        waiter = asyncio.ensure_future(aclient.lock(name, wait=10))
        while info(raw, name)["waiters"] != 1:  # the loop runs while it waits
            await asyncio.sleep(0.005)
        await holder.release()
        lk = await waiter
        assert lk.fence > holder.fence
        await lk.release()


@run
async def test_released_when_the_block_raises(url: str, raw: redis.Redis, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        with pytest.raises(RuntimeError):
            async with aclient.lock(name):
                raise RuntimeError("boom")
        assert info(raw, name)["held"] == 0


@run
async def test_lost_at_maxhold(url: str, raw: redis.Redis, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        with pytest.raises(LockLost):
            async with aclient.lock(name, ttl=5, maxhold=0.3) as lk:
                await asyncio.wait_for(lk.lost.wait(), 5)
        assert info(raw, name)["held"] == 0


@run
async def test_lost_when_revoked(url: str, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        lk = await aclient.lock(name, ttl=30)
        assert await aclient.release(name, lk.token) is True
        await asyncio.wait_for(lk.lost.wait(), 5)
        with pytest.raises(LockLost):
            await lk.extend(5)


@run
async def test_cancelled_wait_leaves_no_lock(url: str, raw: redis.Redis, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        holder = await aclient.lock(name)
        waiter = asyncio.ensure_future(aclient.lock(name, wait=30))
        while info(raw, name)["waiters"] != 1:
            await asyncio.sleep(0.005)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await holder.release()
        # The cancelled waiter's connection was closed: if the release handed
        # it the lock first, the close gave it back.
        lk = await aclient.lock(name, wait=5)
        await lk.release()


@run
async def test_with_lock(url: str, raw: redis.Redis, name: str) -> None:
    async with AsyncLockClient(url) as aclient:

        @aclient.with_lock(name + ":{0}:{kind}")
        async def job(n: int, kind: str = "a") -> int:
            assert info(raw, f"{name}:{n}:{kind}")["held"] == 1
            return n * 2

        assert await job(21) == 42
        assert await job(1, kind="b") == 2
        assert info(raw, f"{name}:21:a")["held"] == 0

        with pytest.raises(TypeError):
            aclient.with_lock(name)(lambda: None)  # type: ignore[type-var]


@run
async def test_semaphore_and_shared(url: str, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        permits = [await aclient.try_lock(name, limit=2) for _ in range(3)]
        assert permits[0] is not None and permits[1] is not None and permits[2] is None
        with pytest.raises(LockKindError):
            await aclient.try_lock(name, shared=True)
        for p in permits[:2]:
            assert p is not None and await p.release()
        readers = [await aclient.lock(name + ":rw", shared=True) for _ in range(2)]
        assert await aclient.try_lock(name + ":rw") is None
        for r in readers:
            await r.release()


@run
async def test_detached(url: str, raw: redis.Redis, name: str) -> None:
    async with AsyncLockClient(url) as aclient:
        lk = await aclient.lock(name, ttl=0.2, detached=True)
        await asyncio.wait_for(lk.lost.wait(), 5)  # its ttl ran out
        lk = await aclient.lock(name, ttl=30, detached=True, wait=1)
    async with AsyncLockClient(url) as other:  # it outlived its client
        assert await other.try_lock(name) is None
        assert await other.release(name, lk.token) is True
    assert info(raw, name)["held"] == 0


def test_sync_with_lock_refuses_coroutines(url: str) -> None:
    from lockproxy import LockClient

    async def job() -> None:
        pass

    with LockClient(url) as client, pytest.raises(TypeError):
        client.with_lock("x")(job)

