"""The official `openai` SDK's `client.responses.create` against the gateway (gunicorn + gevent)
and the fake provider process, once per provider type: passed through to the Responses API of the
types that speak it (OpenAI-compatible configured so, Azure's v1 surface), translated onto the
chat wire format of the others.

Answers are checked against the provider fixture the fake replayed, and each call against its
one usage row (endpoint "responses").
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

TOOLS = [{"type": "function", "name": "get_weather", "description": "Current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}]


# provider type -> the upstream path a native (passed-through) Responses call goes to
NATIVE = {"openai-compatible": "/v1/responses", "azure-openai": "/openai/v1/responses"}


def _row(gw, rid):
    row = gw.usage_row(rid)
    assert row["endpoint"] == "responses" and row["status_code"] == 200
    return row


def test_create_text(gateway, client, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    before = gateway.fake_stats()["requests"]
    raw = client.responses.with_raw_response.create(model=model, instructions="You are terse.",
                                                    input="What's the weather like today?",
                                                    store=True)
    resp = raw.parse()
    stats = gateway.fake_stats()
    path = NATIVE.get(provider_type)
    if path:  # passed through: the client's body went up with the upstream id, stored nowhere there
        assert stats["requests"].get(path, 0) == before.get(path, 0) + 1
        sent = stats["last"][path]["body"]
        assert sent["instructions"] == "You are terse." and sent["store"] is False
        assert sent["model"] == gateway.upstream_model(provider_type, "chat") != model
        assert resp.id.startswith("resp_") and resp.store is True  # the gateway's own, stored here
        assert client.responses.retrieve(resp.id).output_text == resp.output_text
    else:
        assert not any(stats["requests"].get(p, 0) - before.get(p, 0) for p in NATIVE.values())
    want = expect[provider_type]["json"]
    assert resp.output_text == want["text"] and resp.status == "completed" and resp.model == model
    row = _row(gateway, raw.headers["x-request-id"])
    if want["usage"]:
        assert (resp.usage.input_tokens, resp.usage.output_tokens) == want["usage"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (resp.usage.input_tokens,
                                                               resp.usage.output_tokens)


def test_stream_text(gateway, client, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    events = list(client.responses.create(model=model, input="Hi", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == expect[provider_type]["stream"]["text"]
    assert events[-1].response.output_text == text
    done = [e for e in events if e.type == "response.output_text.done"]
    assert len(done) == 1 and done[0].text == text


def test_stream_helper_function_call(gateway, client, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    with client.responses.stream(model=model, input="Weather in Paris?", tools=TOOLS) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    want = expect[provider_type]["stream_tools"]["tool_calls"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [(w["name"], w["arguments"]) for w in want]
    assert all(c.call_id for c in calls)


def test_function_call_round_trip_with_previous_response_id(gateway, client, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    first = client.responses.create(model=model, input="Weather in Paris?", tools=TOOLS, store=True)
    calls = [o for o in first.output if o.type == "function_call"]
    want = expect[provider_type]["json_tools"]["tool_calls"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [(w["name"], w["arguments"]) for w in want]
    second = client.responses.create(
        model=model, previous_response_id=first.id, tools=TOOLS, store=True,
        input=[{"type": "function_call_output", "call_id": c.call_id, "output": "sunny, 21 C"}
               for c in calls])
    assert second.previous_response_id == first.id and second.status == "completed"
    sent = gateway.fake_stats()["last"]
    body = json.dumps(sent)
    assert "Weather in Paris?" in body and "sunny, 21 C" in body  # history + tool result went up
    assert client.responses.retrieve(first.id).id == first.id
    client.responses.delete(first.id)
    import openai
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_upstream_error_maps_to_sdk_exception(gateway, client, provider_type):
    import openai
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model=gateway.model(provider_type, "err-429"), input="x")


def test_midstream_failure_is_response_failed(gateway, client, expect, provider_type):
    events = list(client.responses.create(model=gateway.model(provider_type, "err-midstream"),
                                          input="x", stream=True))
    assert events[-1].type == "response.failed" and events[-2].type == "error"
    assert events[-1].response.status == "failed"
