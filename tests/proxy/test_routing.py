"""Routing through the proxy: fallback, breakers, strategies, response cache (upstreams faked)."""
from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest
import responses

from tests.proxy.conftest import usage_rows

A, B, C = "http://a.test/v1/chat/completions", "http://b.test/v1/chat/completions", "http://c.test/v1/chat/completions"
MSG = [{"role": "user", "content": "hi"}]


def reply(text="ok", model="x"):
    return {"id": "c", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


@pytest.fixture
def group(gw):
    """Group `chat` on three providers (a, b, c), priorities 0, 1, 2."""
    from app.services import groups, models, providers
    groups.put("chat", {"strategy": "priority", "retries": 2}, actor="t")
    made = []
    for i, name in enumerate("abc"):
        p = providers.create({"name": name.upper(), "type": "openai-compatible",
                              "api_base": f"http://{name}.test/v1", "api_key": f"k-{name}",
                              "trust_level": "local" if name == "c" else "public"}, actor="t")
        made.append(models.create({"provider_id": p.id, "model_id": f"m-{name}", "name": "chat",
                                   "priority": i, "input_price_per_mtok": str(3 - i),
                                   "output_price_per_mtok": str(3 - i)}, actor="t"))
    return made


@responses.activate
def test_fallback_on_5xx_and_attempts_are_recorded(gw_client, auth, group):
    responses.post(A, status=503, json={"error": {"message": "overloaded", "type": "server_error"}})
    responses.post(B, json=reply("from b"))
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "chat", "messages": MSG})
    assert r.status_code == 200 and r.get_json()["choices"][0]["message"]["content"] == "from b"
    assert r.headers["x-gateway-attempts"] == "a/m-a=503;b/m-b=200"
    (row,) = usage_rows()
    assert row.attempts == "a/m-a=503;b/m-b=200" and row.provider_id == group[1].provider_id
    assert row.cost_usd == Decimal("0.00003")  # priced at b's rates


@responses.activate
def test_no_fallback_on_client_error(gw_client, auth, group):
    responses.post(A, status=400, json={"error": {"message": "bad tool schema", "type": "invalid_request_error"}})
    responses.post(B, json=reply())
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "chat", "messages": MSG})
    assert r.status_code == 400 and len(responses.calls) == 1


@responses.activate
def test_retries_bound_the_number_of_attempts(gw, gw_client, auth, group):
    from app.services import groups
    groups.put("chat", {"retries": 1}, actor="t")
    for url in (A, B, C):
        responses.post(url, status=500, json={"error": {"message": "down", "type": "server_error"}})
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "chat", "messages": MSG})
    assert r.status_code == 502 and len(responses.calls) == 2


@responses.activate
def test_upstream_auth_failure_disables_the_deployment(gw_client, auth, group):
    responses.post(A, status=401, json={"error": {"message": "bad key", "type": "invalid_request_error"}})
    responses.post(B, json=reply())
    for _ in range(3):
        assert gw_client.post("/v1/chat/completions", headers=auth,
                              json={"model": "chat", "messages": MSG}).status_code == 200
    assert [c.request.url for c in responses.calls].count(A) == 1  # never tried again
    groups = gw_client.get("/api/admin/groups/chat")  # needs admin auth -> 401 here
    assert groups.status_code == 401


@responses.activate
def test_breaker_opens_after_consecutive_failures(gw_client, auth, group):
    import requests
    responses.post(A, body=requests.exceptions.ConnectionError("refused"))
    responses.post(B, json=reply())
    for _ in range(8):
        assert gw_client.post("/v1/chat/completions", headers=auth,
                              json={"model": "chat", "messages": MSG}).status_code == 200
    assert [c.request.url for c in responses.calls].count(A) == 5  # open after 5 in a row


@responses.activate
def test_stream_falls_back_before_the_first_byte(gw_client, auth, group):
    responses.post(A, status=500, json={"error": {"message": "down", "type": "server_error"}})
    sse = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"hello"},"finish_reason":null}]}\n\n'
           b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
           b"data: [DONE]\n\n")
    responses.post(B, body=sse, content_type="text/event-stream")
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={"model": "chat", "messages": MSG, "stream": True})
    text = r.get_data(as_text=True)
    assert r.status_code == 200 and '"hello"' in text and text.rstrip().endswith("[DONE]")
    assert r.headers["x-gateway-attempts"] == "a/m-a=500;b/m-b=200"


@responses.activate
def test_no_fallback_after_the_first_byte(gw_client, auth, group):
    sse = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}\n\n'
    responses.post(A, body=sse, content_type="text/event-stream")  # ends without finish/[DONE]
    responses.post(B, json=reply())
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={"model": "chat", "messages": MSG, "stream": True})
    text = r.get_data(as_text=True)
    assert '"partial"' in text and "stream_truncated" in text
    assert len(responses.calls) == 1


@responses.activate
def test_cross_model_fallback_group(gw, gw_client, auth):
    from app.services import groups, models, providers
    big = providers.create({"name": "Big", "type": "openai-compatible", "api_base": "http://a.test/v1"}, actor="t")
    small = providers.create({"name": "Small", "type": "openai-compatible", "api_base": "http://b.test/v1"}, actor="t")
    models.create({"provider_id": big.id, "model_id": "big-1", "name": "big"}, actor="t")
    models.create({"provider_id": small.id, "model_id": "small-1", "name": "small"}, actor="t")
    groups.put("big", {"fallbacks": ["small"]}, actor="t")
    responses.post(A, status=429, headers={"Retry-After": "30"},
                   json={"error": {"message": "slow down", "type": "requests"}})
    responses.post(B, json=reply("small answer"))
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "big", "messages": MSG})
    assert r.status_code == 200 and r.get_json()["model"] == "small"
    assert r.headers["x-gateway-attempts"] == "big/big-1=429;small/small-1=200"


