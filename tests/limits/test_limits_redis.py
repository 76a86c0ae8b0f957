"""RedisStore against a real redis-server: atomicity across threads and processes, key expiry,
NOSCRIPT reloads, money precision; FailoverStore through a killed and restarted server.

(Every store test in this directory also runs against RedisStore through the ``make``/``store``
fixtures; these are the Redis-specific ones.)
"""
from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal

import pytest
import redis
from limits_support import T0, D, gevent_burst

from app.limits import (Budget, Denied, FailoverStore, Limits, MemoryStore, RedisStore,
                        StoreUnavailable)
from app.limits.redis import from_pico, to_pico

import test_limits_multiprocess as mp_tests


def raw(url):
    return redis.Redis.from_url(url, decode_responses=True)


# --- atomicity ----------------------------------------------------------------------------------
def test_threads_admit_exactly_the_rpm_and_the_budget(redis_url):
    store = RedisStore(redis_url)
    budget = Budget("team:t", D("0.75"), "day")
    counts, errors = {"rpm": 0, "budget": 0}, []
    start = threading.Barrier(16)

    def hammer():
        try:
            start.wait()
            for i in range(40):
                for kind in ("rpm", "budget"):
                    try:
                        if kind == "rpm":
                            store.admit("key:r", Limits(rpm=100), [], 0, 0, T0)
                        else:
                            store.admit(f"key:{i % 4}", Limits(), [budget], 1, D("0.01"), T0)
                        with lock:
                            counts[kind] += 1
                    except Denied:
                        pass
        except BaseException as exc:
            errors.append(exc)

    lock = threading.Lock()
    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert counts == {"rpm": 100, "budget": 75}      # 640 attempts each
    st = store.state("key:0", Limits(), [budget], T0)["budgets"][0]
    assert st["reserved_usd"] == D("0.75") and st["remaining_usd"] == 0
    assert store.mismatches == 0


@pytest.mark.parametrize("job,expected", [
    (mp_tests._rpm_job, (100, {"rate_limit_requests": 300})),
    (mp_tests._budget_job, (50, {"budget": 350})),
    (mp_tests._concurrency_job, (10, {"concurrency": 390})),
])
def test_processes_admit_exactly_k(redis_url, job, expected):
    """8 forked processes (each its own client, as gunicorn workers) against one Redis."""
    store = RedisStore(redis_url)
    assert mp_tests.run(None, 50, job, store=store) == expected


def test_no_lost_updates_across_processes(redis_url):
    store = RedisStore(redis_url)
    n = 40
    admitted, _ = mp_tests.run(None, n, mp_tests._settle_job, store=store)
    assert admitted == mp_tests.PROCS * n
    b = Budget("key:1", D(1000), "day")
    st = store.state("key:1", Limits(tpd=10**9), [b], T0 + n + 1)
    assert st["budgets"][0]["spent_usd"] == mp_tests.PROCS * sum(
        mp_tests.COST * (1 + i % 4) for i in range(n))
    assert st["budgets"][0]["reserved_usd"] == 0
    assert st["limits"]["tpd"]["used"] == mp_tests.PROCS * sum(7 + i % 3 for i in range(n))
    assert st["in_flight"] == 0


