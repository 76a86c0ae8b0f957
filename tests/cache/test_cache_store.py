"""ResponseCache over both stores: get/put/expiry, LRU eviction, oversize, clear, stats."""
from __future__ import annotations


import pytest
from cache_support import T0, fixture, response

from app.cache import Entry, ResponseCache
from app.providers.common import dumps


def size_of(resp) -> int:
    return len(dumps(resp))


@pytest.fixture
def cache(make_store):
    return ResponseCache(make_store())


def test_miss_then_hit(cache, clock):
    assert cache.get("k", clock()) is None
    resp = response()
    assert cache.put("k", resp, model="gpt-4o", key_id=7, ttl=60, now=clock()) is True
    e = cache.get("k", clock.advance(1))
    assert isinstance(e, Entry)
    assert e.response == resp
    assert (e.key, e.model, e.key_id, e.created, e.expires) == ("k", "gpt-4o", 7, T0, T0 + 60)
    assert e.size == size_of(resp)
    assert e.usage == resp["usage"]


def test_returned_response_is_a_copy(cache, clock):
    cache.put("k", response(), model="m", key_id=None, ttl=60, now=clock())
    e = cache.get("k", clock())
    e.response["id"] = "rewritten"
    e.response["choices"][0]["message"]["content"] = "changed"
    again = cache.get("k", clock())
    assert again.response == response()


def test_expiry_with_a_fake_clock(cache, clock):
    cache.put("k", response(), model="m", key_id=None, ttl=10, now=clock())
    assert cache.get("k", clock.advance(9.999)) is not None
    assert cache.get("k", clock.advance(0.001)) is None           # expires at T0 + 10 exactly
    s = cache.stats()                                              # flush: removed lazily
    assert (s["entries"], s["bytes"], s["expired"]) == (0, 0, 1)
    assert (s["hits"], s["misses"]) == (1, 1)


def test_default_ttl_and_non_positive_ttl(make_store, clock):
    cache = ResponseCache(make_store(), default_ttl=30)
    assert cache.put("a", response(), model="m", key_id=None, ttl=None, now=clock())
    assert cache.get("a", clock() + 29.9) is not None
    assert cache.get("a", clock() + 30) is None
    assert cache.put("b", response(), model="m", key_id=None, ttl=0, now=clock()) is False
    assert cache.put("c", response(), model="m", key_id=None, ttl=-5, now=clock()) is False


def test_put_replaces_and_renews(cache, clock):
    cache.put("k", response("old"), model="m", key_id=None, ttl=10, now=clock())
    cache.put("k", response("new"), model="m", key_id=None, ttl=10, now=clock.advance(8))
    e = cache.get("k", clock.advance(5))                           # old one would have expired
    assert e.response["choices"][0]["message"]["content"] == "new"
    s = cache.stats()
    assert s["entries"] == 1 and s["bytes"] == size_of(response("new"))


def test_expired_removal_spares_a_fresh_put(cache, clock):
    """The lazy delete of an expired version must not remove a newer version of the key."""
    cache.put("k", response("old"), model="m", key_id=None, ttl=10, now=clock())
    assert cache.get("k", clock.advance(11)) is None               # seen expired, pending
    cache.put("k", response("new"), model="m", key_id=None, ttl=10, now=clock())
    cache.flush()
    assert cache.get("k", clock()).response["choices"][0]["message"]["content"] == "new"


def test_incomplete_responses_are_refused(cache, clock):
    bad = response()
    bad["choices"][0]["finish_reason"] = None
    assert not cache.put("a", bad, model="m", key_id=None, ttl=60, now=clock())
    assert not cache.put("b", {**response(), "choices": []}, model="m", key_id=None, ttl=60,
                         now=clock())
    assert not cache.put("c", fixture("errors.json"), model="m", key_id=None, ttl=60,
                         now=clock())
    assert cache.stats()["entries"] == 0
    assert cache.stats()["process"]["refused"] == 3


def test_oversize_is_refused(make_store, clock):
    small = response()
    limit = size_of(small) + 100
    cache = ResponseCache(make_store(), max_entry_bytes=limit, max_bytes=10 * limit)
    assert cache.put("fits", response(pad=100), model="m", key_id=None, ttl=60, now=clock())
    assert not cache.put("big", response(pad=101), model="m", key_id=None, ttl=60, now=clock())
    assert cache.get("big", clock()) is None
    s = cache.stats()
    assert s["entries"] == 1 and s["bytes"] == limit
    assert s["process"]["refused"] == 1


def test_entry_larger_than_the_whole_cache_is_refused(make_store, clock):
    cache = ResponseCache(make_store(), max_bytes=100, max_entry_bytes=10_000)
    assert not cache.put("k", response(), model="m", key_id=None, ttl=60, now=clock())


