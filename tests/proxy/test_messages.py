"""/v1/messages through the Flask test client: errors in Anthropic's shape and statuses, limit
headers under Anthropic's names, one usage row per call, and both paths (translated onto an
OpenAI-compatible upstream, passed through to an Anthropic one), upstreams faked with `responses`."""
from __future__ import annotations

import json

import anthropic.types as at
import pytest
import responses

from tests.proxy.conftest import usage_rows
from tests.proxy.test_spend import make_key

CHAT_URL = "http://up.test/v1/chat/completions"
ANT_URL = "http://ant.test/v1/messages"
BODY = {"model": "mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


def chat_reply(content="Hello", pt=11, ct=3):
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}


@pytest.fixture
def claude(gw):
    from app.services import models, providers
    p = providers.create({"name": "Ant", "type": "anthropic", "api_base": "http://ant.test",
                          "api_key": "sk-ant-SECRET-7"}, actor="t")
    return models.create({"provider_id": p.id, "model_id": "claude-haiku-4-5", "name": "claude",
                          "input_price_per_mtok": "1", "output_price_per_mtok": "5"}, actor="t")


def anthropic_error(r, status, etype):
    assert r.status_code == status, r.data
    body = r.get_json()
    assert body["type"] == "error" and body["error"]["type"] == etype and body["error"]["message"]
    return body


def test_auth_errors_are_anthropic_shaped(gw_client, openai_route):
    anthropic_error(gw_client.post("/v1/messages", json=BODY), 401, "authentication_error")
    anthropic_error(gw_client.post("/v1/messages", json=BODY, headers={"x-api-key": "gw-nope"}),
                    401, "authentication_error")
    h = make_key(scopes=["embeddings"])
    anthropic_error(gw_client.post("/v1/messages", json=BODY, headers=h), 403, "permission_error")


def test_bad_requests_and_unknown_models(gw_client, auth, openai_route):
    anthropic_error(gw_client.post("/v1/messages", data="{not json", headers={**auth, "Content-Type": "application/json"}),
                    400, "invalid_request_error")
    r = anthropic_error(gw_client.post("/v1/messages", json={**BODY, "max_tokens": None}, headers=auth),
                        400, "invalid_request_error")
    assert "max_tokens" in r["error"]["message"]
    anthropic_error(gw_client.post("/v1/messages", json={**BODY, "model": "nope"}, headers=auth),
                    404, "not_found_error")
    anthropic_error(gw_client.post("/v1/messages/count_tokens", json={**BODY, "model": "nope"}, headers=auth),
                    404, "not_found_error")
    assert [r.status_code for r in usage_rows()] == [400, 404]  # count_tokens is not a model call


@responses.activate
def test_translated_json_answer_and_usage_row(gw_client, openai_route):
    responses.post(CHAT_URL, json=chat_reply())
    r = gw_client.post("/v1/messages", json={**BODY, "system": "Be terse.", "stop_sequences": ["END"]},
                       headers={"x-api-key": make_key()["Authorization"][7:]})
    msg = at.Message.model_validate(r.get_json())
    assert msg.content[0].text == "Hello" and msg.model == "mini" and msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (11, 3)
    sent = json.loads(responses.calls[0].request.body)
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."} and sent["stop"] == ["END"]
    assert sent["max_tokens"] == 50
    (row,) = usage_rows()
    assert (row.endpoint, row.status_code, row.prompt_tokens, row.completion_tokens) == ("messages", 200, 11, 3)


@responses.activate
def test_rate_limit_is_anthropic_429_with_their_header_names(gw_client, openai_route):
    responses.post(CHAT_URL, json=chat_reply())
    h = make_key(limits={"rpm": 1})
    ok = gw_client.post("/v1/messages", json=BODY, headers=h)
    assert ok.status_code == 200
    assert ok.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert ok.headers["anthropic-ratelimit-requests-remaining"] == "0"
    r = gw_client.post("/v1/messages", json=BODY, headers=h)
    anthropic_error(r, 429, "rate_limit_error")
    assert int(r.headers["retry-after"]) >= 1


@responses.activate
def test_upstream_failure_maps_to_api_error(gw_client, auth, openai_route):
    responses.post(CHAT_URL, status=500, json={"error": {"message": "boom", "type": "server_error"}})
    r = gw_client.post("/v1/messages", json=BODY, headers=auth)
    anthropic_error(r, 502, "api_error")
    assert "sk-upstream-SECRET-1" not in r.get_data(as_text=True)


@responses.activate
def test_anthropic_deployments_get_the_body_as_sent(gw_client, auth, claude):
    upstream = {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
                "model": "claude-haiku-4-5-20251001", "content": [{"type": "text", "text": "Hi!"}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 20, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0,
                          "output_tokens": 4}}
    responses.post(ANT_URL, json=upstream)
    req = {"model": "claude", "max_tokens": 64, "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
           "thinking": {"type": "enabled", "budget_tokens": 1024}, "top_k": 5,
           "messages": [{"role": "user", "content": "hi"}]}
    r = gw_client.post("/v1/messages", json=req, headers=auth)
    msg = at.Message.model_validate(r.get_json())
    assert msg.model == "claude" and msg.id == upstream["id"] and msg.content[0].text == "Hi!"
    (call,) = responses.calls
    assert json.loads(call.request.body) == {**req, "model": "claude-haiku-4-5"}  # nothing lost or added
    assert call.request.headers["x-api-key"] == "sk-ant-SECRET-7" and call.request.headers["anthropic-version"]
    (row,) = usage_rows()
    assert (row.prompt_tokens, row.cached_tokens, row.completion_tokens) == (25, 5, 4)


@responses.activate
def test_anthropic_stream_passed_through_with_model_rewritten(gw_client, auth, claude):
    events = [("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                                             "content": [], "stop_reason": None, "stop_sequence": None,
                                             "usage": {"input_tokens": 9, "output_tokens": 1}}}),
              ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
              ("ping", {}),
              ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
              ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
              ("content_block_stop", {"index": 0}),
              ("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 6}}),
              ("message_stop", {})]
    responses.post(ANT_URL, body="".join(f"event: {e}\ndata: {json.dumps({'type': e, **d})}\n\n" for e, d in events),
                   content_type="text/event-stream")
    r = gw_client.post("/v1/messages", json={**BODY, "model": "claude", "stream": True}, headers=auth)
    got = [b.split("\n", 1) for b in r.get_data(as_text=True).strip().split("\n\n")]
    assert [g[0][7:] for g in got] == [e for e, _ in events]
    first = json.loads(got[0][1][6:])
    assert first["message"]["model"] == "claude"
    assert json.loads(got[3][1][6:]) == {"type": "content_block_delta", **events[3][1]}
    (row,) = usage_rows()
    assert (row.stream, row.prompt_tokens, row.completion_tokens) == (True, 9, 6)


@responses.activate
def test_count_tokens_grows_with_the_prompt(gw_client, auth, openai_route):
    a = gw_client.post("/v1/messages/count_tokens", json=BODY, headers=auth).get_json()
    b = gw_client.post("/v1/messages/count_tokens", headers=auth, json={
        **BODY, "messages": [{"role": "user", "content": "word " * 200}]}).get_json()
    assert 0 < a["input_tokens"] < b["input_tokens"] and set(a) == {"input_tokens"}
    assert not responses.calls and not usage_rows()
