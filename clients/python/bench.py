"""What the client costs: `with client.lock(...)` against a raw LOCK.ACQUIRE
and LOCK.RELEASE on one redis-py connection, uncontended, in the same run,
against a running sidecar; and the same for asyncio.

    go run ./cmd/lockproxy &      # the embedded store, on 127.0.0.1:6380
    PYTHONPATH=clients/python/src python3 clients/python/bench.py [--url URL] [-n 2000] [--rounds 5]

Rounds of each alternate, so that drift in the machine's speed falls on
both. Printed per acquire+release pair: the fastest round (the least
disturbed by other load) and the median round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Awaitable, Callable

import redis
import redis.asyncio as aioredis

from lockproxy import AsyncLockClient, LockClient

TTL_MS = 30_000


def timed(n: int, body: Callable[[], None]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        body()
    return (time.perf_counter() - start) / n


async def atimed(n: int, body: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await body()
    return (time.perf_counter() - start) / n


def sync_rounds(url: str, n: int, rounds: int) -> tuple[list[float], list[float]]:
    r = redis.Redis(connection_pool=redis.ConnectionPool.from_url(url), single_connection_client=True)
    client = LockClient(url)

    def raw() -> None:
        assert r.execute_command("LOCK.ACQUIRE", "bench:raw", TTL_MS) is not None
        r.execute_command("LOCK.RELEASE", "bench:raw")

    def wrapped() -> None:
        with client.lock("bench:client", ttl=TTL_MS / 1000):
            pass

    raws, clients = [], []
    timed(n // 10, raw), timed(n // 10, wrapped)  # warm up: connections, caches
    for _ in range(rounds):
        raws.append(timed(n, raw))
        clients.append(timed(n, wrapped))
    client.close()
    r.connection_pool.disconnect()
    return raws, clients


async def async_rounds(url: str, n: int, rounds: int) -> tuple[list[float], list[float]]:
    r = aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(url), single_connection_client=True)
    aclient = AsyncLockClient(url)

    async def raw() -> None:
        assert await r.execute_command("LOCK.ACQUIRE", "bench:araw", TTL_MS) is not None
        await r.execute_command("LOCK.RELEASE", "bench:araw")

    async def wrapped() -> None:
        async with aclient.lock("bench:aclient", ttl=TTL_MS / 1000):
            pass

    raws, clients = [], []
    await atimed(n // 10, raw), await atimed(n // 10, wrapped)
    for _ in range(rounds):
        raws.append(await atimed(n, raw))
        clients.append(await atimed(n, wrapped))
    await aclient.aclose()
    await r.close(close_connection_pool=True)
    return raws, clients


def report(what: str, raws: list[float], clients: list[float]) -> None:
    stats: dict[str, Callable[[list[float]], float]] = {"min": min, "median": statistics.median}
    for stat_name, stat in stats.items():
        raw, client = stat(raws) * 1e6, stat(clients) * 1e6
        print(f"{what} {stat_name:6}: raw LOCK.ACQUIRE+LOCK.RELEASE {raw:6.1f} µs   "
              f"with client.lock() {client:6.1f} µs   overhead {client - raw:+6.1f} µs ({client / raw - 1:+.0%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="redis://127.0.0.1:6380")
    ap.add_argument("-n", type=int, default=2000, help="acquire+release pairs per round")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    print(f"{args.rounds} rounds of {args.n} uncontended acquire+release pairs each, against {args.url}")
    report("sync   ", *sync_rounds(args.url, args.n, args.rounds))
    report("asyncio", *asyncio.run(async_rounds(args.url, args.n, args.rounds)))


if __name__ == "__main__":
    main()
