"""What the sync and asyncio clients share: command arguments, replies,
errors and lock-name templates. No I/O here."""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Mapping, Sequence

from redis.exceptions import ResponseError

from .errors import LockError, LockKindError, UpstreamError

# A lock connection waits this long for any reply but a WAIT's, unless the
# URL or the client's keyword arguments say otherwise: a sidecar that hangs
# with its socket open must not hang the holder (or the loss checks) forever.
DEFAULT_SOCKET_TIMEOUT = 10.0

# The loss check of an owned lock runs at least this often, and at least
# three times per ttl (see LockClient).
DEFAULT_CHECK_INTERVAL = 1.0


def to_ms(seconds: float, what: str) -> int:
    """Seconds (a float) to the whole milliseconds the protocol takes,
    rounded up, so that 0.0004 s is 1 ms, not "no wait"."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds >= 0:
        raise ValueError(f"{what} must be a number of seconds >= 0, got {seconds!r}")
    # round() first: 0.3 * 1000 is 300.00000000000006, which ceil makes 301.
    return math.ceil(round(seconds * 1000, 6))


def acquire_args(
    name: str | bytes,
    ttl: float | None,
    wait: float,
    maxhold: float | None,
    limit: int | None,
    shared: bool,
    detached: bool,
) -> list[Any]:
    """LOCK.ACQUIRE name [ttl] [WAIT ms] [MAXHOLD ms] [DETACHED] [LIMIT n | SHARED]."""
    if limit is not None and shared:
        raise ValueError("limit and shared exclude each other: a semaphore or a read-write lock")
    if maxhold is not None and detached:
        raise ValueError("maxhold caps the renewal of owned locks; a detached lock is not renewed")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    args: list[Any] = ["LOCK.ACQUIRE", name]
    if ttl is not None:
        args.append(to_ms(ttl, "ttl"))
    if wait:
        args += ["WAIT", to_ms(wait, "wait")]
    if maxhold is not None:
        args += ["MAXHOLD", to_ms(maxhold, "maxhold")]
    if detached:
        args.append("DETACHED")
    if limit is not None:
        args += ["LIMIT", limit]
    if shared:
        args.append("SHARED")
    return args


def parse_token(reply: bytes) -> tuple[str, int]:
    """The token "<fence>:<random>" and its fence."""
    token = reply.decode("ascii")
    return token, int(token.split(":", 1)[0])


def lock_error(err: ResponseError) -> LockError:
    """The sidecar's error reply as a LockError. redis-py strips the "ERR "
    code but keeps codes it does not know, such as WRONGTYPE and UPSTREAM."""
    msg = str(err)
    if msg.startswith("WRONGTYPE"):
        return LockKindError(msg)
    if msg.startswith("UPSTREAM"):
        return UpstreamError(msg)
    return LockError(msg)


def reply_timeout(wait: float, socket_timeout: float | None) -> float | None:
    """How long to wait for the reply to an acquire that may block in WAIT:
    the wait, plus the usual reply timeout (None: for ever)."""
    return None if socket_timeout is None else wait + socket_timeout


def check_interval(ttl: float | None, most: float) -> float:
    """How often an owned lock's loss check runs: at most `most` seconds
    apart, and three times per ttl, so that when the lock's connection or
    sidecar dies the holder hears of it well before the ttl lets anyone else
    take the lock."""
    return most if ttl is None else max(min(most, ttl / 3), 0.005)


def name_formatter(template: str, fn: Callable[..., Any]) -> Callable[[Sequence[Any], Mapping[str, Any]], str]:
    """A function that makes the lock name for a call of fn from template,
    with str.format: {0} is the first positional argument, {name} or
    {name.attr} the argument of that name, passed by position or keyword
    or left at its default."""
    sig = inspect.signature(fn)
    var_kw = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    def name_for(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        named = dict(bound.arguments)
        if var_kw is not None:
            named.update(named.pop(var_kw))
        return template.format(*bound.args, **named)

    return name_for
