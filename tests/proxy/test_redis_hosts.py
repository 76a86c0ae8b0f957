"""Two gateway "hosts" (two apps, one DB file, one Redis, instance folders of their own so no
SQLite side file is shared, CACHE_TTL_SECONDS=30): config changes, breakers and cached
responses made on one are seen on the other; with Redis down requests still work.

Both apps live in this one test process, so they share the process's one config subscriber
(as the workers of one host would not); the publish -> subscriber -> stale-cache path is the
same one a second host runs.
"""
from __future__ import annotations

import threading
import time

import pytest
import responses

from tests.support.redis_fixtures import redis_server_session, redis_url  # noqa: F401

UP = "http://up.test/v1/chat/completions"
A_URL, B_URL = "http://a.test/v1/chat/completions", "http://b.test/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


def reply(text="ok"):
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


@pytest.fixture
def hosts(app_factory, redis_url, tmp_path):
    from app.services import notify
    common = dict(REDIS_URL=redis_url, CACHE_TTL_SECONDS=30, GATEWAY_HTTP_CLIENT="requests",
                  USAGE_FLUSH_INTERVAL=0, LIMITS_SETTLE_INTERVAL=0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = app_factory(INSTANCE_PATH=str(tmp_path / "a"), **common)
    b = app_factory(INSTANCE_PATH=str(tmp_path / "b"), **common)
    yield a, b
    notify.stop_all()
    for app in (a, b):
        with app.app_context():
            from app.extensions import db
            db.session.remove()


@pytest.fixture
def setup(hosts):
    """A chat key, an admin key and model `mini` (created on host A)."""
    a, _ = hosts
    from app.services import keys, models, providers
    with a.app_context():
        _, chat = keys.create({"name": "app", "scopes": ["chat", "models"]}, actor="t")
        _, admin = keys.create({"name": "ops", "scopes": ["admin"]}, actor="t")
        p = providers.create({"name": "Up", "type": "openai-compatible",
                              "api_base": "http://up.test/v1", "api_key": "sk-up"}, actor="t")
        m = models.create({"provider_id": p.id, "model_id": "gpt-4o-mini", "name": "mini",
                           "input_price_per_mtok": "1", "output_price_per_mtok": "1"}, actor="t")
        return {"chat": {"Authorization": f"Bearer {chat}"},
                "admin": {"Authorization": f"Bearer {admin}"}, "model_id": m.id}


def chat(app, headers, model="mini", **extra):
    return app.test_client().post("/v1/chat/completions", headers=headers,
                                  json={"model": model, "messages": MSG, **extra})


def wait_subscribed(url, timeout=5.0):
    from app.services import notify
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sub = notify.subscriber(url)
        if sub is not None and sub.connected.is_set():
            return sub
        time.sleep(0.01)
    raise AssertionError("the config subscriber did not subscribe")


def test_subscriber_starts_on_the_first_request_not_with_the_app(hosts, setup, redis_url):
    from app.services import notify
    a, _ = hosts
    assert notify.subscriber(redis_url) is None
    # (an earlier test's subscriber, for its own Redis, may still be winding down)
    before = {t for t in threading.enumerate() if t.name == "gw-config-subscriber"}
    a.test_client().get("/v1/models", headers=setup["chat"])
    sub = wait_subscribed(redis_url)
    assert sub.thread.daemon and sub.thread not in before


@responses.activate
def test_a_model_disabled_on_a_is_refused_on_b_within_a_second(hosts, setup, redis_url):
    a, b = hosts
    responses.post(UP, json=reply())
    assert chat(b, setup["chat"]).status_code == 200      # B has the snapshot (valid 30 s)
    wait_subscribed(redis_url)
    r = a.test_client().patch(f"/api/admin/models/{setup['model_id']}", headers=setup["admin"],
                              json={"enabled": False})
    assert r.status_code == 200, r.data
    t = time.monotonic()
    while True:
        r = chat(b, setup["chat"])
        if r.status_code != 200 or time.monotonic() - t > 1.0:
            break
        time.sleep(0.02)
    assert r.status_code == 404, r.data
    print(f"refused on B {time.monotonic() - t:.3f} s after the change on A")
    assert time.monotonic() - t <= 1.0
    err = r.get_json()["error"]
    assert err["code"] == "model_not_found" and err["type"] == "invalid_request_error"
    assert len(responses.calls) == 1


def test_nothing_is_published_for_a_rolled_back_change(hosts, setup, redis_url):
    from app.redisconn import pubsub_client
    a, _ = hosts
    ps = pubsub_client(redis_url).pubsub(ignore_subscribe_messages=True)
    ps.subscribe("gw:config")
    ps.get_message(timeout=1)
    with a.app_context():
        from app.extensions import db
        from app.services import state
        state.bump()
        db.session.rollback()
        assert ps.get_message(timeout=0.3) is None
        before = state.version()
        state.bump()
        db.session.commit()
        msg = ps.get_message(timeout=2)
        assert msg is not None and int(msg["data"]) == before + 1 == state.version()
    ps.close()


@responses.activate
def test_polling_still_converges_without_notifications(hosts, setup, redis_url, monkeypatch):
    """A lost message: B re-validates at its next poll (CACHE_TTL_SECONDS)."""
    from app.services import notify, runtime
    a, b = hosts
    responses.post(UP, json=reply())
    assert chat(b, setup["chat"]).status_code == 200
    wait_subscribed(redis_url)                # (subscribing marks the caches stale once)
    assert chat(b, setup["chat"]).status_code == 200
    monkeypatch.setattr(notify, "publish", lambda url, version: False)     # the message is lost
    r = a.test_client().patch(f"/api/admin/models/{setup['model_id']}", headers=setup["admin"],
                              json={"enabled": False})
    assert r.status_code == 200
    time.sleep(0.2)
    assert chat(b, setup["chat"]).status_code == 200          # still the cached snapshot
    with b.app_context():
        runtime.cache()._checked -= 31                        # as if 31 s had passed
    assert chat(b, setup["chat"]).status_code == 404


@responses.activate
def test_a_breaker_opened_on_a_is_open_on_b(hosts, redis_url):
    a, b = hosts
    from app.services import groups, keys, models, providers
    with a.app_context():
        _, raw = keys.create({"name": "app", "scopes": ["chat"]}, actor="t")
        groups.put("chat", {"strategy": "priority", "retries": 1}, actor="t")
        made = []
        for i, name in enumerate("ab"):
            p = providers.create({"name": name.upper(), "type": "openai-compatible",
                                  "api_base": f"http://{name}.test/v1", "api_key": f"k-{name}"},
                                 actor="t")
            made.append(models.create({"provider_id": p.id, "model_id": f"m-{name}",
                                       "name": "chat", "priority": i}, actor="t").id)
    auth = {"Authorization": f"Bearer {raw}"}
    responses.post(A_URL, status=503, json={"error": {"message": "down", "type": "server_error"}})
    responses.post(B_URL, json=reply("from b"))
    for _ in range(5):
        r = chat(a, auth, model="chat")
        assert r.status_code == 200 and r.headers["x-gateway-attempts"] == "a/m-a=503;b/m-b=200"
    from app.services.router import router
    with b.app_context():
        assert router().breaker.state(made[0], time.time())["state"] == "open"
    time.sleep(0.6)                                            # past B's 0.5 s read cache
    r = chat(b, auth, model="chat")
    assert r.status_code == 200 and r.headers["x-gateway-attempts"] == "b/m-b=200"


@responses.activate
def test_a_response_cached_by_a_is_a_hit_on_b(hosts, setup, redis_url):
    a, b = hosts
    responses.post(UP, json=reply("cached answer"))
    first = chat(a, setup["chat"], temperature=0)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    second = chat(b, setup["chat"], temperature=0)
    assert second.headers["x-cache"] == "HIT" and len(responses.calls) == 1
    assert second.get_json()["choices"][0]["message"]["content"] == "cached answer"
    from app.redisconn import client
    assert client(redis_url).keys("gw:cache:e:*")


@responses.activate
def test_requests_succeed_while_redis_is_down_and_sharing_resumes(hosts, setup, redis_url,
                                                                  redis_server_session):
    from app import metrics
    a, b = hosts
    server = redis_server_session
    responses.post(UP, json=reply("answer"))
    assert chat(a, setup["chat"], temperature=0).headers["x-cache"] == "MISS"
    wait_subscribed(redis_url)
    fails = {s: metrics.REDIS_FAILURES.labels(s)._value.get() for s in ("cache", "breaker")}
    server.kill()
    t = time.monotonic()
    for app in (a, b, a):
        r = chat(app, setup["chat"], temperature=0)
        assert r.status_code == 200 and r.headers["x-cache"] == "MISS"   # a miss, no error
    assert time.monotonic() - t < 3
    assert len(responses.calls) == 4
    assert metrics.REDIS_FAILURES.labels("cache")._value.get() > fails["cache"]
    assert metrics.REDIS_FAILURES.labels("breaker")._value.get() > fails["breaker"]  # local
    # config changes still reach B by polling, and the commit on A did not fail
    r = a.test_client().patch(f"/api/admin/models/{setup['model_id']}", headers=setup["admin"],
                              json={"weight": 2})
    assert r.status_code == 200
    server.start()
    sub = wait_subscribed(redis_url, timeout=10)              # the subscriber reconnected
    time.sleep(1.1)                                            # the stores' next probe is due
    assert chat(a, setup["chat"], temperature=0).headers["x-cache"] == "MISS"  # Redis is empty
    assert chat(b, setup["chat"], temperature=0).headers["x-cache"] == "HIT"
    r = a.test_client().patch(f"/api/admin/models/{setup['model_id']}", headers=setup["admin"],
                              json={"enabled": False})
    assert r.status_code == 200
    t = time.monotonic()
    while chat(b, setup["chat"]).status_code == 200 and time.monotonic() - t < 1:
        time.sleep(0.02)
    assert chat(b, setup["chat"]).status_code == 404 and sub.connected.is_set()


def test_cache_admin_answers_503_while_redis_is_down(hosts, setup, redis_server_session):
    a, _ = hosts
    c = a.test_client()
    assert c.get("/api/admin/cache", headers=setup["admin"]).status_code == 200
    redis_server_session.kill()
    r = c.get("/api/admin/cache", headers=setup["admin"])
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "cache_unavailable"
    r = c.post("/api/admin/cache/clear", headers=setup["admin"], json={})
    assert r.status_code == 503
    redis_server_session.start()
