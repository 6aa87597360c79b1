"""Exceptions raised by the lockproxy client."""

from __future__ import annotations


class LockError(Exception):
    """Base of every error this package raises, and of the sidecar's refusals
    (an ``-ERR`` reply, such as a ttl outside LOCKPROXY_MIN_TTL..MAX_TTL)."""


class LockNotAcquired(LockError):
    """Someone else held the lock for the whole wait (or, without a wait, at
    the one try)."""


class LockNotOwned(LockError):
    """The operation needs a lock this client holds, and it holds it no
    longer (released already)."""


class LockLost(LockNotOwned):
    """The lock was taken away while it was held: MAXHOLD reached, the
    upstream lost it, another connection released it by its token, the
    lock's connection broke, or a detached lock's ttl ran out. Code that ran
    under it may have overlapped another holder: use the fence."""


class LockKindError(LockError):
    """``-WRONGTYPE``: the name is held (or waited for) as another kind, e.g.
    a semaphore with another ``limit``, or a semaphore against a lock."""


class UpstreamError(LockError):
    """``-UPSTREAM``: the sidecar's Redis failed, or is in its quiet period
    after a restart; nothing was granted. Retrying later may succeed."""
