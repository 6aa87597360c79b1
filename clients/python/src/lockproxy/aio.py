"""The asyncio client, on redis.asyncio: AsyncLockClient and AsyncLock.

The same semantics as the thread-based client (see client.py); the
differences: `lost` is an asyncio.Event, and each lock's loss check is a
timer on the event loop rather than a job for a thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import sys
import time
from types import TracebackType
from typing import Any, Awaitable, Callable, Generator, Sequence, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as ReplyTimeout

from ._common import (
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_SOCKET_TIMEOUT,
    acquire_args,
    check_interval,
    lock_error,
    name_formatter,
    parse_token,
    reply_timeout,
    to_ms,
)
from .errors import LockError, LockLost, LockNotAcquired, LockNotOwned

if sys.version_info >= (3, 11):
    from asyncio import timeout as _deadline
else:  # redis-py requires async-timeout on these versions
    from async_timeout import timeout as _deadline

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

HELD, LOST, RELEASED = "held", "lost", "released"


def _make_pool(url: str, kwargs: dict[str, Any]) -> tuple[aioredis.ConnectionPool, float | None]:
    """The pool, and the reply timeout that _call applies."""
    base = aioredis.ConnectionPool.from_url(url, **{"socket_timeout": DEFAULT_SOCKET_TIMEOUT, **kwargs})
    conn_kwargs = dict(base.connection_kwargs)
    timeout = conn_kwargs.get("socket_timeout")
    # Given a socket_timeout, redis-py 4.3's asyncio connections send each
    # command under asyncio.wait_for, a task of its own: that doubled the
    # time of an acquire and release. _call applies the timeout instead,
    # with one timer per command; connecting keeps its own.
    conn_kwargs["socket_connect_timeout"] = conn_kwargs.get("socket_connect_timeout") or timeout
    conn_kwargs.update(socket_timeout=None, decode_responses=False)
    conn_kwargs.pop("protocol", None)  # RESP2, as in client._make_pool
    pool = aioredis.ConnectionPool(
        connection_class=base.connection_class, max_connections=base.max_connections, **conn_kwargs
    )
    return pool, timeout


async def _call(conn: aioredis.Connection, args: Sequence[Any], timeout: float | None, wait: float = 0.0) -> Any:
    """As client._call: the reply must come within `timeout` seconds (None:
    no limit), plus `wait` for a WAIT. An error reply is raised as a
    LockError; any other failure, cancellation included, closes the
    connection (and so releases what it holds or was about to be granted)."""
    try:
        async with _deadline(reply_timeout(wait, timeout)):
            await conn.send_command(*args)
            return await conn.read_response()
    except ResponseError as err:
        raise lock_error(err) from None
    except asyncio.TimeoutError:
        await conn.disconnect()
        raise ReplyTimeout(f"no reply to {args[0]} within {reply_timeout(wait, timeout)} s") from None
    except BaseException:
        await conn.disconnect()
        raise


class AsyncLock:
    """A lock held through the sidecar, for asyncio code; see client.Lock.
    ``lost`` is an asyncio.Event: ``await lk.lost.wait()``."""

    def __init__(
        self,
        client: AsyncLockClient,
        name: str,
        reply: bytes,
        conn: aioredis.Connection | None,
        ttl: float | None,
        sent_at: float,
    ) -> None:
        self.name = name
        self.token, self.fence = parse_token(reply)
        self.detached = conn is None
        self.lost = asyncio.Event()
        self._client = client
        self._conn = conn
        self._name_bytes = client._encoder.encode(name)
        self._ttl = ttl
        self._interval = check_interval(ttl, client._check_interval)
        self._deadline = sent_at + (ttl or 0.0)
        self._state = HELD
        self._mutex = asyncio.Lock()  # one command at a time on _conn
        self._timer: asyncio.TimerHandle | None = None
        self._checking: asyncio.Task[None] | None = None  # a strong reference
        self._pid = os.getpid()
        self._schedule(self._interval)

    def __repr__(self) -> str:
        kind = "detached" if self.detached else "owned"
        return f"<AsyncLock {self.name!r} fence={self.fence} {kind} {self._state}>"

    async def __aenter__(self) -> AsyncLock:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        released = await self.release()
        if not released and self.lost.is_set() and exc_type is None:
            raise LockLost(f"lock {self.name!r} (fence {self.fence}) was lost while held")

    async def release(self) -> bool:
        """As Lock.release."""
        async with self._mutex:
            if self._state == RELEASED or os.getpid() != self._pid:
                return False
            self._stop_checks()
            if self._client._closed:
                self._state = RELEASED
                return False
            if self.detached:
                if self._state != HELD:
                    self._state = RELEASED
                    return False
                reply: int = await self._client._command(("LOCK.RELEASE", self.name, self.token))
                if reply != 1:
                    self._lose()
                self._state = RELEASED
                return reply == 1
            conn, self._conn = self._conn, None
            assert conn is not None
            try:
                if self._state != HELD:
                    return False
                try:
                    reply = await _call(conn, ("LOCK.RELEASE", self.name), self._client._timeout)
                except Exception:
                    await conn.disconnect()
                    return True
                if reply != 1:
                    self._lose()
                return reply == 1
            finally:
                self._state = RELEASED
                await self._client._owned.release(conn)

    async def extend(self, ttl: float | None = None) -> None:
        """As Lock.extend."""
        ttl = self._ttl if ttl is None else ttl
        if ttl is None:
            raise ValueError("extend() needs a ttl: this lock was acquired with the sidecar's default ttl")
        ms = to_ms(ttl, "ttl")
        async with self._mutex:
            if self._state == RELEASED:
                raise LockNotOwned(f"lock {self.name!r} was released")
            if self._state == LOST:
                raise LockLost(f"lock {self.name!r} (fence {self.fence}) was lost")
            sent_at = time.monotonic()
            if self.detached:
                reply = await self._client._command(("LOCK.RENEW", self.name, ms, self.token))
            else:
                assert self._conn is not None
                try:
                    reply = await _call(self._conn, ("LOCK.RENEW", self.name, ms), self._client._timeout)
                except LockError:
                    raise
                except Exception as err:
                    self._lose()
                    raise LockLost(f"lock {self.name!r}: its connection failed: {err}") from err
            if reply != 1:
                self._lose()
                raise LockLost(f"lock {self.name!r} (fence {self.fence}) was lost")
            self._ttl = ttl
            self._interval = check_interval(ttl, self._client._check_interval)
            if self.detached:
                self._deadline = sent_at + ttl
                self._stop_checks()
                self._schedule(min(ttl, self._interval))

    def _lose(self) -> None:
        self._state = LOST
        self.lost.set()
        self._stop_checks()

    def _schedule(self, delay: float) -> None:
        # A timer, not a sleeping task: cancelling it can never interrupt a
        # check half-way through its round trip.
        self._timer = asyncio.get_running_loop().call_later(delay, self._start_check)

    def _stop_checks(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start_check(self) -> None:
        self._timer = None
        self._checking = asyncio.ensure_future(self._check())

    async def _check(self) -> None:
        async with self._mutex:
            if self._state != HELD or self._client._closed:
                return
            if self.detached:
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._schedule(min(left, self._interval))
                else:
                    self._lose()
                return
            assert self._conn is not None
            try:
                still_held = self._name_bytes in await _call(self._conn, ("LOCK.HELD",), self._client._timeout)
            except Exception:
                await self._conn.disconnect()  # let go for sure before calling it lost
                still_held = False
            if still_held:
                self._schedule(self._interval)
            else:
                self._lose()


class _Acquire:
    """What AsyncLockClient.lock returns: awaitable (``lk = await
    aclient.lock(...)``) and an async context manager (``async with``)."""

    def __init__(self, client: AsyncLockClient, name: str, options: dict[str, Any]) -> None:
        self._client = client
        self._name = name
        self._options = options
        self._lock: AsyncLock | None = None

    def __await__(self) -> Generator[Any, None, AsyncLock]:
        return self._acquire().__await__()

    async def _acquire(self) -> AsyncLock:
        lk = await self._client._acquire(self._name, **self._options)
        if lk is None:
            wait = self._options["wait"]
            raise LockNotAcquired(
                f"lock {self._name!r} is held by someone else" + (f" (waited {wait} s)" if wait else "")
            )
        return lk

    async def __aenter__(self) -> AsyncLock:
        self._lock = await self._acquire()
        return self._lock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._lock is not None
        await self._lock.__aexit__(exc_type, exc, tb)


class AsyncLockClient:
    """Locks from a lockproxy sidecar, for asyncio code; see LockClient.
    Use it from one event loop; ``await aclient.aclose()`` (or ``async with
    AsyncLockClient(...) as aclient:``) closes every connection."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6380",
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        **connection_kwargs: Any,
    ) -> None:
        if not check_interval > 0:
            raise ValueError(f"check_interval must be > 0, got {check_interval!r}")
        self._check_interval = check_interval
        self._owned, self._timeout = _make_pool(url, connection_kwargs)
        self._pooled, _ = _make_pool(url, connection_kwargs)
        self._encoder = self._owned.get_encoder()
        self._closed = False

    async def __aenter__(self) -> AsyncLockClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """As LockClient.close."""
        self._closed = True
        await self._owned.disconnect()
        await self._pooled.disconnect()

    def lock(
        self,
        name: str,
        *,
        ttl: float | None = None,
        wait: float = 0.0,
        maxhold: float | None = None,
        limit: int | None = None,
        shared: bool = False,
        detached: bool = False,
    ) -> _Acquire:
        """As LockClient.lock; ``async with aclient.lock(...) as lk:`` or
        ``lk = await aclient.lock(...)``."""
        options = dict(ttl=ttl, wait=wait, maxhold=maxhold, limit=limit, shared=shared, detached=detached)
        return _Acquire(self, name, options)

    async def try_lock(
        self,
        name: str,
        *,
        ttl: float | None = None,
        maxhold: float | None = None,
        limit: int | None = None,
        shared: bool = False,
        detached: bool = False,
    ) -> AsyncLock | None:
        """As LockClient.try_lock."""
        return await self._acquire(
            name, ttl=ttl, wait=0.0, maxhold=maxhold, limit=limit, shared=shared, detached=detached
        )

    def with_lock(self, name: str, **options: Any) -> Callable[[F], F]:
        """As LockClient.with_lock, for coroutine functions."""

        def decorate(fn: F) -> F:
            if not inspect.iscoroutinefunction(fn):
                raise TypeError("AsyncLockClient.with_lock decorates coroutine functions; use LockClient.with_lock")
            name_for = name_formatter(name, fn)

            @functools.wraps(fn)
            async def locked(*args: Any, **kwargs: Any) -> Any:
                async with self.lock(name_for(args, kwargs), **options):
                    return await fn(*args, **kwargs)

            return locked  # type: ignore[return-value]

        return decorate

    async def release(self, name: str, token: str) -> bool:
        """As LockClient.release."""
        reply: int = await self._command(("LOCK.RELEASE", name, token))
        return reply == 1

    async def _command(self, args: Sequence[Any]) -> Any:
        conn = await self._pooled.get_connection(args[0])
        try:
            return await _call(conn, args, self._timeout)
        finally:
            await self._pooled.release(conn)

    async def _acquire(
        self,
        name: str,
        *,
        ttl: float | None,
        wait: float,
        maxhold: float | None,
        limit: int | None,
        shared: bool,
        detached: bool,
    ) -> AsyncLock | None:
        if self._closed:
            raise LockError("the AsyncLockClient is closed")
        if detached and ttl is None:
            raise ValueError("a detached lock needs a ttl: it lives that long unless released")
        args = acquire_args(name, ttl, wait, maxhold, limit, shared, detached)
        pool = self._pooled if detached else self._owned
        conn = await pool.get_connection("LOCK.ACQUIRE")
        sent_at = time.monotonic()
        try:
            reply = await _call(conn, args, self._timeout, wait)
            if reply is None:
                await pool.release(conn)
                return None
            lk = AsyncLock(self, name, reply, None if detached else conn, ttl, sent_at)
        except BaseException as err:
            if not isinstance(err, LockError):
                await conn.disconnect()
            await pool.release(conn)
            raise
        if detached:
            await pool.release(conn)
        return lk
