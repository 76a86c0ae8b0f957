"""/v1/responses passed through to providers that speak the Responses API themselves.

Upstreams faked with `responses` in OpenAI's Responses wire format (the response object and its
typed stream events); every answer the gateway returns is parsed with the `openai` SDK's models.
"""
from __future__ import annotations

import json
from decimal import Decimal

import openai.types.responses as rt
import pytest
import responses
from pydantic import TypeAdapter

from tests.proxy.conftest import usage_rows

UP = "http://native.test/v1"
EVENT = TypeAdapter(rt.ResponseStreamEvent)
TOOL = {"type": "function", "name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def upstream_response(text="Hi from upstream", model="gpt-4.1-2025-04-14", usage=(21, 7), calls=()):
    output = [{"id": "msg_up_1", "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}]
    output += [{"id": f"fc_up_{i}", "type": "function_call", "status": "completed", "call_id": cid,
                "name": "get_weather", "arguments": args} for i, (cid, args) in enumerate(calls)]
    return {"id": "resp_upstream_1", "object": "response", "created_at": 1756315696,
            "status": "completed", "error": None, "incomplete_details": None, "instructions": None,
            "max_output_tokens": None, "model": model, "output": output, "parallel_tool_calls": True,
            "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
            "store": False, "temperature": 1.0, "text": {"format": {"type": "text"}},
            "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
            "usage": {"input_tokens": usage[0], "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                      "output_tokens": usage[1], "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": sum(usage)},
            "user": None, "metadata": {}}


def upstream_events(pieces=("Hel", "lo"), end="completed", model="gpt-4.1-2025-04-14"):
    """A Responses stream as OpenAI sends it (event: line + data: line, sequence numbers)."""
    text = "".join(pieces)
    base = dict(upstream_response(text, model), status="in_progress", output=[], usage=None)
    item = {"id": "msg_up_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    evs = [("response.created", {"response": base}), ("response.in_progress", {"response": base}),
           ("response.output_item.added", {"output_index": 0, "item": item}),
           ("response.content_part.added", {"item_id": "msg_up_1", "output_index": 0, "content_index": 0,
                                            "part": part})]
    evs += [("response.output_text.delta", {"item_id": "msg_up_1", "output_index": 0, "content_index": 0,
                                            "delta": p, "logprobs": []}) for p in pieces]
    if end == "completed":
        evs += [("response.output_text.done", {"item_id": "msg_up_1", "output_index": 0, "content_index": 0,
                                               "text": text, "logprobs": []}),
                ("response.completed", {"response": upstream_response(text, model)})]
    elif end == "failed":
        evs += [("error", {"code": "server_error", "message": "The server had an error", "param": None}),
                ("response.failed", {"response": dict(base, status="failed", error={
                    "code": "server_error", "message": "The server had an error"})})]
    out = ""
    for seq, (type_, fields) in enumerate(evs):
        out += f"event: {type_}\ndata: {json.dumps({'type': type_, 'sequence_number': seq, **fields})}\n\n"
    return out


def events_of(data: bytes):
    out = []
    for block in data.decode().split("\n\n"):
        lines = block.strip().splitlines()
        if lines:
            assert lines[0].startswith("event: ") and lines[1].startswith("data: ")
            ev = EVENT.validate_json(lines[1][6:])  # the SDK's own event models
            assert ev.type == lines[0][7:]
            out.append(ev)
    return out


def make_model(type_="openai", api_base=UP, name="native", config=None, priority=0, model_id="gpt-4.1"):
    from app.services import models, providers
    p = providers.create({"name": f"{type_}-{name}-{priority}", "type": type_, "api_base": api_base,
                          "api_key": "sk-native-SECRET-9", "config": config or {}}, actor="t")
    return models.create({"provider_id": p.id, "model_id": model_id, "name": name, "priority": priority,
                          "input_price_per_mtok": "2", "output_price_per_mtok": "8"}, actor="t")


@pytest.fixture
def native(gw):
    return make_model()


@responses.activate
def test_json_passed_through_with_upstream_model_and_no_upstream_storage(gw_client, auth, native):
    responses.post(f"{UP}/responses", json=upstream_response(usage=(1000, 500)))
    r = gw_client.post("/v1/responses", headers=auth, json={
        "model": "native", "instructions": "Be terse.", "input": "hi", "store": True,
        "reasoning": {"effort": "low"}, "metadata": {"team": "x"}})
    assert r.status_code == 200, r.data
    resp = rt.Response.model_validate(r.get_json())
    assert resp.output_text == "Hi from upstream" and resp.model == "native" and resp.store is True
    assert resp.id.startswith("resp_") and resp.id != "resp_upstream_1"  # the gateway's own id
    (call,) = responses.calls
    sent = json.loads(call.request.body)
    assert call.request.url == f"{UP}/responses" and call.request.headers["Authorization"] == "Bearer sk-native-SECRET-9"
    assert sent["model"] == "gpt-4.1" and sent["store"] is False
    assert sent["reasoning"] == {"effort": "low"} and sent["metadata"] == {"team": "x"}  # unknown-to-us fields kept
    (row,) = usage_rows()
    assert (row.endpoint, row.prompt_tokens, row.completion_tokens, row.cached_tokens) == ("responses", 1000, 500, 4)
    assert row.tokens_estimated is False and row.cost_usd == Decimal("0.006")
    assert "responses: passed through to the provider's own API" in row.details["checks"]
    stored = gw_client.get(f"/v1/responses/{resp.id}", headers=auth).get_json()
    assert stored["output"][0]["content"][0]["text"] == "Hi from upstream"


@responses.activate
def test_previous_response_id_expands_the_chain_for_the_upstream(gw_client, auth, native):
    first = dict(upstream_response(calls=[("call_1", '{"city":"Paris"}')]))
    first["output"].insert(0, {"id": "rs_up_1", "type": "reasoning", "summary": []})  # no encrypted_content
    responses.post(f"{UP}/responses", json=first)
    one = gw_client.post("/v1/responses", headers=auth, json={
        "model": "native", "input": "Weather in Paris?", "tools": [TOOL], "store": True}).get_json()
    responses.replace(responses.POST, f"{UP}/responses", json=upstream_response("It is sunny."))
    two = gw_client.post("/v1/responses", headers=auth, json={
        "model": "native", "previous_response_id": one["id"], "tools": [TOOL],
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]}).get_json()
    assert two["previous_response_id"] == one["id"] and two["output"][0]["content"][0]["text"] == "It is sunny."
    sent = json.loads(responses.calls[1].request.body)
    assert "previous_response_id" not in sent
    types = [i.get("type") for i in sent["input"]]
    assert types == ["message", "message", "function_call", "function_call_output"]  # no reasoning item
    assert sent["input"][0]["content"] == "Weather in Paris?"
    assert not any("id" in i for i in sent["input"][:3])  # upstream ids are not stored upstream
    assert sent["input"][2]["call_id"] == "call_1"


@responses.activate
def test_stream_events_forwarded_and_billed_from_response_completed(gw_client, auth, native):
    responses.post(f"{UP}/responses", body=upstream_events(("Hel", "lo", " there")),
                   content_type="text/event-stream")
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "native", "input": "hi", "stream": True})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = events_of(r.data)
    assert [e.sequence_number for e in events] == list(range(len(events)))  # upstream's, untouched
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello there"
    assert events[0].response.model == "native" and events[-1].type == "response.completed"
    assert events[-1].response.model == "native" and events[-1].response.id == events[0].response.id
    assert json.loads(responses.calls[0].request.body)["stream"] is True
    (row,) = usage_rows()
    assert (row.stream, row.status_code, row.prompt_tokens, row.completion_tokens) == (True, 200, 21, 7)


@responses.activate
def test_stream_failure_event_is_forwarded_and_recorded(gw_client, auth, native):
    responses.post(f"{UP}/responses", body=upstream_events(("partial",), end="failed"),
                   content_type="text/event-stream")
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "native", "input": "hi", "stream": True})
    events = events_of(r.data)
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    (row,) = usage_rows()
    assert row.status_code == 502 and row.error_class == "upstream_error"
    assert row.completion_tokens >= 2  # "partial" was delivered: billed at least as estimated


