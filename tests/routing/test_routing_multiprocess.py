"""Across processes (gunicorn workers) sharing one SQLiteBreakerStore file, or one Redis."""
from __future__ import annotations

import multiprocessing as mp
import random

import pytest
from routing_support import T0

from app.routing import Breaker, SQLiteBreakerStore

PROCS = 8
CTX = mp.get_context("fork")
DEPS = list(range(1, 21))


def _store(where, **options):
    """A SQLiteBreakerStore on the file, or a RedisBreakerStore for a redis:// URL."""
    if str(where).startswith("redis://"):
        from app.redisconn import client
        from app.routing.redis import RedisBreakerStore
        return RedisBreakerStore(lambda: client(str(where)), **options)   # per-process client
    return SQLiteBreakerStore(where, **options)


@pytest.fixture(params=["sqlite", "redis"])
def where(request, tmp_path):
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return tmp_path / "breakers.db"


def _worker(path, store, barrier, queue, job, seed):
    try:
        store = store or _store(path)
        breaker = Breaker(store, fail_open=False)
        barrier.wait(timeout=30)
        queue.put((job(breaker, random.Random(seed)), None))
    except BaseException as exc:          # report, never hang the parent
        queue.put((None, repr(exc)))


def run(path, job, store=None):
    barrier, queue = CTX.Barrier(PROCS), CTX.Queue()
    procs = [CTX.Process(target=_worker, args=(path, store, barrier, queue, job, i))
             for i in range(PROCS)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    errors = [e for _, e in results if e]
    assert not errors, errors
    return [r for r, _ in results]


def trip_all(breaker, now=T0):
    for dep_id in DEPS:
        for _ in range(5):
            breaker.record(dep_id, "server_error", now)


def _probe_job(breaker, rng):
    """Every process asks for every deployment at the same instant, each in its own order."""
    order = DEPS[:]
    rng.shuffle(order)
    return {dep_id: breaker.allow(dep_id, T0 + 30) for dep_id in order}


def test_exactly_one_probe_across_8_processes(where):
    path = where
    parent = Breaker(_store(path), fail_open=False)
    trip_all(parent)
    results = run(path, _probe_job)
    for dep_id in DEPS:
        assert sum(r[dep_id] for r in results) == 1, dep_id
        assert parent.state(dep_id, T0 + 30)["probe_in_flight"]


def _early_job(breaker, rng):
    return [breaker.allow(d, T0 + 29.99) for d in DEPS]


def test_no_probe_before_the_cooldown_ends_across_processes(where):
    path = where
    trip_all(Breaker(_store(path)))
    assert not any(any(r) for r in run(path, _early_job))


def test_exactly_one_probe_with_a_store_opened_before_fork(where):
    """gunicorn --preload: the store (with a pooled connection and a cache) predates the fork."""
    path = where
    store = _store(path, read_ttl=3600)
    parent = Breaker(store, fail_open=False)
    trip_all(parent)
    assert not parent.allow(1, T0 + 1)             # the parent caches "open"
    results = run(path, _probe_job, store=store)
    for dep_id in DEPS:
        assert sum(r[dep_id] for r in results) == 1, dep_id


def _fail_job(breaker, rng):
    for _ in range(3):
        breaker.record(1, "server_error", T0)
    for _ in range(50):
        breaker.record(2, "ok", T0 + 1)
    return None


def test_failures_from_every_process_add_up(where):
    """24 failures from 8 processes: it opens on the 5th, later ones are ignored; and 400
    successes land in the window without a lost update."""
    path = where
    run(path, _fail_job)
    b = Breaker(_store(path), fail_open=False)
    st = b.state(1, T0)
    assert st["state"] == "open" and st["consecutive_failures"] == 5
    assert b.state(2, T0 + 1)["requests_in_window"] == PROCS * 50
