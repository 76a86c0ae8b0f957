"""Quick timing of Breaker.allow() + record() per request (CPU and wall, one process).

    cd /work/main && .venv/bin/python tests/routing/bench_breaker.py [N]

Not collected by pytest (no ``test_`` prefix). Steady state on closed breakers: 20
deployments, the clock advancing 2 ms per request (so the read cache expires every 0.5 s as
in production), 2% of outcomes failures (never enough to trip). Also order() over a 4-way
group for scale.
"""
from __future__ import annotations

import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from app.routing import (Breaker, Deployment, LiveState, MemoryBreakerStore,  # noqa: E402
                         SQLiteBreakerStore, order)


def bench(n: int, make_store, label: str) -> None:
    breaker = Breaker(make_store(), failure_threshold=10**9, min_requests=10**9)
    rng = random.Random(1)
    now = 1_750_000_000.0
    pc, pt = time.process_time, time.perf_counter
    cpu = {"allow": 0.0, "record": 0.0}
    wall = {"allow": 0.0, "record": 0.0}
    for i in range(n + 500):
        if i == 500:
            cpu = {"allow": 0.0, "record": 0.0}
            wall = {"allow": 0.0, "record": 0.0}
        now += 0.002
        dep = i % 20
        c0, w0 = pc(), pt()
        breaker.allow(dep, now)
        c1, w1 = pc(), pt()
        breaker.record(dep, "server_error" if rng.random() < 0.02 else "ok", now)
        c2, w2 = pc(), pt()
        cpu["allow"] += c1 - c0
        wall["allow"] += w1 - w0
        cpu["record"] += c2 - c1
        wall["record"] += w2 - w1
    a = (1e6 * cpu["allow"] / n, 1e6 * wall["allow"] / n)
    r = (1e6 * cpu["record"] / n, 1e6 * wall["record"] / n)
    print(f"{label:<34} allow {a[0]:6.1f} µs CPU ({a[1]:6.1f} wall)   record {r[0]:6.1f} µs"
          f" CPU ({r[1]:6.1f} wall)   both {a[1] + r[1]:6.1f} µs wall")
    breaker.store.close()


def bench_order(n: int) -> None:
    breaker = Breaker()
    live = LiveState(breaker=breaker)
    deps = [Deployment(i, i, priority=i % 2, weight=i + 1) for i in range(4)]
    rng = random.Random(1)
    t0 = time.perf_counter()
    for s in ("priority", "weighted", "least-latency", "least-busy", "cost"):
        for _ in range(n // 5):
            order(deps, s, live, rng, 1_750_000_000.0, est_input_tokens=100)
    print(f"{'order(), 4 deployments':<34} {1e6 * (time.perf_counter() - t0) / n:6.1f} µs")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    with tempfile.TemporaryDirectory() as d:
        bench(n, MemoryBreakerStore, "MemoryBreakerStore")
        bench(n, lambda: SQLiteBreakerStore(os.path.join(d, "a.db")),
              "SQLiteBreakerStore read_ttl=0.5")
        bench(n, lambda: SQLiteBreakerStore(os.path.join(d, "b.db"), read_ttl=0),
              "SQLiteBreakerStore read_ttl=0")
    bench_order(n)
