"""Cost of cache_key / get / put (µs per call). Run: .venv/bin/python tests/cache/bench_cache.py"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache_support import T0, fixture, response  # noqa: E402

from app.cache import (MemoryStore, ResponseCache, SQLiteStore, as_stream_chunks,  # noqa: E402
                       cache_key)


def bench(label, fn, n):
    fn(0)
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    us = (time.perf_counter() - t) / n * 1e6
    print(f"{label:58s} {us:8.1f} µs")
    return us


def main():
    with tempfile.TemporaryDirectory() as d:
        run(Path(d))


def run(tmp: Path):
    body = fixture("chat-request-full.json")
    small = {"model": "m", "messages": [{"role": "user", "content": "What is 2+2?"}],
             "temperature": 0}
    resp = response()                         # ~0.5 KB
    big = response(pad=8000)                  # ~8.5 KB
    print(f"response sizes: {len(str(resp))} / {len(str(big))} chars")
    bench("cache_key, 1-message request", lambda i: cache_key(small, "m"), 20000)
    bench("cache_key, chat-request-full.json (tools, images)", lambda i: cache_key(body, "m"),
          5000)
    bench("as_stream_chunks, 0.5 KB answer", lambda i: as_stream_chunks(resp), 5000)

    N = 2000
    for label, store in [("memory", MemoryStore()),
                         ("sqlite", SQLiteStore(tmp / "a.db")),
                         ("sqlite, no local LRU", SQLiteStore(tmp / "b.db", local_entries=0))]:
        cache = ResponseCache(store)
        bench(f"[{label}] put 0.5 KB (no eviction)",
              lambda i: cache.put(f"k{i}", resp, model="m", key_id=1, ttl=600, now=T0 + i), N)
        bench(f"[{label}] put 8.5 KB (no eviction)",
              lambda i: cache.put(f"b{i}", big, model="m", key_id=1, ttl=600, now=T0 + i), N)
        bench(f"[{label}] get hit 0.5 KB",
              lambda i: cache.get(f"k{i % 500}", T0 + N + i * 1e-5), 20000)
        bench(f"[{label}] get hit 8.5 KB",
              lambda i: cache.get(f"b{i % 500}", T0 + N + i * 1e-5), 20000)
        bench(f"[{label}] get miss", lambda i: cache.get(f"nope{i}", T0 + N + i * 1e-5), 20000)
        cache.max_bytes = cache.stats()["bytes"]
        bench(f"[{label}] put 0.5 KB, evicting LRU to stay under max_bytes",
              lambda i: cache.put(f"e{i}", resp, model="m", key_id=1, ttl=600,
                                  now=T0 + 10 * N + i), N)

    # another worker writing all the time: every lookup sees data_version move
    path = tmp / "c.db"
    a, b = ResponseCache(SQLiteStore(path)), ResponseCache(SQLiteStore(path))
    for i in range(500):
        a.put(f"k{i}", resp, model="m", key_id=1, ttl=600, now=T0)

    spent = 0.0
    for i in range(N):
        b.put(f"w{i}", resp, model="m", key_id=1, ttl=600, now=T0)   # not timed
        t = time.perf_counter()
        a.get(f"k{i % 500}", T0 + 1 + i * 1e-5)
        spent += time.perf_counter() - t
    print(f"{'[sqlite] get hit in A right after a put by worker B':58s} {spent / N * 1e6:8.1f} µs")

if __name__ == "__main__":
    main()
