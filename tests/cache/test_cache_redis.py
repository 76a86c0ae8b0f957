"""RedisCacheStore specifics: key layout and TTLs, binary bodies, sharing, exact totals, and
an outage (misses and skipped writes, counted, then recovery)."""
from __future__ import annotations

import time

import pytest
from cache_support import T0, response

from app import metrics
from app.cache import Record, ResponseCache, StoreError
from app.cache.redis import RedisCacheStore
from app.providers.common import dumps
from app.redisconn import client


def failures(store: str = "cache") -> float:
    return metrics.REDIS_FAILURES.labels(store)._value.get()


@pytest.fixture
def r(redis_url):
    return client(redis_url)


def test_keys_are_namespaced_and_entries_carry_a_ttl(r, clock):
    cache = ResponseCache(RedisCacheStore(r))
    cache.put("k", response(), model="gpt-4o", key_id=3, ttl=60, now=clock())
    keys = sorted(k.decode() for k in r.keys("*"))
    assert keys == ["gw:cache:e:k", "gw:cache:exp", "gw:cache:idx", "gw:cache:lru",
                    "gw:cache:meta"]
    assert 60_000 < r.pttl("gw:cache:e:k") <= 61_000          # ttl + 1 s grace
    for k in ("gw:cache:idx", "gw:cache:lru", "gw:cache:meta"):
        assert r.pttl(k) == -1


def test_bodies_are_kept_byte_for_byte(r):
    store = RedisCacheStore(r)
    body = bytes(range(256)) + b"\n\x00\r\n" + "é€😀".encode()
    store.put(Record("k", "m\nx", None, T0, T0 + 60, len(body), body), atime=T0,
              max_bytes=1 << 20, now=T0)
    rec = store.get("k")
    assert rec == Record("k", "m\nx", None, T0, T0 + 60, len(body), body)


def test_two_hosts_share_entries_stats_and_clears(r, clock):
    a, b = ResponseCache(RedisCacheStore(r)), ResponseCache(RedisCacheStore(r))
    resp = response()
    a.put("k", resp, model="gpt-4o", key_id=1, ttl=60, now=clock())
    assert b.get("k", clock()).response == resp
    a.get("k", clock())
    assert b.stats()["hits"] == 1 and a.stats()["hits"] == 2
    assert b.clear(model="gpt-4o") == 1
    assert a.get("k", clock()) is None


def test_counted_totals_match_the_index(r, clock):
    store = RedisCacheStore(r, prune_every=7)
    one = len(dumps(response(pad=300)))
    cache = ResponseCache(store, max_bytes=8 * one, flush_every=3)
    for i in range(60):
        cache.put(f"k{i % 17}", response(pad=300 + i % 5), model=f"m{i % 3}", key_id=i % 4,
                  ttl=5 + i % 7, now=clock.advance(1))
        cache.get(f"k{(i * 7) % 17}", clock())
        if i % 13 == 0:
            cache.clear(key_id=i % 4)
    cache.flush()
    c = store.check()
    assert (c["entries"], c["bytes"]) == (c["rows"], c["row_bytes"])
    assert c["bytes"] <= 8 * one + 5


def test_an_entry_redis_expired_itself_is_a_miss_and_its_row_is_reclaimed(r):
    store = RedisCacheStore(r, grace_ms=0)
    now = time.time()
    cache = ResponseCache(store, max_bytes=9_100)
    cache.put("short", response(), model="m", key_id=None, ttl=0.05, now=now)
    time.sleep(0.1)
    assert r.exists("gw:cache:e:short") == 0
    assert cache.get("short", time.time()) is None
    assert store.check()["rows"] == 1                 # the index row waits for the next put
    cache.put("big", response(pad=9000 - len(dumps(response()))), model="m", key_id=None,
              ttl=60, now=time.time())
    s = cache.stats()
    assert (s["entries"], s["expired"], s["evictions"]) == (1, 1, 0)


def test_an_outage_is_a_miss_and_a_skipped_write_then_recovers(tmp_path, clock):
    from tests.support.servers import redis_server
    with redis_server(tmp_path) as server:
        store = RedisCacheStore(client(server.url), retry_every=0.2)
        cache = ResponseCache(store)
        assert cache.put("k", response(), model="m", key_id=None, ttl=600, now=clock())
        assert cache.get("k", clock()) is not None
        before = failures()
        server.kill()
        t = time.monotonic()
        assert cache.get("k", clock()) is None                         # a miss, not an error
        assert cache.put("k2", response(), model="m", key_id=None, ttl=600, now=clock()) is False
        assert time.monotonic() - t < 1.5
        assert failures() == before + 1            # the second call did not even try Redis
        assert store.guard.up is False
        assert metrics.REDIS_UP.labels("cache")._value.get() == 0
        assert cache._local["errors"] == 2
        with pytest.raises(StoreError):
            store.counters()
        server.start()
        time.sleep(0.25)
        assert cache.get("k", clock()) is None                         # a restart is empty
        assert cache.put("k", response(), model="m", key_id=None, ttl=600, now=clock())
        assert cache.get("k", clock()) is not None
        assert store.guard.up is True and metrics.REDIS_UP.labels("cache")._value.get() == 1