@responses.activate
def test_weighted_strategy_is_deterministic_with_a_seed(app_factory):
    from app.services import groups, keys, models, providers
    app = app_factory(GATEWAY_HTTP_CLIENT="requests", USAGE_FLUSH_INTERVAL=0, CACHE_TTL_SECONDS=0,
                      LIMITS_SETTLE_INTERVAL=0, ROUTER_SEED=7)
    with app.app_context():
        groups.put("w", {"strategy": "weighted"}, actor="t")
        for name, weight in (("a", 3), ("b", 1)):
            p = providers.create({"name": name, "type": "openai-compatible",
                                  "api_base": f"http://{name}.test/v1"}, actor="t")
            models.create({"provider_id": p.id, "model_id": f"m-{name}", "name": "w", "weight": weight}, actor="t")
        _, raw = keys.create({"name": "k"}, actor="t")
        responses.post(A, json=reply())
        responses.post(B, json=reply())
        c = app.test_client()
        for _ in range(200):
            assert c.post("/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"},
                          json={"model": "w", "messages": MSG}).status_code == 200
        hits = Counter(call.request.url for call in responses.calls)
        assert 130 <= hits[A] <= 170 and hits[A] + hits[B] == 200  # ~3:1


@responses.activate
def test_auto_picks_the_cheapest_deployment(gw_client, auth, group):
    responses.post(C, json=reply("cheap"))
    r = gw_client.post("/v1/chat/completions", headers=auth, json={"model": "auto", "messages": MSG})
    assert r.status_code == 200 and r.get_json()["choices"][0]["message"]["content"] == "cheap"
    assert r.get_json()["model"] == "chat"


@responses.activate
def test_response_cache_hit_miss_bypass(gw_client, auth, openai_route):
    responses.post("http://up.test/v1/chat/completions", json=reply("cached answer"))
    body = {"model": "mini", "messages": MSG, "temperature": 0}
    first = gw_client.post("/v1/chat/completions", headers=auth, json=body)
    assert first.headers["x-cache"] == "MISS"
    second = gw_client.post("/v1/chat/completions", headers=auth, json=body)
    assert second.headers["x-cache"] == "HIT" and len(responses.calls) == 1
    assert second.get_json()["choices"][0]["message"]["content"] == "cached answer"
    stream = gw_client.post("/v1/chat/completions", headers=auth,
                            json={**body, "stream": True, "stream_options": {"include_usage": True}})
    events = [l[6:] for l in stream.get_data(as_text=True).split("\n") if l.startswith("data: ")]
    chunks = [json.loads(e) for e in events[:-1]]
    assert stream.headers["x-cache"] == "HIT" and events[-1] == "[DONE]"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "cached answer"
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    bypass = gw_client.post("/v1/chat/completions", headers={**auth, "Cache-Control": "no-cache"}, json=body)
    assert bypass.headers["x-cache"] == "BYPASS" and len(responses.calls) == 2
    warm = gw_client.post("/v1/chat/completions", headers=auth, json={**body, "temperature": 0.7})
    assert warm.headers["x-cache"] == "BYPASS"
    rows = usage_rows()
    assert [r.cache_hit for r in rows] == [False, True, True, False, False]
    assert rows[1].cost_usd == 0 and rows[1].completion_tokens == 5


@responses.activate
def test_cache_hit_costs_nothing_against_the_budget(gw_client, openai_route):
    from app.services import keys
    _, raw = keys.create({"name": "b", "budget": {"amount_usd": "0.0001", "period": "day"}}, actor="t")
    h = {"Authorization": f"Bearer {raw}"}
    responses.post("http://up.test/v1/chat/completions", json=reply())
    body = {"model": "mini", "messages": MSG, "temperature": 0, "max_tokens": 10}
    assert gw_client.post("/v1/chat/completions", headers=h, json=body).status_code == 200
    for _ in range(5):
        assert gw_client.post("/v1/chat/completions", headers=h, json=body).headers["x-cache"] == "HIT"
    spent = gw_client.get("/v1/key/info", headers=h).get_json()["state"]["budgets"][0]["spent_usd"]
    assert Decimal(spent) == Decimal("0.0000045")  # one upstream call: 10 x 0.15 + 5 x 0.60 per 1M


@responses.activate
def test_cache_ttl_per_model_and_key(gw, gw_client, auth, openai_route):
    import time as _time
    from app.services import settings
    from app.services.response_cache import response_cache
    settings.update({"cache": {"ttl_overrides": {"mini": 5}}}, actor="t")
    responses.post("http://up.test/v1/chat/completions", json=reply("x"))
    gw_client.post("/v1/chat/completions", headers=auth, json={"model": "mini", "messages": MSG, "temperature": 0})
    from app.cache import cache_key
    entry = response_cache().get(cache_key({"model": "mini", "messages": MSG, "temperature": 0}, "mini"), _time.time())
    assert entry is not None and 4 <= entry.expires - entry.created <= 5
    import pytest as _pytest
    from app.services.errors import ValidationFailed
    with _pytest.raises(ValidationFailed):
        settings.update({"cache": {"ttl_overrides": {"mini": 0}}}, actor="t")
