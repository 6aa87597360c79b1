"""The thread-based client: LockClient and the Lock it returns."""

from __future__ import annotations

import functools
import heapq
import inspect
import itertools
import os
import threading
import time
from types import TracebackType
from typing import Any, Callable, Sequence, TypeVar

import redis
from redis.exceptions import ResponseError

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

F = TypeVar("F", bound=Callable[..., Any])

# A Lock's state. HELD is the only one in which it sends commands for
# itself; LOST and RELEASED are final, apart from LOST -> RELEASED.
HELD, LOST, RELEASED = "held", "lost", "released"


def _make_pool(url: str, kwargs: dict[str, Any]) -> redis.ConnectionPool:
    base = redis.ConnectionPool.from_url(url, **{"socket_timeout": DEFAULT_SOCKET_TIMEOUT, **kwargs})
    conn_kwargs = dict(base.connection_kwargs)
    # Replies are parsed here (tokens, LOCK.HELD's names): bytes, whatever
    # decode_responses the URL asks for; and RESP2 (redis-py 5's protocol=3
    # would let a lock.lost push arrive where a reply is read).
    conn_kwargs.pop("protocol", None)
    conn_kwargs["decode_responses"] = False
    return redis.ConnectionPool(
        connection_class=base.connection_class, max_connections=base.max_connections, **conn_kwargs
    )


def _call(conn: redis.Connection, args: Sequence[Any], wait: float = 0.0) -> Any:
    """Send one command on conn and read its reply. An error reply leaves the
    connection in step and is raised as a LockError; any other failure
    (timeout, broken socket, KeyboardInterrupt in a WAIT) leaves it in an
    unknown state, so it is closed, which also makes the sidecar release
    whatever owned lock it holds or was about to be granted."""
    try:
        conn.send_command(*args)
        # A WAIT blocks its reply for up to `wait`: give the read that long on
        # top of the socket timeout, which still bounds every other reply.
        if wait and not conn.can_read(timeout=reply_timeout(wait, conn.socket_timeout)):
            raise redis.TimeoutError(f"no reply to {args[0]} within its wait and the socket timeout")
        return conn.read_response()
    except ResponseError as err:
        raise lock_error(err) from None
    except BaseException:
        conn.disconnect()
        raise