def test_lru_eviction_follows_access_order(make_store, clock):
    one = size_of(response(pad=1000))
    cache = ResponseCache(make_store(), max_bytes=3 * one + 10, flush_every=1_000_000,
                          flush_interval=1e9)
    for i, k in enumerate("abc"):
        cache.put(k, response(pad=1000), model="m", key_id=None, ttl=600, now=clock() + i)
    clock.advance(10)
    assert cache.get("a", clock()) is not None         # a is now the most recent, b the least
    assert cache.get("c", clock.advance(1)) is not None
    # the access times are batched: the put carries them into its transaction
    cache.put("d", response(pad=1000), model="m", key_id=None, ttl=600, now=clock.advance(1))
    assert cache.get("b", clock()) is None             # least recently used: evicted
    for k in "dca":                                    # read again, in this order
        assert cache.get(k, clock.advance(1)) is not None
    s = cache.stats()
    assert s["evictions"] == 1 and s["entries"] == 3 and s["bytes"] == 3 * one
    cache.put("e", response(pad=1000), model="m", key_id=None, ttl=600, now=clock.advance(1))
    assert [k for k in "acde" if cache.get(k, clock()) is None] == ["d"]
    cache.get("a", clock.advance(1))
    cache.put("f", response(pad=1000), model="m", key_id=None, ttl=600, now=clock.advance(1))
    assert [k for k in "acef" if cache.get(k, clock()) is None] == ["c"]


def test_eviction_stays_under_max_bytes(make_store, clock):
    one = size_of(response(pad=500))
    cache = ResponseCache(make_store(), max_bytes=5 * one)
    for i in range(20):
        assert cache.put(f"k{i}", response(pad=500), model="m", key_id=None, ttl=600,
                         now=clock() + i)
        assert cache.stats()["bytes"] <= 5 * one
    s = cache.stats()
    assert s["entries"] == 5 and s["evictions"] == 15
    assert [i for i in range(20) if cache.get(f"k{i}", clock() + 30)] == [15, 16, 17, 18, 19]


def test_expired_entries_go_before_live_ones(make_store, clock):
    one = size_of(response(pad=500))
    cache = ResponseCache(make_store(), max_bytes=3 * one)
    cache.put("old-but-live", response(pad=500), model="m", key_id=None, ttl=600, now=clock())
    cache.put("short", response(pad=500), model="m", key_id=None, ttl=5,
              now=clock.advance(1))
    cache.put("x", response(pad=500), model="m", key_id=None, ttl=600, now=clock.advance(1))
    cache.put("y", response(pad=500), model="m", key_id=None, ttl=600, now=clock.advance(10))
    assert cache.get("old-but-live", clock()) is not None    # "short" (expired) made the room
    s = cache.stats()
    assert s["evictions"] == 0 and s["expired"] == 1 and s["entries"] == 3


def test_clear_by_model_key_and_pattern(cache, clock):
    rows = [("k1", "gpt-4o", 1), ("k2", "gpt-4o", 2), ("k3", "gpt-4o-mini", 1),
            ("k4", "claude-sonnet", 1), ("k5", "claude-haiku", None), ("k6", "llama3", 2)]

    def fill():
        cache.clear()
        for k, model, key_id in rows:
            cache.put(k, response(), model=model, key_id=key_id, ttl=600, now=clock())

    def live():
        return {k for k, _, _ in rows if cache.get(k, clock()) is not None}

    fill()
    assert cache.clear(model="gpt-4o") == 2
    assert live() == {"k3", "k4", "k5", "k6"}
    fill()
    assert cache.clear(key_id=1) == 3
    assert live() == {"k2", "k5", "k6"}
    fill()
    assert cache.clear(pattern="gpt-4o*") == 3
    assert live() == {"k4", "k5", "k6"}
    fill()
    assert cache.clear(pattern="claude-*", key_id=1) == 1
    assert live() == {"k1", "k2", "k3", "k5", "k6"}
    fill()
    assert cache.clear(pattern="*-[hs]*") == 2          # claude-haiku, claude-sonnet
    assert cache.clear(pattern="GPT*") == 0              # case-sensitive
    assert cache.clear(model="nope") == 0
    assert cache.clear() == 4
    s = cache.stats()
    assert s["entries"] == 0 and s["bytes"] == 0


def test_stats_counts_hits_and_misses(cache, clock):
    cache.put("k", response(), model="m", key_id=None, ttl=600, now=clock())
    for _ in range(3):
        cache.get("k", clock())
    cache.get("nope", clock())
    s = cache.stats()
    assert (s["hits"], s["misses"], s["hit_rate"]) == (3, 1, 0.75)
    assert s["entries"] == 1 and s["bytes"] == size_of(response())


def test_access_time_updates_are_batched(make_store, clock):
    store = make_store()
    cache = ResponseCache(store, flush_every=4, flush_interval=60)
    cache.put("k", response(), model="m", key_id=None, ttl=600, now=clock())
    for i in range(1, 4):
        cache.get("k", clock() + i)
    assert store.atime("k") == clock()                  # not written yet
    cache.get("k", clock() + 4)                          # 4th call: one batched write
    assert store.atime("k") == clock() + 4
    cache.get("k", clock() + 70)                         # the interval elapsed: flushed
    assert store.atime("k") == clock() + 70
