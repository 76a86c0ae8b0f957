"""The spend-control e2e suite with GATEWAY_REDIS_URL: the counters in a real redis-server.

Every test of test_spend_shared_store.py runs again against a two-worker gateway whose limits
live in Redis (no counters.db is ever created), then two gateways ("hosts", 2 workers each)
share one rpm limit exactly, and a Redis outage under gunicorn: requests keep flowing with
per-process limits, /metrics shows it, and the workers go back to Redis when it returns.
"""
from __future__ import annotations

import re
import shutil
import signal
import time
from collections import Counter

import pytest
import requests

import test_spend_shared_store as _shared
from spend_harness import _base_env, fire_at_once, start_gateway, wait_until

pytestmark = pytest.mark.e2e

for _name in dir(_shared):
    if _name.startswith("test_"):
        globals()[_name] = getattr(_shared, _name)


@pytest.fixture(scope="module")
def redis_srv(tmp_path_factory):
    from tests.support.servers import redis_server
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def spend_gw(gateway_factory, redis_srv):
    """The two-worker gateway, counters in Redis."""
    return gateway_factory("redis-a", GATEWAY_REDIS_URL=redis_srv.url)


@pytest.fixture(scope="module")
def host_b(spend_tmp, spend_template, redis_srv, spend_gw):
    """A second gateway (another "host": its own instance folder, so its own counters.db if
    Redis were not used) on host a's DB (providers and models already there) and Redis."""
    _, admin_key = spend_template
    instance = spend_tmp / "gw-redis-b"
    shutil.copytree(spend_template[0], instance)
    env = _base_env(instance)
    env.update({"GATEWAY_REDIS_URL": redis_srv.url, "GATEWAY_WORKERS": "2",
                "GATEWAY_DATABASE_URL": spend_gw.env["GATEWAY_DATABASE_URL"]})
    gw = start_gateway(instance, env, admin_key, spend_tmp / "gunicorn-redis-b.log", workers=2)
    try:
        yield gw
    finally:
        gw.stop(signal.SIGINT, 15)


def test_redis_holds_the_counters(spend_gw, redis_srv):
    import redis
    _, raw = spend_gw.make_key("redis-keys", limits={"rpm": 5},
                               budget={"amount_usd": "1", "period": "day"})
    assert spend_gw.chat(raw).status_code == 200
    keys = {k.decode() for k in redis.Redis.from_url(redis_srv.url).keys("gw:lim:*")}
    assert any(k.startswith("gw:lim:g:key:") for k in keys), keys
    assert any(k.startswith("gw:lim:b:key:") for k in keys), keys
    assert not spend_gw.counters_path.exists()


def test_rpm_is_exact_across_two_hosts(spend_gw, host_b):
    key_id, raw = spend_gw.make_key("rpm-2hosts", limits={"rpm": 30})
    wait_until(lambda: host_b.key_info(raw), 10, 0.1, "host b to serve the key")
    results = fire_at_once(100, lambda i: (spend_gw if i % 2 else host_b).chat(raw))
    assert not [r for r in results if isinstance(r, Exception)]
    statuses = Counter(r.status_code for r in results)
    assert statuses == {200: 30, 429: 70}, statuses
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in results
                       if r.status_code == 200)
    assert remaining == list(range(30))


def _redis_up(gw) -> list[float]:
    text = requests.get(f"{gw.base_url}/metrics", timeout=5).text
    return [float(v) for v in re.findall(
        r'^gateway_redis_up\{store="limits"\} (\S+)$', text, re.M)]


def test_outage_fails_open_with_per_process_limits(spend_gw, redis_srv):
    key_id, raw = spend_gw.make_key("outage", limits={"rpm": 1000})
    assert spend_gw.chat(raw).status_code == 200
    redis_srv.kill()
    try:
        results = fire_at_once(20, lambda i: spend_gw.chat(raw))
        assert Counter(r.status_code for r in results) == {200: 20}
        up = _redis_up(spend_gw)
        assert 0.0 in up, up                        # at least the workers that served them
        assert "store unreachable" in spend_gw.log_path.read_text()
        assert "redis://" not in "\n".join(l for l in spend_gw.log_path.read_text().splitlines()
                                           if "store unreachable" in l)
    finally:
        redis_srv.start()
    time.sleep(1.1)

    def back():
        for _ in range(6):
            assert spend_gw.chat(raw).status_code == 200
        return set(_redis_up(spend_gw)) == {1.0}
    wait_until(back, 10, 0.2, "every worker back on Redis")
    import redis
    # the killed Redis came back empty: the key's GCRA cell is there again, written after it
    assert redis.Redis.from_url(redis_srv.url).exists(f"gw:lim:g:key:{key_id}")
