"""Four processes (gunicorn workers) sharing one cache file (or one Redis): consistent puts,
gets and totals."""
from __future__ import annotations

import multiprocessing as mp

import pytest
from cache_support import T0, response

from app.cache import ResponseCache, SQLiteStore
from app.providers.common import dumps

PROCS = 4
N = 40
CTX = mp.get_context("fork")


def _store(where):
    """A SQLiteStore on the file, or a RedisCacheStore for a redis:// URL."""
    if str(where).startswith("redis://"):
        from app.cache.redis import RedisCacheStore
        from app.redisconn import client
        return RedisCacheStore(lambda: client(str(where)))    # the forked worker's own client
    return SQLiteStore(where)


@pytest.fixture(params=["sqlite", "redis"])
def where(request, tmp_path):
    """Where the workers' shared cache lives: a SQLite file or a Redis URL."""
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return tmp_path / "cache.db"


def _text(e):
    return e.response["choices"][0]["message"]["content"]


def _consistency_worker(path, i, barrier, queue):
    try:
        cache = ResponseCache(_store(path), flush_every=16)
        barrier.wait(timeout=30)
        for j in range(N):                                 # own keys, plus racing shared keys
            assert cache.put(f"p{i}-{j}", response(f"{i}:{j}"), model=f"m{i}", key_id=i,
                             ttl=600, now=T0 + j)
            assert cache.put(f"shared-{j}", response(f"shared:{j}:{i}"), model="shared",
                             key_id=None, ttl=600, now=T0 + j)
        barrier.wait(timeout=30)                           # everyone has written everything
        hits = misses = 0
        for p in range(PROCS):
            for j in range(N):
                e = cache.get(f"p{p}-{j}", T0 + 100)
                assert e is not None and _text(e) == f"{p}:{j}", (p, j, e)
                assert (e.model, e.key_id) == (f"m{p}", p)
                hits += 1
        for j in range(N):
            e = cache.get(f"shared-{j}", T0 + 100)
            assert e is not None and _text(e).startswith(f"shared:{j}:")
            hits += 1
            assert cache.get(f"absent-{i}-{j}", T0 + 100) is None
            misses += 1
        cache.flush()
        queue.put((hits, misses, None))
    except BaseException as exc:                           # report, never hang the parent
        queue.put((0, 0, repr(exc)))


def _run(target, *args):
    barrier, queue = CTX.Barrier(PROCS), CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args, i, barrier, queue)) for i in range(PROCS)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    errors = [r[-1] for r in results if r[-1]]
    assert not errors, errors
    return results


def test_four_processes_put_and_get_consistently(where):
    path = where
    results = _run(_consistency_worker, path)
    cache = ResponseCache(_store(path))
    s = cache.stats()
    assert s["entries"] == PROCS * N + N
    assert s["hits"] == sum(r[0] for r in results) == PROCS * (PROCS * N + N)
    assert s["misses"] == sum(r[1] for r in results) == PROCS * N
    assert s["evictions"] == 0
    c = cache.store.check()
    assert c["entries"] == c["rows"] and c["bytes"] == c["row_bytes"] == s["bytes"]
    assert cache.clear(pattern="m*") == PROCS * N        # one worker clears for all
    assert cache.stats()["entries"] == N


ONE = len(dumps(response(pad=300)))
CAP = 25 * ONE


def _eviction_worker(path, i, barrier, queue):
    try:
        cache = ResponseCache(_store(path), max_bytes=CAP)
        barrier.wait(timeout=30)
        for j in range(N):
            cache.put(f"p{i}-{j}", response(pad=300), model="m", key_id=i, ttl=600,
                      now=T0 + j + i / 10)
            cache.get(f"p{(i + 1) % PROCS}-{j}", T0 + j)
        cache.flush()
        queue.put((None,))
    except BaseException as exc:
        queue.put((repr(exc),))


def test_eviction_under_contention_keeps_exact_totals(where):
    path = where
    _run(_eviction_worker, path)
    cache = ResponseCache(_store(path), max_bytes=CAP)
    s = cache.stats()
    c = cache.store.check()
    assert c["entries"] == c["rows"] == s["entries"] == 25
    assert c["bytes"] == c["row_bytes"] == s["bytes"] <= CAP
    assert s["evictions"] + s["entries"] == PROCS * N       # every put either stayed or went
    # the survivors are the most recently written
    survivors = [f"p{i}-{j}" for i in range(PROCS) for j in range(N)
                 if cache.get(f"p{i}-{j}", T0 + 100) is not None]
    assert len(survivors) == 25
    assert all(int(k.split("-")[1]) >= N - 8 for k in survivors), survivors