@responses.activate
def test_stream_cut_before_its_end_gets_an_error_event(gw_client, auth, native):
    cut = upstream_events(("abc",)).split("event: response.output_text.done")[0]
    responses.post(f"{UP}/responses", body=cut, content_type="text/event-stream")
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "native", "input": "hi", "stream": True})
    events = events_of(r.data)
    assert events[-1].type == "error" and events[-1].code == "stream_truncated"
    assert events[-1].sequence_number == events[-2].sequence_number + 1
    (row,) = usage_rows()
    assert row.status_code == 502 and row.error_class == "stream_truncated"


@responses.activate
def test_upstream_errors_keep_the_openai_error_shape(gw_client, auth, native):
    responses.post(f"{UP}/responses", status=429, headers={"Retry-After": "3"}, json={"error": {
        "message": "Rate limit reached for gpt-4.1", "type": "requests", "param": None,
        "code": "rate_limit_exceeded"}})
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "native", "input": "hi"})
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "rate_limit_exceeded"
    assert "sk-native-SECRET-9" not in r.get_data(as_text=True)
    (row,) = usage_rows()
    assert row.status_code == 429 and row.endpoint == "responses"


@responses.activate
def test_malformed_upstream_body_is_a_502_not_a_crash(gw_client, auth, native):
    responses.post(f"{UP}/responses", body="<html>bad gateway</html>", status=200)
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "native", "input": "hi"})
    assert r.status_code == 502 and r.get_json()["error"]["code"] == "malformed_response"


