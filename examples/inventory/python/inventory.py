#!/usr/bin/python3
"""Sells stock to 50 concurrent buyers without overselling, with redis-py.

The Python version of examples/inventory: a lock per SKU makes each
read-check-write of that SKU's stock run alone, and buyers of one SKU queue
for it (WAIT) instead of failing. Each buyer takes an owned lock on a
connection of its own, so lockproxy renews it while the buyer works and
releases it if the buyer dies.

    LOCKPROXY_ADDR=127.0.0.1:6380 /usr/bin/python3 examples/inventory/python/inventory.py

Needs Debian's python3-redis (`sudo apt-get install -y python3-redis`, or
`make deps`); exits 1 on an error or an oversell.
"""
import os
import sys
import threading
import time

import redis


def connect():
    """A client with one connection of its own, to the sidecar at
    LOCKPROXY_ADDR (host:port or unix:/path)."""
    addr = os.environ.get("LOCKPROXY_ADDR") or "127.0.0.1:6380"
    if addr.startswith("unix:"):
        return redis.Redis(unix_socket_path=addr[len("unix:"):], single_connection_client=True)
    host, _, port = addr.rpartition(":")
    return redis.Redis(host=host, port=int(port), single_connection_client=True)


# Stands in for a stock table read and written in separate steps (SELECT,
# then UPDATE): without a lock, two buyers can both read 1 and both sell it.
stock = {"red-shirt": 10, "blue-shirt": 5}
sold = {sku: 0 for sku in stock}
counts = threading.Lock()  # guards sold, not the stock: that is the SKU lock's job


# snippet:begin python-buy
def buy(sku):
    """Sells one unit of sku if any is left, under the SKU's lock. Returns
    whether it sold one."""
    r = connect()  # single_connection_client: the lock is owned by this connection
    try:
        token = r.execute_command("LOCK.ACQUIRE", "sku:" + sku, 30000, "WAIT", 30000)
        if token is None:
            raise RuntimeError("sku:%s still held after 30s" % sku)
        try:
            n = stock[sku]
            if n == 0:
                return False  # sold out
            time.sleep(0.001)  # the gap between SELECT and UPDATE, where an oversell would happen
            stock[sku] = n - 1
            return True
        finally:
            r.execute_command("LOCK.RELEASE", "sku:" + sku)
    finally:
        r.close()  # closing the connection would release the lock too
# snippet:end


def main():
    initial = dict(stock)
    skus = list(initial)
    errors = []

    def buyer(sku):
        try:
            if buy(sku):
                with counts:
                    sold[sku] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    buyers = 50
    threads = [threading.Thread(target=buyer, args=(skus[i % len(skus)],)) for i in range(buyers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print("error:", errors[0], file=sys.stderr)
        return 1
    oversold = False
    for sku in sorted(skus):
        oversold = oversold or sold[sku] > initial[sku] or stock[sku] != initial[sku] - sold[sku]
        print("%s: sold %d of %d, %d left, oversold: %s"
              % (sku, sold[sku], initial[sku], stock[sku], "true" if oversold else "false"))
    return 1 if oversold else 0


if __name__ == "__main__":
    sys.exit(main())
