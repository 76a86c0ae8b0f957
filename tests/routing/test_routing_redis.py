"""RedisBreakerStore specifics: sharing and the read cache, one probe under a race, expiring
keys, and the per-process fallback while Redis is down."""
from __future__ import annotations

import threading
import time

import pytest
from routing_support import T0

from app import metrics
from app.redisconn import client
from app.routing import Breaker
from app.routing.redis import RedisBreakerStore


def two_hosts(url, read_ttl=0.5):
    return (Breaker(RedisBreakerStore(client(url), read_ttl=read_ttl), fail_open=False),
            Breaker(RedisBreakerStore(client(url), read_ttl=read_ttl), fail_open=False))


def test_state_changes_are_seen_by_the_other_host_within_read_ttl(redis_url):
    a, b = two_hosts(redis_url)
    assert b.allow(1, T0)
    for _ in range(5):
        a.record(1, "server_error", T0 + 0.1)
    assert not a.allow(1, T0 + 0.1)
    assert b.allow(1, T0 + 0.4)                    # b's cached read is 0.4 s old
    assert not b.allow(1, T0 + 0.5)
    assert b.state(1, T0 + 0.1)["state"] == "open"
    a.reset(1)
    assert b.allow(1, T0 + 1.0)


def test_exactly_one_probe_when_many_workers_race(redis_url):
    hosts = [Breaker(RedisBreakerStore(client(redis_url), read_ttl=3600), fail_open=False)
             for _ in range(8)]
    for _ in range(5):
        hosts[0].record(7, "server_error", T0)
    assert not any(h.allow(7, T0 + 1) for h in hosts)          # all cache "open"
    start = threading.Barrier(len(hosts) * 4)
    got = []

    def go(h):
        start.wait()
        got.append(h.allow(7, T0 + 31))
    threads = [threading.Thread(target=go, args=(h,)) for h in hosts for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [False] * 31 + [True]
    assert hosts[3].state(7, T0 + 31)["probe_in_flight"] is True


def test_rows_expire_and_closed_rows_are_deleted(redis_url):
    r = client(redis_url)
    store = RedisBreakerStore(r, keep_s=100)
    b = Breaker(store, fail_open=False, cooldown_s=30)
    b.record(1, "server_error", T0)
    assert 99_000 < r.pttl("gw:breaker:1") <= 100_000
    for _ in range(4):
        b.record(1, "server_error", T0)
    assert 129_000 < r.pttl("gw:breaker:1") <= 130_000          # open_until + keep_s
    b.record(2, "auth", T0)
    assert r.pttl("gw:breaker:2") > 29 * 86400 * 1000
    assert sorted(b.states(T0)) == [1, 2]
    r.delete("gw:breaker:2")                                     # as if it had expired
    assert sorted(b.states(T0)) == [1]
    assert r.smembers("gw:breaker:ids") == {b"1"}
    assert b.allow(1, T0 + 30)                                   # the probe ...
    assert b.record(1, "ok", T0 + 30) == "closed"                # ... closes: no key left
    assert r.exists("gw:breaker:1") == 0 and r.smembers("gw:breaker:ids") == set()


def test_an_outage_falls_back_to_a_local_breaker_then_recovers(tmp_path):
    from tests.support.servers import redis_server
    with redis_server(tmp_path) as server:
        store = RedisBreakerStore(client(server.url), read_ttl=0, retry_every=0.3)
        b = Breaker(store, fail_open=False)
        b.record(1, "auth", T0)
        assert not b.allow(1, T0)
        before = metrics.REDIS_FAILURES.labels("breaker")._value.get()
        server.kill()
        t = time.monotonic()
        assert b.allow(1, T0)                      # the local store knows nothing of it
        for _ in range(5):
            assert b.record(2, "server_error", T0) in ("closed", "open")
        assert not b.allow(2, T0)                  # ... but trips on what this worker sees
        assert b.state(2, T0)["state"] == "open"
        assert time.monotonic() - t < 1.0
        # one failed command, then Redis is left alone until retry_every has passed
        assert metrics.REDIS_FAILURES.labels("breaker")._value.get() == before + 1
        assert metrics.REDIS_UP.labels("breaker")._value.get() == 0
        time.sleep(0.35)
        assert not b.allow(2, T0)                  # probed Redis (still down): local again
        assert metrics.REDIS_FAILURES.labels("breaker")._value.get() == before + 2
        server.start()
        time.sleep(0.35)
        assert b.allow(2, T0)                      # Redis is back (and empty): shared state
        assert store.guard.up is True and metrics.REDIS_UP.labels("breaker")._value.get() == 1
        assert store.local.all() == {}
        for _ in range(5):
            b.record(3, "server_error", T0)
        other = Breaker(RedisBreakerStore(client(server.url), read_ttl=0), fail_open=False)
        assert not other.allow(3, T0)


def test_conflicting_writers_lose_no_outcome(redis_url):
    hosts = [Breaker(RedisBreakerStore(client(redis_url), read_ttl=0), fail_open=False,
                     failure_threshold=1000, min_requests=1000) for _ in range(4)]

    def go(h):
        for _ in range(25):
            h.record(9, "server_error", T0)
    threads = [threading.Thread(target=go, args=(h,)) for h in hosts for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hosts[0].state(9, T0)["consecutive_failures"] == 200


@pytest.mark.parametrize("bad", [b"not json", b"[1,2]"])
def test_an_unreadable_row_fails_open(redis_url, bad):
    client(redis_url).set("gw:breaker:5", bad)
    assert Breaker(RedisBreakerStore(client(redis_url))).allow(5, T0) is True


def test_a_change_costs_one_round_trip_unless_another_worker_changed_the_row(redis_url):
    import redis as redis_py

    class Counting(redis_py.Redis):
        calls: list = []

        def execute_command(self, *args, **options):
            Counting.calls.append(args[0])
            return super().execute_command(*args, **options)

    from app.routing.redis import _CAS
    client(redis_url).script_load(_CAS)             # as after the first use (EVALSHA works)
    r = Counting.from_url(redis_url)
    mine = Breaker(RedisBreakerStore(r, read_ttl=0), fail_open=False)
    other = Breaker(RedisBreakerStore(client(redis_url), read_ttl=0), fail_open=False)
    mine.record(1, "server_error", T0)              # never seen: guessed absent, right
    assert Counting.calls == ["EVALSHA"]
    mine.record(1, "server_error", T0)              # the value it wrote itself
    assert Counting.calls == ["EVALSHA"] * 2
    other.record(1, "server_error", T0)             # changed behind its back
    Counting.calls.clear()
    assert mine.record(1, "server_error", T0) == "closed"
    assert Counting.calls == ["EVALSHA", "EVALSHA"]  # the check failed, decided again
    assert mine.state(1, T0)["consecutive_failures"] == 4
