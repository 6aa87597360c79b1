"""Distributed locks from a lockproxy sidecar, over redis-py.

    from lockproxy import LockClient

    client = LockClient("redis://127.0.0.1:6380")
    with client.lock("order:42", ttl=10.0, wait=5.0) as lk:
        charge(order, fence=lk.fence)

AsyncLockClient is the same for asyncio.
"""

from .aio import AsyncLock, AsyncLockClient
from .client import Lock, LockClient
from .errors import LockError, LockKindError, LockLost, LockNotAcquired, LockNotOwned, UpstreamError

__version__ = "0.1.0"

__all__ = [
    "AsyncLock",
    "AsyncLockClient",
    "Lock",
    "LockClient",
    "LockError",
    "LockKindError",
    "LockLost",
    "LockNotAcquired",
    "LockNotOwned",
    "UpstreamError",
    "__version__",
]