class Lock:
    """A lock (or a semaphore permit, or a read lock) held through the sidecar.

    An owned lock (the default) keeps a connection of its own until it is
    released: the sidecar renews the lock while that connection is open and
    releases it when it closes. A detached lock keeps no connection: it
    lives for its ttl, or until released by its token.

    Use it as a context manager (``with client.lock(...) as lk:``), or call
    release(). Attributes: name, token ("<fence>:<random>"), fence (int, to
    pass to what the lock protects), detached, and lost, a threading.Event
    set when the lock is taken away while held.
    """

    def __init__(
        self,
        client: LockClient,
        name: str,
        reply: bytes,
        conn: redis.Connection | None,
        ttl: float | None,
        sent_at: float,
    ) -> None:
        self.name = name
        self.token, self.fence = parse_token(reply)
        self.detached = conn is None
        self.lost = threading.Event()
        self._client = client
        self._conn = conn
        self._name_bytes = client._encoder.encode(name)
        self._ttl = ttl
        self._interval = check_interval(ttl, client._check_interval)
        # A detached lock expires at its ttl, counted from when the acquire
        # was sent: never later than the sidecar's own count.
        self._deadline = sent_at + (ttl or 0.0)
        self._state = HELD
        self._gen = 0  # bumped to void the watcher's pending check
        self._mutex = threading.Lock()  # one command at a time on _conn
        self._pid = os.getpid()

    def __repr__(self) -> str:
        # Never the token: it can release the lock from anywhere.
        kind = "detached" if self.detached else "owned"
        return f"<Lock {self.name!r} fence={self.fence} {kind} {self._state}>"

    def __enter__(self) -> Lock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        released = self.release()
        # The block ran (in part) without the lock: say so, unless it is
        # already raising something else.
        if not released and self.lost.is_set() and exc_type is None:
            raise LockLost(f"lock {self.name!r} (fence {self.fence}) was lost while held")

    def release(self) -> bool:
        """Release the lock: True when this call released it, False when it
        was no longer held (released before, lost, or the client closed).
        Idempotent. For an owned lock it never raises: when the sidecar cannot
        be told, the lock's connection is closed, which releases it as well.
        A detached lock's release raises when the sidecar could not be
        reached; it may then be held until its ttl (retry, or let it expire)."""
        with self._mutex:
            if self._state == RELEASED or os.getpid() != self._pid:
                return False  # a forked child must not touch its parent's lock
            if self._client._closed:  # close() disconnected every lock
                self._state = RELEASED
                return False
            if self.detached:
                if self._state != HELD:
                    self._state = RELEASED
                    return False
                # Raises when the sidecar cannot be reached: still HELD, so
                # that release() may be tried again.
                reply: int = self._client._command(("LOCK.RELEASE", self.name, self.token))
                if reply != 1:
                    self._lose()  # expired or revoked
                self._state = RELEASED
                return reply == 1
            conn, self._conn = self._conn, None
            assert conn is not None
            try:
                if self._state != HELD:
                    return False
                try:
                    reply = _call(conn, ("LOCK.RELEASE", self.name))
                except Exception:
                    # -UPSTREAM: the sidecar lets go all the same. Broken
                    # socket: _call closed it, and closing releases the lock.
                    conn.disconnect()
                    return True
                if reply != 1:
                    self._lose()  # lost since the last check
                return reply == 1
            finally:
                self._state = RELEASED
                # Clean (it holds nothing now) or closed: either way it may
                # serve the next lock; the pool reconnects a closed one.
                self._client._owned.release(conn)

    def extend(self, ttl: float | None = None) -> None:
        """Set the lock's ttl to `ttl` seconds from now (default: the ttl it
        was acquired with). For an owned lock the sidecar keeps renewing it
        with the new ttl; a detached lock lives `ttl` more.

        Raises LockNotOwned once released, LockLost when the sidecar says the
        lock is no longer held (and sets lost)."""
        ttl = self._ttl if ttl is None else ttl
        if ttl is None:
            raise ValueError("extend() needs a ttl: this lock was acquired with the sidecar's default ttl")
        ms = to_ms(ttl, "ttl")
        with self._mutex:
            if self._state == RELEASED:
                raise LockNotOwned(f"lock {self.name!r} was released")
            if self._state == LOST:
                raise LockLost(f"lock {self.name!r} (fence {self.fence}) was lost")
            sent_at = time.monotonic()
            if self.detached:
                reply = self._client._command(("LOCK.RENEW", self.name, ms, self.token))
            else:
                assert self._conn is not None
                try:
                    reply = _call(self._conn, ("LOCK.RENEW", self.name, ms))
                except LockError:
                    raise  # e.g. -UPSTREAM: still held, the sidecar keeps renewing it
                except Exception as err:
                    self._lose()  # the socket is closed, and with it the lock
                    raise LockLost(f"lock {self.name!r}: its connection failed: {err}") from err
            if reply != 1:
                self._lose()
                raise LockLost(f"lock {self.name!r} (fence {self.fence}) was lost")
            self._ttl = ttl
            self._interval = check_interval(ttl, self._client._check_interval)
            if self.detached:
                self._deadline = sent_at + ttl
                self._gen += 1
                self._client._watcher.schedule(self, self._gen, min(ttl, self._interval))

    def _lose(self) -> None:
        self._state = LOST
        self.lost.set()

    def _check(self, gen: int) -> float | None:
        """Run by the watcher when due: find out whether the lock is still
        held. Returns the delay to the next check, or None to stop."""
        with self._mutex:
            if self._state != HELD or gen != self._gen or self._client._closed:
                return None
            if self.detached:
                left = self._deadline - time.monotonic()
                if left > 0:
                    # Wake at least every interval even so: a released lock's
                    # entry then leaves the watcher's heap soon, not at its ttl.
                    return min(left, self._interval)
                self._lose()
                return None
            assert self._conn is not None
            try:
                # Answered by the sidecar alone (no upstream round trip).
                still_held = self._name_bytes in _call(self._conn, ("LOCK.HELD",))
            except Exception:
                # Whatever failed, make sure the lock is let go before calling
                # it lost: closing the connection releases it. (Nothing may
                # escape: it would end the one thread that checks every lock.)
                self._conn.disconnect()
                still_held = False
            if still_held:
                return self._interval
            self._lose()
            return None


