"""Fixtures: the sidecar's URL comes from LOCKPROXY_URL, which the Go test
(clients/python/python_test.go) sets for each sidecar it starts."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Callable, Iterator

import pytest
import redis

from lockproxy import LockClient

URL = os.environ.get("LOCKPROXY_URL", "")


def pytest_configure(config: pytest.Config) -> None:
    if not URL:
        raise pytest.UsageError(
            "LOCKPROXY_URL is not set: run `go test ./clients/python/`, which starts the sidecars, "
            "or set it to a running sidecar's URL, e.g. redis://127.0.0.1:6380"
        )


@pytest.fixture
def url() -> str:
    return URL


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A lock name of the test's own."""
    return f"pytest:{request.node.name}:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client() -> Iterator[LockClient]:
    with LockClient(URL) as c:
        yield c


@pytest.fixture
def other() -> Iterator[LockClient]:
    """A second client, as another process would have."""
    with LockClient(URL) as c:
        yield c


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    """A plain redis-py connection, to look at the sidecar's state."""
    # Not Redis.from_url(URL, single_connection_client=True): redis-py 4.3
    # hands that keyword on to its connections, which refuse it.
    r = redis.Redis(connection_pool=redis.ConnectionPool.from_url(URL), single_connection_client=True)
    yield r
    r.connection_pool.disconnect()


def info(r: redis.Redis, name: str) -> dict[str, Any]:
    """LOCK.INFO's flat RESP2 array as a dict of str to int or str."""
    flat = r.execute_command("LOCK.INFO", name)
    return {k.decode(): v.decode() if isinstance(v, bytes) else v for k, v in zip(flat[::2], flat[1::2])}


def wait_until(what: str, cond: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll a state of the sidecar that no event announces (a waiter queued)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting until {what}"
        time.sleep(0.005)