# --- keys, expiry, scripts, money -------------------------------------------------------------
def test_every_key_expires(redis_url):
    store = RedisStore(redis_url, prefix="x:", lease_ttl=30, retain=60, ttl_slack=1)
    now = time.time()
    lim = Limits(rpm=10, rpd=1000, tpm=1000, tpd=10**6, concurrency=5)
    budgets = [Budget("key:1", D("5"), "day"), Budget("team:t", D("50"), "total")]
    a = store.admit("key:1", lim, budgets, 100, D("0.5"), now)
    b = store.admit("key:1", lim, budgets, 100, D("0.5"), now)
    store.settle(a.ticket, 80, D("0.25"), now + 0.1)
    r = raw(redis_url)
    keys = sorted(r.keys("x:*"))
    assert keys == sorted([
        "x:g:key:1", "x:k:key:1:tpm", "x:k:key:1:tpd", "x:l:key:1",
        f"x:t:{b.ticket}",
        *[f"x:{kind}:key:1:day:{int(now // 86400) * 86400}" for kind in "br"],
        *[f"x:{kind}:team:t:total:0" for kind in "br"]])
    ttl = {k: r.pttl(k) / 1000 for k in keys}
    assert 172 < ttl["x:g:key:1"] <= 174             # the rpd TAT, two intervals ahead, + slack
    assert 59 < ttl["x:k:key:1:tpm"] <= 62 and 86_340 < ttl["x:k:key:1:tpd"] <= 86_462
    assert 29 < ttl["x:l:key:1"] <= 31
    assert 89 < ttl[f"x:t:{b.ticket}"] <= 91         # the unsettled ticket: lease + retain
    day_end = (int(now // 86400) + 1) * 86400 - now + 60
    assert day_end - 2 < ttl[f"x:b:key:1:day:{int(now // 86400) * 86400}"] <= day_end + 1
    assert ttl["x:b:team:t:total:0"] == ttl["x:r:team:t:total:0"] == -0.001   # never expires


def test_idle_keys_are_gone_after_their_ttl(redis_url):
    store = RedisStore(redis_url, prefix="y:", lease_ttl=0.2, retain=0, ttl_slack=0)
    now = time.time()
    a = store.admit("key:1", Limits(rpm=6000, concurrency=2), [], 0, 0, now)
    store.admit("key:1", Limits(rpm=6000, concurrency=2), [], 0, 0, now)
    store.release(a.ticket, now)
    r = raw(redis_url)
    assert r.keys("y:*")
    deadline = time.monotonic() + 5
    while r.keys("y:*") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.keys("y:*") == []        # GCRA cell, lease zset and the unsettled ticket all expired


def test_crashed_worker_reservation_expires_lazily(redis_url):
    store = RedisStore(redis_url, lease_ttl=100)
    b = Budget("key:1", D("1"), "month")
    store.admit("key:1", Limits(concurrency=1), [b], 0, D("1"), T0)     # never settled
    with pytest.raises(Denied):
        store.admit("key:1", Limits(concurrency=1), [b], 0, D("0.1"), T0 + 99)
    store.admit("key:1", Limits(concurrency=1), [b], 0, D("1"), T0 + 100)
    st = store.state("key:1", Limits(), [b], T0 + 100)
    assert st["budgets"][0]["reserved_usd"] == 1 and st["in_flight"] == 1


def test_script_flush_reloads_transparently(redis_url):
    store = RedisStore(redis_url)
    a = store.admit("key:1", Limits(rpm=3), [], 0, 0, T0)
    r = raw(redis_url)
    r.script_flush()
    assert r.script_exists(store._admit.sha, store._finish.sha) == [False, False]
    store.admit("key:1", Limits(rpm=3), [], 0, 0, T0)                    # NOSCRIPT -> load
    r.script_flush()
    store.settle(a.ticket, 0, D("0.1"), T0)                              # NOSCRIPT -> load
    assert r.script_exists(store._admit.sha, store._finish.sha) == [False, True]
    store.admit("key:1", Limits(rpm=3), [], 0, 0, T0)
    assert r.script_exists(store._admit.sha, store._finish.sha) == [True, True]
    with pytest.raises(Denied):
        store.admit("key:1", Limits(rpm=3), [], 0, 0, T0)
    assert store.state("key:1", Limits(rpm=3), [], T0)["in_flight"] == 2


def test_money_is_exact_pico_dollars(redis_url):
    assert to_pico(D("0.000000000001")) == 1 and from_pico("1") == D("1E-12")
    assert to_pico(D("0.0000000000001")) == 1                   # finer: reserved rounded up
    assert str(from_pico(str(123 * 10**12 + 4500))) == "123.0000000045"
    assert from_pico("-5") == D("-0.000000000005") and str(from_pico("0")) == "0"
    store = RedisStore(redis_url)
    big = Budget("team:big", D("123456789012.000000000001"), "total")   # beyond 2^53 pico
    a = store.admit("key:1", Limits(), [big], 0, D("123456789011.999999999999"), T0)
    store.admit("key:1", Limits(), [big], 0, D("0.000000000002"), T0)   # lands on the amount
    with pytest.raises(Denied):
        store.admit("key:1", Limits(), [big], 0, D("0.000000000001"), T0)
    store.settle(a.ticket, 0, D("99999999999.123456789012"), T0)
    assert store.spend("team:big", "total", T0) == D("99999999999.123456789012")
    st = store.state("key:1", Limits(), [big], T0)["budgets"][0]
    assert st["reserved_usd"] == D("0.000000000002")


# --- FailoverStore: a real outage ---------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _failover(url, failure="open", **kw):
    events = {"errors": 0, "states": []}
    clock = FakeClock()
    store = FailoverStore(RedisStore(url), failure=failure, clock=clock,
                          on_error=lambda e: events.__setitem__("errors", events["errors"] + 1),
                          on_state=events["states"].append, **kw)
    return store, clock, events


def test_fail_open_uses_local_limits_then_returns_to_redis(redis_server_session, redis_url, caplog):
    store, clock, events = _failover(redis_url)
    lim = Limits(rpm=2)
    shared = store.admit("key:1", lim, [], 0, 0, T0)
    assert not shared.ticket.startswith("local:") and events["states"] == [True]
    redis_server_session.kill()
    caplog.set_level(logging.WARNING, logger="app.limits.failover")
    a = store.admit("key:1", lim, [], 0, 0, T0)            # fails over: a fresh local cell
    b = store.admit("key:1", lim, [], 0, 0, T0)
    assert a.ticket.startswith("local:") and b.ticket.startswith("local:")
    with pytest.raises(Denied):                             # the local limit is enforced
        store.admit("key:1", lim, [], 0, 0, T0)
    assert events == {"errors": 1, "states": [True, False]}   # no probe within the second
    store.settle(shared.ticket, 0, 0, T0)                   # a shared ticket: kept for later
    store.release(a.ticket, T0)                             # a local one: to the fallback
    assert len(store.backlog) == 1
    with pytest.raises(StoreUnavailable):
        store.state("key:1", lim, [], T0)
    clock.t += 1.0
    with pytest.raises(Denied):
        store.admit("key:1", lim, [], 0, 0, T0)             # probe failed: still local
    assert events["errors"] == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "per process" in warnings[0].getMessage()
    assert "redis://" not in warnings[0].getMessage()

    redis_server_session.start()                                       # same port, data gone
    with pytest.raises(Denied):                             # not probed yet: still local
        store.admit("key:1", lim, [], 0, 0, T0)
    clock.t += 1.0
    back = store.admit("key:1", lim, [], 0, 0, T0)
    assert not back.ticket.startswith("local:")
    assert events["states"] == [True, False, True] and len(store.backlog) == 0
    assert store.state("key:1", lim, [], T0)["limits"]["rpm"]["used"] == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_fail_closed_refuses_until_redis_answers(redis_server_session, redis_url):
    store, clock, events = _failover(redis_url, failure="closed")
    store.admit("key:1", Limits(rpm=5), [], 0, 0, T0)
    redis_server_session.kill()
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            store.admit("key:1", Limits(rpm=5), [], 0, 0, T0)
    assert events == {"errors": 1, "states": [True, False]}
    redis_server_session.start()
    clock.t += 1.0
    assert not store.admit("key:1", Limits(rpm=5), [], 0, 0, T0).ticket.startswith("local:")
    assert events["states"] == [True, False, True]


def test_a_refusal_from_redis_ends_the_outage(redis_server_session, redis_url):
    store, clock, events = _failover(redis_url)
    redis_server_session.kill()
    store.admit("key:1", Limits(rpm=1), [], 0, 0, T0)           # local
    redis_server_session.start()
    clock.t += 1.0
    with pytest.raises(Denied):
        store.admit("key:1", Limits(rpm=0), [], 0, 0, T0)       # the probe: Redis refuses
    assert not store.down and events["states"] == [False, True]
    assert not store.admit("key:1", Limits(rpm=1), [], 0, 0, T0).ticket.startswith("local:")


def test_settles_missed_during_an_outage_are_replayed(redis_url):
    """A Redis that stops answering but keeps its data (CLIENT PAUSE: calls time out)."""
    store, clock, events = _failover(redis_url)
    b = Budget("key:1", D("1"), "day")
    a = store.admit("key:1", Limits(concurrency=1), [b], 0, D("0.6"), T0)
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
    try:
        store.settle(a.ticket, 0, D("0.25"), T0 + 1)      # times out (0.5 s): kept
        assert len(store.backlog) == 1 and store.down
        local = store.admit("key:1", Limits(concurrency=1), [b], 0, D("0.6"), T0 + 1)
        assert local.ticket.startswith("local:")
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    clock.t += 1.0
    store.release(local.ticket, T0 + 1)                   # local ticket: no probe needed
    store.admit("key:1", Limits(concurrency=1), [b], 0, D("0.75"), T0 + 2)   # probe + replay
    assert not store.down and not store.backlog
    assert store.spend("key:1", "day", T0 + 2) == D("0.25")
    st = store.state("key:1", Limits(concurrency=1), [b], T0 + 2)
    assert st["in_flight"] == 1 and st["budgets"][0]["reserved_usd"] == D("0.75")
    assert events["errors"] == 1


def test_greenlets_share_one_client(redis_url):
    """Under gevent monkey-patching (the gunicorn worker class) admissions interleave at every
    round trip, and still exactly 30 reservations of $0.01 fit the $0.30 budget."""
    res = gevent_burst("RedisStore", redis_url)
    assert res["reasons"] == {"ok": 30, "budget": 170}
    assert Decimal(res["spent"]) == Decimal("0.150")


def test_server_clock_ignores_the_callers_clock(redis_url):
    """clock="server": instants come from Redis' TIME inside the script, whatever hosts say."""
    store = RedisStore(redis_url, prefix="s:", clock="server", lease_ttl=60)
    lim = Limits(rpm=2, tpm=1000, concurrency=5)
    b = Budget("key:1", D("1"), "total")
    skewed = [0.0, 1e9, time.time() + 3600]            # three hosts with very wrong clocks
    a = store.admit("key:1", lim, [b], 100, D("0.4"), skewed[0])
    store.admit("key:1", lim, [b], 100, D("0.4"), skewed[1])
    with pytest.raises(Denied) as denied:
        store.admit("key:1", lim, [b], 100, D("0.1"), skewed[2])
    assert denied.value.reason == "rate_limit_requests" and 29 <= denied.value.retry_after <= 30
    r = raw(redis_url)
    real_us = time.time() * 1e6
    for _, score in r.zrange("s:l:key:1", 0, -1, withscores=True):
        assert abs(score - (real_us + 60e6)) < 5e6        # leases expire 60 s from Redis' now
    (bucket,) = [k for k in r.hkeys("s:k:key:1:tpm") if k.isdigit()]   # + s, lo, hi
    assert abs(int(bucket) - time.time()) <= 2           # tokens counted in the real second
    store.settle(a.ticket, 30, D("0.25"), 0.0)
    st = store.state("key:1", lim, [b], 0.0)
    assert st["limits"]["tpm"]["used"] == 130 and st["in_flight"] == 1
    assert st["limits"]["rpm"]["remaining"] == 0 and 29 < st["limits"]["rpm"]["reset_s"] <= 60
    assert st["budgets"][0]["spent_usd"] == D("0.25")
    assert st["budgets"][0]["reserved_usd"] == D("0.4")
    assert store.mismatches == 0


def test_server_clock_is_exact_across_threads(redis_url):
    store = RedisStore(redis_url, clock="server")
    ok = []
    start = threading.Barrier(10)

    def hammer():
        start.wait()
        for _ in range(30):
            try:
                ok.append(store.admit("key:1", Limits(rpm=60), [], 0, 0, 0.0).headers)
            except Denied:
                pass

    threads = [threading.Thread(target=hammer) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 300 attempts within well under a second (one more slot frees each second)
    assert 60 <= len(ok) <= 61
    remaining = sorted(int(h["x-ratelimit-remaining-requests"]) for h in ok[:60])
    assert remaining == sorted(range(60))             # each value once: ordered by one clock