class _Watcher:
    """One daemon thread per client that runs each held lock's loss check when
    it is due. A thread per lock would cost a thread start per acquisition;
    a check is one round trip to the sidecar, so one thread serves them all."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Lock, int]] = []  # a heap
        self._seq = itertools.count()  # ties: never compare two Locks
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pid = os.getpid()

    def schedule(self, lock: Lock, gen: int, delay: float) -> None:
        if self._pid != os.getpid():
            # A forked child has no watcher thread, and its parent's locks,
            # on its parent's sockets, are not its to check.
            self._reset()
        entry = (time.monotonic() + delay, next(self._seq), lock, gen)
        with self._cond:
            if self._closed:
                return
            heapq.heappush(self._due, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lockproxy-watcher", daemon=True)
                self._thread.start()
            elif self._due[0] is entry:
                self._cond.notify()  # due before what the thread sleeps for

    def close(self) -> threading.Thread | None:
        with self._cond:
            self._closed = True
            self._due.clear()
            self._cond.notify()
            return self._thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if self._due:
                        left = self._due[0][0] - time.monotonic()
                        if left <= 0:
                            _, _, lock, gen = heapq.heappop(self._due)
                            break
                        self._cond.wait(left)
                    else:
                        self._cond.wait()
            delay = lock._check(gen)  # outside _cond: it does a round trip
            if delay is not None:
                self.schedule(lock, gen, delay)


class LockClient:
    """Locks from a lockproxy sidecar, for threaded code.

    ``url`` is a redis:// (rediss://, unix://) URL, password included
    (``redis://:secret@127.0.0.1:6380``); keyword arguments go to redis-py's
    connections (URL query parameters win). Replies other than a WAIT's time
    out after ``socket_timeout`` (10 s unless given).

    Each owned lock takes a connection of its own from the client's pool for
    as long as it is held, and gives it back, holding nothing, on release.
    Detached locks, and release(name, token), use a second pool's
    connections one command at a time.

    ``check_interval`` bounds how long an owned lock's loss may go unnoticed:
    a background thread asks the sidecar (LOCK.HELD, on the lock's own
    connection) every ``check_interval`` seconds, or every ttl/3 when that is
    shorter, and sets ``lost`` when the lock is gone.

    Thread-safe. close() (or ``with LockClient(...) as client:``) closes every
    connection, which releases every owned lock.
    """

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
        # Two pools, so that a connection used for a detached lock (which its
        # LOCK.HELD lists) never serves an owned one, whose check reads it.
        self._owned = _make_pool(url, connection_kwargs)
        self._pooled = _make_pool(url, connection_kwargs)
        self._encoder = self._owned.get_encoder()
        self._watcher = _Watcher()
        self._closed = False

    def __enter__(self) -> LockClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection: the sidecar releases every owned lock held
        through this client (detached ones live on until their ttl)."""
        self._closed = True
        thread = self._watcher.close()
        self._owned.disconnect()
        self._pooled.disconnect()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)  # its check, if any, fails at once now

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
    ) -> Lock:
        """Acquire `name`, waiting up to `wait` seconds in the sidecar's fair
        queue, and return the Lock, or raise LockNotAcquired.

        - ttl: seconds; the lease (default: the sidecar's, 30 s). For an owned
          lock, how long it outlives a sidecar that dies, not how long you may
          hold it. Required with detached=True, where it is the lock's life.
        - wait: seconds (0: try once); at most the sidecar's LOCKPROXY_MAX_WAIT.
        - maxhold: seconds; the most the lock is kept, renewals included; at
          the cap it is released and `lost` set.
        - limit=n: a permit of a semaphore of n; shared=True: a read lock.
        - detached=True: not tied to a connection (see Lock).

        Raises LockKindError when the name is held as another kind,
        UpstreamError when the sidecar's Redis fails, LockError for other
        refusals.
        """
        lk = self._acquire(name, ttl, wait, maxhold, limit, shared, detached)
        if lk is None:
            raise LockNotAcquired(f"lock {name!r} is held by someone else" + (f" (waited {wait} s)" if wait else ""))
        return lk

    def try_lock(
        self,
        name: str,
        *,
        ttl: float | None = None,
        maxhold: float | None = None,
        limit: int | None = None,
        shared: bool = False,
        detached: bool = False,
    ) -> Lock | None:
        """Acquire `name` if it is free and nobody waits for it, else return
        None at once. Options as for lock()."""
        return self._acquire(name, ttl, 0.0, maxhold, limit, shared, detached)

    def with_lock(self, name: str, **options: Any) -> Callable[[F], F]:
        """Decorate a function to run holding a lock, released when it returns
        or raises. `name` is a str.format template filled from the call's
        arguments: "payment:{0}", "order:{order.id}", "user:{user_id}" (by
        parameter name, however it was passed). Options as for lock()."""

        def decorate(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):
                raise TypeError("a coroutine function needs AsyncLockClient.with_lock")
            name_for = name_formatter(name, fn)

            @functools.wraps(fn)
            def locked(*args: Any, **kwargs: Any) -> Any:
                with self.lock(name_for(args, kwargs), **options):
                    return fn(*args, **kwargs)

            return locked  # type: ignore[return-value]

        return decorate

    def release(self, name: str, token: str) -> bool:
        """Release (or, held by another connection, revoke) the lock `token`
        holds, from any client: a detached lock's token handed on, for one.
        True when it was released; False when the token did not hold it."""
        reply: int = self._command(("LOCK.RELEASE", name, token))
        return reply == 1

    def _command(self, args: Sequence[Any]) -> Any:
        conn = self._pooled.get_connection(args[0])
        try:
            return _call(conn, args)
        finally:
            self._pooled.release(conn)

    def _acquire(
        self,
        name: str,
        ttl: float | None,
        wait: float,
        maxhold: float | None,
        limit: int | None,
        shared: bool,
        detached: bool,
    ) -> Lock | None:
        if self._closed:
            raise LockError("the LockClient is closed")
        if detached and ttl is None:
            raise ValueError("a detached lock needs a ttl: it lives that long unless released")
        args = acquire_args(name, ttl, wait, maxhold, limit, shared, detached)
        pool = self._pooled if detached else self._owned
        conn = pool.get_connection("LOCK.ACQUIRE")
        sent_at = time.monotonic()
        try:
            reply = _call(conn, args, wait)
            if reply is None:
                pool.release(conn)
                return None
            lk = Lock(self, name, reply, None if detached else conn, ttl, sent_at)
        except BaseException as err:
            if not isinstance(err, LockError):
                conn.disconnect()  # a lock granted but not handed over is let go
            pool.release(conn)
            raise
        if detached:
            pool.release(conn)
        self._watcher.schedule(lk, lk._gen, lk._interval)
        return lk
