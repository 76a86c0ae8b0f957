"""/v1/responses through the Flask test client, upstream (chat completions) faked with `responses`.

Answers are parsed with the official `openai` SDK's own models (Response, stream events), so a
wire-format slip fails here, not only in the e2e suite.
"""
from __future__ import annotations

import json

import openai.types.responses as rt
import pytest
import responses
from pydantic import TypeAdapter

from tests.proxy.conftest import usage_rows

CHAT_URL = "http://up.test/v1/chat/completions"
EVENT = TypeAdapter(rt.ResponseStreamEvent)


def reply(content="Hello there", pt=12, ct=3, tool_calls=None, finish="stop"):
    msg = {"role": "assistant", "content": content}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024",
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct,
                      "prompt_tokens_details": {"cached_tokens": 4}}}


def sse_body(chunks):
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def chunk(delta=None, finish=None, usage=None):
    c = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [] if usage else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if usage:
        c["usage"] = usage
    return c


def events_of(data: bytes):
    out = []
    for block in data.decode().split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ")
        ev = json.loads(lines[1][6:])
        assert ev["type"] == lines[0][7:]
        out.append(ev)
    return out


@responses.activate
def test_json_text_answer_in_responses_shape(gw_client, auth, openai_route):
    responses.post(CHAT_URL, json=reply(pt=1000, ct=2000))
    r = gw_client.post("/v1/responses", headers=auth, json={
        "model": "mini", "instructions": "Be terse.", "input": "hi", "max_output_tokens": 50,
        "temperature": 0.3, "metadata": {"ticket": "42"}, "user": "u1"})
    assert r.status_code == 200, r.data
    resp = rt.Response.model_validate(r.get_json())
    assert resp.output_text == "Hello there" and resp.status == "completed" and resp.model == "mini"
    assert resp.id.startswith("resp_") and resp.output[0].id.startswith("msg_")
    assert resp.usage.input_tokens == 1000 and resp.usage.output_tokens == 2000
    assert resp.usage.total_tokens == 3000 and resp.usage.input_tokens_details.cached_tokens == 4
    assert resp.metadata == {"ticket": "42"} and resp.store is False
    sent = json.loads(responses.calls[0].request.body)
    assert sent["messages"] == [{"role": "system", "content": "Be terse."},
                                {"role": "user", "content": "hi"}]
    assert sent["max_completion_tokens"] == 50 and sent["temperature"] == 0.3 and sent["user"] == "u1"
    assert "metadata" not in sent and "store" not in sent
    (row,) = usage_rows()
    assert (row.endpoint, row.prompt_tokens, row.completion_tokens) == ("responses", 1000, 2000)
    assert row.request_id == r.headers["x-request-id"]


