"""Limits and budgets on the proxy path with GATEWAY_REDIS_URL set: every test of test_spend.py
again against a real redis-server, then Redis outages (fail open / fail closed) and the
Redis metrics on /metrics."""
from __future__ import annotations

import re
import time

import pytest
import responses

from tests.proxy import test_spend as _spend
from tests.proxy.conftest import usage_rows
from tests.proxy.test_spend import BODY, CHAT_URL, make_key, reply
from tests.support.redis_fixtures import redis_server_session, redis_url  # noqa: F401

# the whole of test_spend.py, collected here again with the Redis-backed `gw` below
for _name in dir(_spend):
    if _name.startswith("test_"):
        globals()[_name] = getattr(_spend, _name)


@pytest.fixture
def failure():
    return "open"


@pytest.fixture
def gw(app_factory, redis_url, failure):
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0, REDIS_URL=redis_url, REDIS_FAILURE=failure,
                      LIMITS_STORE_URL=None)
    with app.app_context():
        yield app


def metric(text: str, name: str) -> float | None:
    m = re.search(rf'^{name}\{{store="limits"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def test_the_gate_uses_redis(gw, redis_url):
    import redis
    from app.limits import FailoverStore, RedisStore
    from app.services.spend import gate
    store = gate().store
    assert isinstance(store, FailoverStore) and isinstance(store.primary, RedisStore)
    assert store.failure == "open"
    store.admit("key:1", _spend_limits(), [], 0, 0, time.time())
    assert redis.Redis.from_url(redis_url).keys("gw:lim:*")


def test_store_choice(app_factory, redis_url):
    from app.limits import FailoverStore, MemoryStore, SQLiteStore
    from app.services.spend import make_gate_store
    app = app_factory(REDIS_URL=redis_url, LIMITS_STORE_URL="memory://")
    assert isinstance(make_gate_store(app), MemoryStore)      # an explicit store wins
    app = app_factory(REDIS_URL=None, LIMITS_STORE_URL=None)
    assert isinstance(make_gate_store(app), SQLiteStore)      # no Redis: the SQLite file
    app = app_factory(REDIS_URL=redis_url, LIMITS_STORE_URL=None, REDIS_FAILURE="closed",
                      LIMITS_LEASE_TTL=30)
    store = make_gate_store(app)
    assert isinstance(store, FailoverStore) and store.failure == "closed"
    assert store.primary.server_clock and store.primary.lease_us == 30_000_000
    assert store.fallback.lease_us == 30_000_000


def test_outage_log_line_never_carries_credentials():
    from app.limits.failover import describe
    exc = ConnectionError("Error 111 connecting to redis://gw:s3cr3t@cache.internal:6379/0")
    assert describe(exc) == "ConnectionError: Error 111 connecting to redis://***@cache.internal:6379/0"


def _spend_limits():
    from app.limits import Limits
    return Limits(rpm=10)


@pytest.mark.parametrize("failure", ["closed"])
@responses.activate
def test_fail_closed_is_a_503_while_redis_is_down(gw_client, openai_route, redis_server_session, failure):
    responses.post(CHAT_URL, json=reply())
    limited = make_key(limits={"rpm": 5})
    free = make_key()
    assert gw_client.post("/v1/chat/completions", headers=limited, json=BODY).status_code == 200
    redis_server_session.kill()
    r = gw_client.post("/v1/chat/completions", headers=limited, json=BODY)
    assert r.status_code == 503
    assert r.get_json() == {"error": {
        "type": "api_error", "code": "limits_unavailable", "param": None,
        "message": "Rate limits and budgets cannot be checked right now (the limits store is "
                   "unavailable). Please retry shortly."}}
    assert r.headers["Retry-After"] == "1"
    assert len(responses.calls) == 1                      # never reached the upstream
    assert usage_rows()[-1].status_code == 503
    assert usage_rows()[-1].error_class == "limits_unavailable"
    # a key without limits or budgets never needs the store
    assert gw_client.post("/v1/chat/completions", headers=free, json=BODY).status_code == 200
    info = gw_client.get("/v1/key/info", headers=limited)
    assert info.status_code == 503 and info.get_json()["error"]["code"] == "limits_unavailable"
    redis_server_session.start()
    time.sleep(1.05)                                      # the next probe
    assert gw_client.post("/v1/chat/completions", headers=limited, json=BODY).status_code == 200


@responses.activate
def test_fail_open_keeps_limits_per_process_and_reports_metrics(gw_client, openai_route,
                                                                redis_server_session, caplog):
    responses.post(CHAT_URL, json=reply())
    h = make_key(limits={"rpm": 2})
    assert gw_client.post("/v1/chat/completions", headers=h, json=BODY).status_code == 200
    text = gw_client.get("/metrics").get_data(as_text=True)
    assert metric(text, "gateway_redis_up") == 1.0
    failures_before = metric(text, "gateway_redis_failures_total") or 0.0

    redis_server_session.kill()
    codes = [gw_client.post("/v1/chat/completions", headers=h, json=BODY).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]                       # the local limit: 2 per minute
    text = gw_client.get("/metrics").get_data(as_text=True)
    assert metric(text, "gateway_redis_up") == 0.0
    assert metric(text, "gateway_redis_failures_total") == failures_before + 1   # no probe yet
    warnings = [r.getMessage() for r in caplog.records if "limits store unreachable" in r.getMessage()]
    assert len(warnings) == 1 and "per process" in warnings[0]
    assert "redis://" not in warnings[0]

    redis_server_session.start()                                     # empty: the shared cell starts over
    time.sleep(1.05)
    r = gw_client.post("/v1/chat/completions", headers=h, json=BODY)
    assert r.status_code == 200 and r.headers["x-ratelimit-remaining-requests"] == "1"
    text = gw_client.get("/metrics").get_data(as_text=True)
    assert metric(text, "gateway_redis_up") == 1.0
    assert gw_client.get("/v1/key/info", headers=h).status_code == 200


MULTIPROC = r"""
import json, sys
from app import metrics
from app.limits import FailoverStore, Limits, RedisStore
from tests.support.servers import free_port
store = FailoverStore(RedisStore(f"redis://127.0.0.1:{free_port()}/0"),
                      on_error=lambda e: metrics.REDIS_FAILURES.labels("limits").inc(),
                      on_state=lambda up: metrics.REDIS_UP.labels("limits").set(1 if up else 0))
store.admit("key:1", Limits(rpm=1), [], 0, 0, 1e9)          # nothing listens: fails over
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
print(json.dumps(generate_latest(registry).decode()))
"""


def test_redis_metrics_in_multiprocess_mode(tmp_path):
    """Under gunicorn (PROMETHEUS_MULTIPROC_DIR): gateway_redis_up is the lowest over the live
    workers (one series per store), failures are summed."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", MULTIPROC], capture_output=True, text=True,
                         env=env, cwd=root, timeout=60)
    assert out.returncode == 0, out.stderr
    text = json.loads(out.stdout.strip().splitlines()[-1])
    assert re.search(r'^gateway_redis_up\{store="limits"\} 0\.0$', text, re.M), text
    assert re.search(r'^gateway_redis_failures_total\{store="limits"\} 1\.0$', text, re.M), text
