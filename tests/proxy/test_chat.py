"""/v1 chat, embeddings and models through the Flask test client, upstream faked with `responses`."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import responses

from tests.proxy.conftest import usage_rows

FIX = Path(__file__).resolve().parents[3] / "shared" / "provider-fixtures"
CHAT_URL = "http://up.test/v1/chat/completions"


def openai_reply(content="Hello there", pt=12, ct=3):
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}


@responses.activate
def test_chat_json_translates_model_and_records_usage(gw_client, auth, openai_route):
    responses.post(CHAT_URL, json=openai_reply(pt=1000, ct=2000))
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={"model": "mini", "messages": [{"role": "user", "content": "hi"}],
                             "temperature": 0.2, "x_custom": 1})
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert body["model"] == "mini"  # public name back to the client
    assert body["choices"][0]["message"]["content"] == "Hello there"
    sent = json.loads(responses.calls[0].request.body)
    assert sent["model"] == "gpt-4o-mini-2024" and sent["temperature"] == 0.2 and sent["x_custom"] == 1
    assert responses.calls[0].request.headers["Authorization"] == "Bearer sk-upstream-SECRET-1"
    assert r.headers["x-request-id"].startswith("req_")
    (row,) = usage_rows()
    assert (row.prompt_tokens, row.completion_tokens, row.status_code) == (1000, 2000, 200)
    # 1000 * 0.15/1M + 2000 * 0.60/1M
    assert row.cost_usd == Decimal("0.00135") and row.tokens_estimated is False
    assert row.model_name == "mini" and row.stream is False and row.request_id == r.headers["x-request-id"]


@responses.activate
def test_resolution_by_upstream_id_too(gw_client, auth, openai_route):
    responses.post(CHAT_URL, json=openai_reply())
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={"model": "gpt-4o-mini-2024", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200 and r.get_json()["model"] == "mini"


def test_auth_errors(gw_client, openai_route):
    r = gw_client.post("/v1/chat/completions", json={"model": "mini", "messages": []})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "missing_api_key"
    r = gw_client.post("/v1/chat/completions", headers={"Authorization": "Bearer gw-wrong"},
                       json={"model": "mini"})
    assert r.status_code == 401 and r.get_json()["error"]["type"] == "authentication_error"


def test_x_api_key_header_and_revocation(gw, gw_client, openai_route):
    from app.services import keys
    k, raw = keys.create({"name": "anthropic-style", "scopes": ["models"]}, actor="t")
    r = gw_client.get("/v1/models", headers={"x-api-key": raw})
    assert r.status_code == 200
    assert [m["id"] for m in r.get_json()["data"]] == ["mini", "text-embedding-3-small"]
    keys.revoke(k, actor="t")
    assert gw_client.get("/v1/models", headers={"x-api-key": raw}).status_code == 401


def test_scope_and_allowed_models(gw, gw_client, openai_route):
    from app.services import keys
    _, raw = keys.create({"name": "limited", "scopes": ["models", "embeddings"],
                          "allowed_models": ["text-*"]}, actor="t")
    h = {"Authorization": f"Bearer {raw}"}
    r = gw_client.post("/v1/chat/completions", headers=h,
                       json={"model": "mini", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_scope"
    assert [m["id"] for m in gw_client.get("/v1/models", headers=h).get_json()["data"]] == [
        "text-embedding-3-small"]
    assert gw_client.get("/v1/models/mini", headers=h).status_code == 404
    assert gw_client.get("/v1/models/text-embedding-3-small", headers=h).get_json()["id"] == \
        "text-embedding-3-small"


def test_bad_requests_are_openai_shaped(gw_client, auth, openai_route):
    cases = [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[1,2]", "application/json", 400, "invalid_json"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "application/json", 400, "missing_model"),
        (json.dumps({"model": "mini", "messages": "hi"}).encode(), "application/json", 400, None),
        (json.dumps({"model": "mini", "messages": [{"role": "user"}], "temperature": "hot"}).encode(), "application/json", 400, None),
        (json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode(), "application/json", 404, "model_not_found"),
        (json.dumps({"model": "text-embedding-3-small", "messages": [{"role": "user", "content": "x"}]}).encode(), "application/json", 400, "model_not_supported"),
        (b"model=mini", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ]
    for data, ctype, status, code in cases:
        r = gw_client.post("/v1/chat/completions", headers=auth, data=data, content_type=ctype)
        assert r.status_code == status, (data, r.data)
        err = r.get_json()["error"]
        assert err["message"] and err["type"]
        if code:
            assert err["code"] == code


def test_disabled_model_or_provider_is_404(gw, gw_client, auth, openai_route):
    from app.services import models, providers
    p, m, _ = openai_route
    models.update(m, {"enabled": False}, actor="t")
    body = {"model": "mini", "messages": [{"role": "user", "content": "x"}]}
    assert gw_client.post("/v1/chat/completions", headers=auth, json=body).get_json()["error"]["code"] == "model_not_found"
    models.update(m, {"enabled": True}, actor="t")
    providers.update(p, {"enabled": False}, actor="t")
    r = gw_client.post("/v1/chat/completions", headers=auth, json=body)
    assert r.status_code == 404


@responses.activate
def test_upstream_errors_map_to_openai_statuses(gw_client, auth, openai_route):
    body = {"model": "mini", "messages": [{"role": "user", "content": "x"}]}
    responses.post(CHAT_URL, status=429, headers={"Retry-After": "7"},
                   json={"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
    r = gw_client.post("/v1/chat/completions", headers=auth, json=body)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    responses.replace(responses.POST, CHAT_URL, status=401,
                      json={"error": {"message": "Incorrect API key provided: sk-upstream-SECRET-1",
                                      "type": "invalid_request_error", "code": "invalid_api_key"}})
    r = gw_client.post("/v1/chat/completions", headers=auth, json=body)
    assert r.status_code == 502 and b"sk-upstream-SECRET-1" not in r.data
    responses.replace(responses.POST, CHAT_URL, status=200, body=b"<html>oops")
    r = gw_client.post("/v1/chat/completions", headers=auth, json=body)
    assert r.status_code == 502 and r.get_json()["error"]["code"] == "malformed_response"
    rows = usage_rows()
    assert [row.status_code for row in rows] == [429, 502, 502]
    assert rows[0].error_class == "rate_limited" and rows[1].error_class == "upstream_auth"


def test_unreachable_upstream_is_502(gw, gw_client, auth):
    from app.services import models, providers
    p = providers.create({"name": "Dead", "type": "openai-compatible",
                          "api_base": "http://127.0.0.1:9/v1", "api_key": "k"}, actor="t")
    models.create({"provider_id": p.id, "model_id": "dead-model"}, actor="t")
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={"model": "dead-model", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502 and r.get_json()["error"]["code"] == "upstream_unreachable"
    assert usage_rows()[-1].error_class == "connect_error"


@responses.activate
def test_stream_passthrough_with_and_without_usage(gw_client, auth, openai_route):
    transcript = (FIX / "openai" / "chat-stream-text.sse").read_bytes()
    responses.post(CHAT_URL, body=transcript, content_type="text/event-stream")
    base = {"model": "mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    r = gw_client.post("/v1/chat/completions", headers=auth, json=base)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    assert r.headers["X-Accel-Buffering"] == "no"
    events = [l[6:] for l in r.get_data(as_text=True).split("\n") if l.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["model"] == "mini" and c["choices"] for c in chunks)  # no usage chunk: not asked
    sent = json.loads(responses.calls[0].request.body)
    assert sent["stream_options"] == {"include_usage": True}  # but always asked upstream
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={**base, "stream_options": {"include_usage": True}})
    events = [l[6:] for l in r.get_data(as_text=True).split("\n") if l.startswith("data: ")]
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] > 0
    rows = usage_rows()
    assert len(rows) == 2 and all(r.stream and r.status_code == 200 and not r.tokens_estimated for r in rows)
    assert rows[1].completion_tokens == usage_chunk["usage"]["completion_tokens"]
    assert rows[1].cost_usd > 0


@responses.activate
def test_stream_without_upstream_usage_is_estimated(gw_client, auth, openai_route):
    sse = b"".join(b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                           "model": "x", "choices": [{"index": 0, "delta": {"content": "abcd" * 5},
                                                                      "finish_reason": None}]}).encode() + b"\n\n"
                   for _ in range(3))
    sse += b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    responses.post(CHAT_URL, body=sse, content_type="text/event-stream")
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={"model": "mini", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert r.get_data(as_text=True).rstrip().endswith("data: [DONE]")
    (row,) = usage_rows()
    assert row.tokens_estimated is True and row.completion_tokens == 15  # 60 chars / 4


@responses.activate
def test_stream_truncated_yields_error_event(gw_client, auth, openai_route):
    sse = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}\n\n'
    responses.post(CHAT_URL, body=sse, content_type="text/event-stream")
    r = gw_client.post("/v1/chat/completions", headers=auth,
                       json={"model": "mini", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    text = r.get_data(as_text=True)
    assert '"partial"' in text and '"stream_truncated"' in text and "[DONE]" not in text
    (row,) = usage_rows()
    assert row.status_code == 502 and row.completion_tokens == 2  # billed for what was delivered


@responses.activate
def test_embeddings_float_and_base64(gw_client, auth, openai_route):
    up = json.loads((FIX / "openai" / "embeddings-response-float.json").read_text())
    responses.post("http://up.test/v1/embeddings", json=up)
    r = gw_client.post("/v1/embeddings", headers=auth,
                       json={"model": "text-embedding-3-small", "input": "hello", "encoding_format": "float"})
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert body["model"] == "text-embedding-3-small" and isinstance(body["data"][0]["embedding"], list)
    r = gw_client.post("/v1/embeddings", headers=auth, json={"model": "text-embedding-3-small", "input": 5})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "input"
    rows = usage_rows()
    assert rows[0].endpoint == "embeddings" and rows[0].prompt_tokens > 0