@responses.activate
def test_function_tools_both_ways(gw_client, auth, openai_route):
    responses.post(CHAT_URL, json=reply(content=None, finish="tool_calls", tool_calls=[
        {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]))
    tools = [{"type": "function", "name": "get_weather", "description": "w",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    r = gw_client.post("/v1/responses", headers=auth, json={
        "model": "mini", "tools": tools, "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False, "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "weather?"},
                                               {"type": "input_image", "image_url": "https://x.test/a.png"}]},
                  {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]})
    assert r.status_code == 200, r.data
    resp = rt.Response.model_validate(r.get_json())
    (call,) = resp.output
    assert (call.type, call.call_id, call.name, json.loads(call.arguments)) == \
        ("function_call", "call_9", "get_weather", {"city": "Paris"})
    sent = json.loads(responses.calls[0].request.body)
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "w", "parameters": tools[0]["parameters"]}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert sent["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    assert sent["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


@responses.activate
def test_stream_typed_events_parse_with_the_sdk(gw_client, auth, openai_route):
    responses.post(CHAT_URL, content_type="text/event-stream", body=sse_body([
        chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
        chunk({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                               "function": {"name": "f", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk(finish="tool_calls"), chunk(usage={"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14})]))
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "mini", "input": "x", "stream": True,
                                                            "tools": [{"type": "function", "name": "f"}]})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    evs = events_of(r.data)
    for ev in evs:
        EVENT.validate_python(ev)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    assert [e["type"] for e in evs] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    final = rt.Response.model_validate(evs[-1]["response"])
    assert final.output_text == "Hello" and final.output[1].arguments == '{"a":1}'
    assert final.output[1].call_id == "call_7" and final.usage.total_tokens == 14
    assert evs[6]["text"] == "Hello" and evs[12]["arguments"] == '{"a":1}'
    (row,) = usage_rows()
    assert (row.endpoint, row.stream, row.prompt_tokens, row.completion_tokens) == ("responses", True, 9, 5)


@responses.activate
def test_midstream_error_becomes_error_then_response_failed(gw_client, auth, openai_route):
    responses.post(CHAT_URL, content_type="text/event-stream",
                   body=f"data: {json.dumps(chunk({'content': 'Hi'}))}\n\n"
                        'data: {"error": {"message": "boom", "type": "server_error", "code": null}}\n\n')
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "mini", "input": "x", "stream": True})
    evs = events_of(r.data)
    for ev in evs:
        EVENT.validate_python(ev)
    assert [e["type"] for e in evs][-2:] == ["error", "response.failed"]
    failed = evs[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert failed["output"][0]["content"][0]["text"] == "Hi"
    (row,) = usage_rows()
    assert row.status_code >= 500 and row.endpoint == "responses"


@responses.activate
def test_upstream_error_before_first_byte_is_openai_shaped(gw_client, auth, openai_route):
    responses.post(CHAT_URL, status=429, json={"error": {"message": "slow down", "type": "requests",
                                                        "code": "rate_limit_exceeded"}},
                   headers={"Retry-After": "3"})
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "mini", "input": "x"})
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "rate_limit_exceeded"
    (row,) = usage_rows()
    assert row.status_code == 429 and row.endpoint == "responses"


@pytest.mark.parametrize("body, param", [
    ({"input": "x"}, "model"),
    ({"model": "mini", "input": 5}, "input"),
    ({"model": "mini", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "mini", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "mini", "input": "x", "metadata": {"a": 1}}, "metadata"),
    ({"model": "mini", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"model": "mini", "input": "x", "background": True}, "background"),
    ({"model": "mini", "input": "x", "tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
])
def test_bad_requests_get_400_with_param(gw_client, auth, openai_route, body, param):
    r = gw_client.post("/v1/responses", headers=auth, json=body)
    assert r.status_code == 400, r.data
    assert r.get_json()["error"]["param"] == param
    (row,) = usage_rows()  # refused calls are accounted too
    assert row.status_code == 400 and row.endpoint == "responses"


def test_auth_and_scope(gw_client, openai_route):
    r = gw_client.post("/v1/responses", json={"model": "mini", "input": "x"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "missing_api_key"
    from app.services import keys
    _, raw = keys.create({"name": "emb", "scopes": ["embeddings"]}, actor="t")
    r = gw_client.post("/v1/responses", headers={"Authorization": f"Bearer {raw}"},
                       json={"model": "mini", "input": "x"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_scope"


@responses.activate
def test_store_previous_response_id_get_delete_per_key(gw_client, auth, openai_route):
    responses.post(CHAT_URL, json=reply(content="Paris."))
    responses.post(CHAT_URL, json=reply(content="About 2 million."))
    r1 = gw_client.post("/v1/responses", headers=auth, json={
        "model": "mini", "input": "Capital of France?", "store": True, "instructions": "terse"})
    first = r1.get_json()
    assert first["store"] is True
    r2 = gw_client.post("/v1/responses", headers=auth, json={
        "model": "mini", "input": "Population?", "previous_response_id": first["id"], "store": True})
    assert r2.status_code == 200, r2.data
    sent = json.loads(responses.calls[1].request.body)["messages"]
    # instructions are not carried over; the earlier turn and its answer are
    assert sent == [{"role": "user", "content": "Capital of France?"},
                    {"role": "assistant", "content": "Paris."},
                    {"role": "user", "content": "Population?"}]
    assert gw_client.get(f"/v1/responses/{first['id']}", headers=auth).get_json() == first
    from app.services import keys
    _, other = keys.create({"name": "other", "scopes": ["chat"]}, actor="t")
    other_auth = {"Authorization": f"Bearer {other}"}
    assert gw_client.get(f"/v1/responses/{first['id']}", headers=other_auth).status_code == 404
    assert gw_client.delete(f"/v1/responses/{first['id']}", headers=other_auth).status_code == 404
    r = gw_client.post("/v1/responses", headers=other_auth, json={
        "model": "mini", "input": "x", "previous_response_id": first["id"]})
    assert r.status_code == 400 and r.get_json()["error"]["param"] == "previous_response_id"
    d = gw_client.delete(f"/v1/responses/{first['id']}", headers=auth)
    assert d.get_json() == {"id": first["id"], "object": "response.deleted", "deleted": True}
    assert gw_client.get(f"/v1/responses/{first['id']}", headers=auth).status_code == 404


@responses.activate
def test_not_stored_by_default(gw_client, auth, openai_route):
    responses.post(CHAT_URL, json=reply())
    first = gw_client.post("/v1/responses", headers=auth, json={"model": "mini", "input": "x"}).get_json()
    assert first["store"] is False
    assert gw_client.get(f"/v1/responses/{first['id']}", headers=auth).status_code == 404


@responses.activate
def test_stored_items_redacted_when_policy_redacts(gw, gw_client, auth, openai_route):
    from app.services import settings
    settings.update({"sensitivity": {"action": "redact"}}, actor="t")
    responses.post(CHAT_URL, json=reply(content="ok"))
    r = gw_client.post("/v1/responses", headers=auth, json={
        "model": "mini", "input": "mail me at jane.doe@example.com", "store": True})
    assert r.status_code == 200, r.data
    from app.extensions import db
    from app.models import StoredResponse
    row = db.session.get(StoredResponse, r.get_json()["id"])
    assert "jane.doe@example.com" not in json.dumps(row.input_items)
    assert "REDACTED" in row.input_items[0]["content"]


def test_prune_usage_deletes_old_stored_responses(gw):
    from datetime import timedelta

    from app.extensions import db
    from app.models import StoredResponse, utcnow
    now = utcnow()
    for rid, age in (("resp_old", 40), ("resp_new", 1)):
        db.session.add(StoredResponse(id=rid, key_id=1, model="m", input_items=[], response={"id": rid},
                                      created_at=now - timedelta(days=age)))
    db.session.commit()
    r = gw.test_cli_runner().invoke(args=["prune-usage", "--responses-days", "30"])
    assert r.exit_code == 0, r.output
    assert "deleted 1 stored response(s) older than 30 day(s)" in r.output
    assert db.session.scalars(db.select(StoredResponse.id)).all() == ["resp_new"]