@responses.activate
def test_responses_api_false_translates_to_chat_completions(gw, gw_client, auth):
    make_model(config={"responses_api": "false"})
    responses.post(f"{UP}/chat/completions", json={
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4.1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "via chat"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "native", "input": "hi"})
    assert rt.Response.model_validate(r.get_json()).output_text == "via chat"
    assert [c.request.url for c in responses.calls] == [f"{UP}/chat/completions"]


@responses.activate
def test_compatible_servers_translate_unless_configured(gw, gw_client, auth):
    make_model("openai-compatible", "http://vllm.test/v1", name="compat", config={"responses_api": "true"})
    make_model("openai-compatible", "http://plain.test/v1", name="plain")
    responses.post("http://vllm.test/v1/responses", json=upstream_response("native vllm"))
    responses.post("http://plain.test/v1/chat/completions", json={
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "plain chat"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    a = gw_client.post("/v1/responses", headers=auth, json={"model": "compat", "input": "hi"}).get_json()
    b = gw_client.post("/v1/responses", headers=auth, json={"model": "plain", "input": "hi"}).get_json()
    assert a["output"][0]["content"][0]["text"] == "native vllm"
    assert b["output"][0]["content"][0]["text"] == "plain chat"


@responses.activate
def test_azure_goes_to_the_v1_surface_with_the_deployment_as_model(gw, gw_client, auth):
    make_model("azure-openai", "https://res.openai.azure.com", name="az", model_id="gpt41-prod")
    responses.post("https://res.openai.azure.com/openai/v1/responses", json=upstream_response("from azure"))
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "az", "input": "hi"})
    assert r.get_json()["output"][0]["content"][0]["text"] == "from azure"
    (call,) = responses.calls
    assert call.request.headers["api-key"] == "sk-native-SECRET-9" and "Authorization" not in call.request.headers
    assert json.loads(call.request.body)["model"] == "gpt41-prod"


@responses.activate
def test_fallback_from_a_native_deployment_to_a_translated_one(gw, gw_client, auth):
    from app.services import groups
    groups.put("native", {"strategy": "priority", "retries": 1}, actor="t")
    make_model(priority=0)
    make_model("ollama", "http://ollama.test", priority=1, model_id="llama3.2")
    responses.post(f"{UP}/responses", status=503, json={"error": {"message": "overloaded", "type": "server_error"}})
    responses.post("http://ollama.test/api/chat", json={
        "model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z",
        "message": {"role": "assistant", "content": "from ollama"}, "done": True, "done_reason": "stop",
        "prompt_eval_count": 9, "eval_count": 3})
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "native", "input": "hi"})
    assert r.status_code == 200, r.data
    resp = rt.Response.model_validate(r.get_json())
    assert resp.output_text == "from ollama" and resp.model == "native"
    assert r.headers["x-gateway-attempts"] == "openai-native-0/gpt-4.1=503;ollama-native-1/llama3.2=200"
    (row,) = usage_rows()
    assert (row.prompt_tokens, row.completion_tokens) == (9, 3)


@responses.activate
def test_redacted_requests_are_translated_so_the_redaction_holds(gw, gw_client, auth, native):
    from app.services import settings
    settings.update({"sensitivity": {"action": "redact"}}, actor="t")
    responses.post(f"{UP}/chat/completions", json={
        "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4.1",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    r = gw_client.post("/v1/responses", headers=auth, json={"model": "native", "input": "mail jane.doe@example.com"})
    assert r.status_code == 200, r.data
    (call,) = responses.calls
    assert call.request.url == f"{UP}/chat/completions" and "jane.doe@example.com" not in call.request.body.decode()
