"""Run by test_mutual_exclusion_across_processes in its own process:
increments the counter in a file n times, each time under the lock, and
checks that each holder's fence is larger than the last one's."""

import sys
import time

from lockproxy import LockClient

url, name, path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with LockClient(url) as client:
    for _ in range(n):
        with client.lock(name, ttl=10, wait=60) as lk:
            with open(path) as f:
                count, last_fence = map(int, f.read().split())
            if lk.fence <= last_fence:
                sys.exit(f"fence {lk.fence} came after fence {last_fence}")
            # Widen the window in which a broken lock would let a second
            # writer read the same count (or a half-written file).
            time.sleep(0.001)
            with open(path, "w") as f:
                f.write(f"{count + 1} {lk.fence}")
