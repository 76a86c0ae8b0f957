"""Quick timing of SQLiteStore.admit / settle (CPU and wall per call, one process).

    cd /work/main && .venv/bin/python tests/limits/bench_admit.py [N] [--redis]

``--redis``: RedisStore against a throwaway local redis-server instead (wall includes the
loopback round trip; the server's own CPU is not counted).

Not collected by pytest (no ``test_`` prefix). Steady state: 50 keys, 64 requests in flight
(each admission settles the one admitted 64 calls earlier), the clock advancing 2 ms per request
so token buckets, GCRA cells and pruning behave as in production. CPU is process time (user +
system: the WAL writes are system time), measured around each call.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import deque
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from app.limits import Budget, Limits, SQLiteStore  # noqa: E402

REDIS_URL = None


def bench(n: int, limits: Limits, budgets: list, label: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        if REDIS_URL:
            from app.limits import RedisStore
            store = RedisStore(REDIS_URL, prefix=f"bench:{label}:")
        else:
            store = SQLiteStore(os.path.join(d, "limits.db"))
        now = 1_750_000_000.0
        q: deque = deque()
        cpu = {"admit": 0.0, "settle": 0.0}
        wall = {"admit": 0.0, "settle": 0.0}
        pc, pt = time.process_time, time.perf_counter
        for i in range(n + 500):
            if i == 500:                          # warm-up done: schema, statement cache, pages
                cpu = {"admit": 0.0, "settle": 0.0}
                wall = {"admit": 0.0, "settle": 0.0}
            now += 0.002
            c0, w0 = pc(), pt()
            q.append(store.admit(f"key:{i % 50}", limits, budgets, 100, Decimal("0.001"), now))
            c1, w1 = pc(), pt()
            cpu["admit"] += c1 - c0
            wall["admit"] += w1 - w0
            if len(q) > 64:
                t = q.popleft().ticket
                c0, w0 = pc(), pt()
                store.settle(t, 80, Decimal("0.0008"), now)
                cpu["settle"] += pc() - c0
                wall["settle"] += pt() - w0
        per = {k: (1e6 * cpu[k] / n, 1e6 * wall[k] / n) for k in cpu}
        print(f"{label:<44} admit {per['admit'][0]:6.1f} µs CPU ({per['admit'][1]:6.1f} wall)"
              f"   settle {per['settle'][0]:6.1f} µs CPU ({per['settle'][1]:6.1f} wall)")
        store.close()


def main(n: int) -> None:
    big = 10**9
    bench(n, Limits(rpm=big), [], "rpm only")
    bench(n, Limits(rpm=big, rpd=big, tpm=big, tpd=big, concurrency=big), [],
          "rpm+rpd+tpm+tpd+concurrency")
    bench(n, Limits(rpm=big, rpd=big, tpm=big, tpd=big, concurrency=big),
          [Budget("key:1", Decimal(big), "month"), Budget("team:x", Decimal(big), "day")],
          "all limits + 2 budgets (typical key+team)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--redis"]
    count = int(args[0]) if args else 20000
    if "--redis" in sys.argv:
        from pathlib import Path

        from tests.support.servers import redis_server
        with tempfile.TemporaryDirectory() as root, redis_server(Path(root)) as server:
            REDIS_URL = server.url
            main(count)
    else:
        main(count)
