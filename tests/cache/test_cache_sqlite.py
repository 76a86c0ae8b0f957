"""SQLiteStore specifics: two workers on one file, restarts, the in-process LRU, fork."""
from __future__ import annotations

import os

import pytest
from cache_support import T0, response

from app.cache import ResponseCache, SQLiteStore
from app.providers.common import dumps


def worker(path, **kw):
    """One gunicorn worker's view: its own store object (pool, local LRU) and counters."""
    return ResponseCache(SQLiteStore(path), **kw)


def test_two_workers_share_entries_and_stats(tmp_path):
    path = tmp_path / "cache.db"
    a, b = worker(path), worker(path)
    assert a.put("k", response("from a"), model="m", key_id=1, ttl=600, now=T0)
    assert b.get("k", T0 + 1).response["choices"][0]["message"]["content"] == "from a"
    assert b.get("other", T0 + 1) is None
    a.get("k", T0 + 2)
    a.get("k", T0 + 3)
    a.get("x", T0 + 3)
    b.flush()
    sa = a.stats()                                      # a's own + b's flushed counts
    assert (sa["hits"], sa["misses"]) == (3, 2)
    assert sa["process"]["hits"] == 2 and sa["process"]["misses"] == 1
    sb = b.stats()
    assert (sb["hits"], sb["misses"], sb["hit_rate"]) == (3, 2, 0.6)
    assert sb["entries"] == sa["entries"] == 1


def test_stats_and_entries_survive_a_restart(tmp_path):
    path = tmp_path / "cache.db"
    first = worker(path)
    first.put("k", response(), model="m", key_id=None, ttl=600, now=T0)
    first.get("k", T0)
    first.get("nope", T0)
    first.flush()
    first.store.close()
    del first

    again = worker(path)                                # a new process on the same file
    assert again.get("k", T0 + 10).response == response()
    s = again.stats()
    assert (s["entries"], s["hits"], s["misses"]) == (1, 2, 1)
    assert s["bytes"] == len(dumps(response()))


def test_unflushed_counts_of_another_worker_are_not_seen_until_flushed(tmp_path):
    path = tmp_path / "cache.db"
    a, b = worker(path, flush_every=1000, flush_interval=1e9), worker(path)
    a.get("k", T0)
    assert b.stats()["misses"] == 0
    a.flush()
    assert b.stats()["misses"] == 1


def test_clear_in_one_worker_is_seen_by_the_other_local_lru(tmp_path):
    path = tmp_path / "cache.db"
    a, b = worker(path), worker(path)
    a.put("k", response(), model="m", key_id=1, ttl=600, now=T0)
    assert b.get("k", T0) is not None                   # now in b's in-process LRU
    assert "k" in b.store._local
    assert a.clear(model="m") == 1
    assert b.get("k", T0) is None                       # b noticed the clear (gen moved)


def test_refresh_in_one_worker_is_seen_by_the_other(tmp_path):
    path = tmp_path / "cache.db"
    a, b = worker(path), worker(path)
    a.put("k", response("v1"), model="m", key_id=1, ttl=600, now=T0)
    assert b.get("k", T0).response["choices"][0]["message"]["content"] == "v1"
    a.put("k", response("v2"), model="m", key_id=1, ttl=600, now=T0 + 1)   # no-cache refresh
    assert b.get("k", T0 + 2).response["choices"][0]["message"]["content"] == "v2"


def test_local_lru_serves_hot_keys_without_reading_the_row(tmp_path):
    path = tmp_path / "cache.db"
    a = worker(path)
    a.put("k", response(), model="m", key_id=1, ttl=600, now=T0)
    a.get("k", T0)
    # delete the row behind the store's back (no gen bump, as an eviction by another worker):
    # the local copy is still a correct answer until it expires
    conn = a.store._acquire()
    conn.execute("DELETE FROM cache_entry")
    a.store._give_back(conn)
    assert a.get("k", T0 + 1) is not None
    assert a.get("k", T0 + 600) is None                  # expiry is still checked


def test_local_lru_is_bounded(tmp_path):
    store = SQLiteStore(tmp_path / "cache.db", local_entries=3)
    cache = ResponseCache(store)
    for i in range(10):
        cache.put(f"k{i}", response(), model="m", key_id=None, ttl=600, now=T0)
    for i in range(10):
        assert cache.get(f"k{i}", T0) is not None
    assert list(store._local) == ["k7", "k8", "k9"]


def test_counted_totals_match_the_rows(tmp_path):
    cache = worker(tmp_path / "cache.db", flush_every=3)
    one = len(dumps(response(pad=100)))
    cache.max_bytes = 7 * one
    for i in range(50):
        cache.put(f"k{i % 13}", response(pad=100), model=f"m{i % 3}", key_id=i % 4,
                  ttl=5 if i % 5 == 0 else 600, now=T0 + i)
        cache.get(f"k{(i * 7) % 13}", T0 + i + 0.5)
        if i % 17 == 0:
            cache.clear(key_id=i % 4)
    cache.flush()
    c = cache.store.check()
    assert c["entries"] == c["rows"] and c["bytes"] == c["row_bytes"] <= 7 * one


def test_store_needs_a_file(tmp_path):
    with pytest.raises(ValueError):
        SQLiteStore(":memory:")


def test_store_opened_before_fork(tmp_path):
    """gunicorn --preload: the cache exists (and counted) before the fork."""
    path = tmp_path / "cache.db"
    cache = worker(path, flush_every=1000, flush_interval=1e9)
    cache.put("k", response(), model="m", key_id=None, ttl=600, now=T0)
    cache.get("k", T0)                                  # one pending hit in the parent
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                        # child: fresh pool, no inherited counts
        code = 1
        try:
            assert not cache.store._pool and not cache.store._local
            hit = cache.get("k", T0) is not None
            cache.put("c", response("child"), model="m", key_id=None, ttl=600, now=T0)
            cache.flush()
            os.write(w, b"ok" if hit else b"no")
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 10) == b"ok" and status == 0
    s = cache.stats()
    assert s["hits"] == 2 and s["misses"] == 0           # parent's 1 + child's 1, not 3
    assert cache.get("c", T0).response["choices"][0]["message"]["content"] == "child"
