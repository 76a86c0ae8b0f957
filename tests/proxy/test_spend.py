"""Limits and budgets on the proxy path: exact statuses, headers and bodies."""
from __future__ import annotations

import json
from decimal import Decimal

import responses

from tests.proxy.conftest import usage_rows

CHAT_URL = "http://up.test/v1/chat/completions"
BODY = {"model": "mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}


def reply(pt=1000, ct=1000):
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}


def make_key(**data):
    from app.services import keys
    _, raw = keys.create({"name": "k", "scopes": ["chat", "models"], **data}, actor="t")
    return {"Authorization": f"Bearer {raw}"}


@responses.activate
def test_rpm_limit_429_with_openai_headers(gw_client, openai_route):
    responses.post(CHAT_URL, json=reply())
    h = make_key(limits={"rpm": 2, "tpm": 1_000_000})
    ok = [gw_client.post("/v1/chat/completions", headers=h, json=BODY) for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "2"
    assert ok[0].headers["x-ratelimit-remaining-requests"] == "1"
    assert ok[1].headers["x-ratelimit-remaining-requests"] == "0"
    assert ok[0].headers["x-ratelimit-limit-tokens"] == "1000000"
    assert "x-ratelimit-reset-requests" in ok[0].headers
    r = gw_client.post("/v1/chat/completions", headers=h, json=BODY)
    assert r.status_code == 429
    err = r.get_json()["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(responses.calls) == 2  # the refused call never reached the upstream
    assert [row.status_code for row in usage_rows()] == [200, 200, 429]
    assert usage_rows()[-1].error_class == "rate_limited"


@responses.activate
def test_budget_reservation_then_402(gw_client, openai_route):
    responses.post(CHAT_URL, json=reply(pt=1000, ct=1000))  # costs $0.00075
    h = make_key(budget={"amount_usd": "0.001", "period": "day", "soft_pct": 50})
    r = gw_client.post("/v1/chat/completions", headers=h, json=BODY)
    assert r.status_code == 200
    assert "x-gateway-budget-warning" in r.headers  # the reservation alone passes 50 %
    # spent 0.00075 + reserve for max_tokens=1000 (0.0006) > 0.001
    r = gw_client.post("/v1/chat/completions", headers=h, json=BODY)
    assert r.status_code == 402
    assert r.get_json()["error"]["code"] == "insufficient_quota"
    # a smaller worst case still fits: 0.00075 + 10 out tokens
    r = gw_client.post("/v1/chat/completions", headers=h, json={**BODY, "max_tokens": 10})
    assert r.status_code == 200
    info = gw_client.get("/v1/key/info", headers=h).get_json()
    (budget,) = info["state"]["budgets"]
    assert Decimal(budget["spent_usd"]) == Decimal("0.00150")
    assert Decimal(budget["reserved_usd"]) == 0


@responses.activate
def test_team_budget_spans_keys(gw, gw_client, openai_route):
    from app.services import teams
    teams.create({"name": "research", "budget": {"amount_usd": "0.001", "period": "month"}}, actor="t")
    responses.post(CHAT_URL, json=reply())
    a, b = make_key(owner="research"), make_key(owner="research")
    assert gw_client.post("/v1/chat/completions", headers=a, json=BODY).status_code == 200
    r = gw_client.post("/v1/chat/completions", headers=b, json=BODY)
    assert r.status_code == 402
    assert usage_rows()[0].owner == "research"


@responses.activate
def test_failed_upstream_call_releases_reservation(gw_client, openai_route):
    responses.post(CHAT_URL, status=500, json={"error": {"message": "boom", "type": "server_error"}})
    h = make_key(budget={"amount_usd": "0.001", "period": "total"})
    for _ in range(3):  # each would be refused if the failed calls kept their reservations
        assert gw_client.post("/v1/chat/completions", headers=h, json=BODY).status_code == 502
    budget = gw_client.get("/v1/key/info", headers=h).get_json()["state"]["budgets"][0]
    assert Decimal(budget["reserved_usd"]) == 0 and Decimal(budget["spent_usd"]) == 0


@responses.activate
def test_open_stream_counts_against_concurrency(gw_client, openai_route):
    sse = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
           b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}\n\n'
           b"data: [DONE]\n\n")
    responses.post(CHAT_URL, body=sse, content_type="text/event-stream")
    h = make_key(limits={"concurrency": 1})
    first = gw_client.post("/v1/chat/completions", headers=h, json={**BODY, "stream": True})
    assert first.status_code == 200  # body not read yet: the stream is still in flight
    r = gw_client.post("/v1/chat/completions", headers=h, json={**BODY, "stream": True})
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "concurrency_limit_exceeded"
    assert b"[DONE]" in first.get_data()
    first.close()
    r = gw_client.post("/v1/chat/completions", headers=h, json={**BODY, "stream": True})
    assert r.status_code == 200
    r.get_data()


@responses.activate
def test_global_model_limit_protects_upstream_quota(gw, gw_client, openai_route):
    from app.services import models
    _, m, _ = openai_route
    models.update(m, {"limits": {"rpm": 1}}, actor="t")
    responses.post(CHAT_URL, json=reply())
    assert gw_client.post("/v1/chat/completions", headers=make_key(), json=BODY).status_code == 200
    r = gw_client.post("/v1/chat/completions", headers=make_key(), json=BODY)
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert "x-ratelimit-limit-requests" not in r.headers  # the key's own limits are not the model's


def test_key_info_shows_limits_and_counts(gw_client, openai_route):
    h = make_key(limits={"rpm": 10, "concurrency": 3}, owner="ops")
    info = gw_client.get("/v1/key/info", headers=h).get_json()
    assert info["owner"] == "ops" and info["state"]["limits"]["rpm"]["limit"] == 10
    assert info["state"]["limits"]["concurrency"]["remaining"] == 3
    assert gw_client.get("/v1/usage", headers=h).get_json()["id"] == info["id"]
    assert gw_client.get("/v1/key/info").status_code == 401


@responses.activate
def test_unlimited_key_has_no_ratelimit_headers(gw_client, auth, openai_route):
    responses.post(CHAT_URL, json=reply())
    r = gw_client.post("/v1/chat/completions", headers=auth, json=BODY)
    assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
