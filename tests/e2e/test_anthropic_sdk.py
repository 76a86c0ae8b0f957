"""The official `anthropic` SDK, unmodified (only base_url and api_key changed), against the
gateway (gunicorn + gevent) and the fake provider process, once per provider type: passed
through to Anthropic providers, translated onto every other type's wire format.

Answers are checked against the provider fixture the fake replayed, and each call against its
one usage row (endpoint "messages").
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e
anthropic = pytest.importorskip("anthropic")

TOOLS = [{"name": "get_weather", "description": "Current weather for a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}]
ASK = [{"role": "user", "content": "What's the weather like today?"}]


@pytest.fixture(scope="module")
def ant(gateway):
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.chat_key, max_retries=0,
                               timeout=10.0)


def test_create_text(gateway, ant, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    raw = ant.messages.with_raw_response.create(model=model, max_tokens=200, system="Be terse.",
                                                messages=ASK)
    msg = raw.parse()
    want = expect[provider_type]["json"]
    assert msg.type == "message" and msg.role == "assistant" and msg.model == model
    assert "".join(b.text for b in msg.content if b.type == "text") == want["text"]
    assert msg.stop_reason == "end_turn"
    rows = gateway.usage_row(raw.headers["x-request-id"])
    assert rows["endpoint"] == "messages" and rows["status_code"] == 200
    if want["usage"]:
        assert msg.usage.output_tokens == want["usage"][1] == rows["completion_tokens"]
    if provider_type == "anthropic":  # passed through: the fake saw the client's own system string
        assert gateway.fake_stats()["last"]["/v1/messages"]["body"]["system"] == "Be terse."


def test_tool_use_round_trip(gateway, ant, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    msg = ant.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=[
        {"role": "user", "content": "Weather in Paris?"}])
    uses = [b for b in msg.content if b.type == "tool_use"]
    want = expect[provider_type]["json_tools"]["tool_calls"]
    assert [(u.name, u.input) for u in uses] == [(w["name"], w["arguments"]) for w in want]
    assert msg.stop_reason == "tool_use" and all(u.id for u in uses)
    follow = ant.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [u.model_dump() for u in uses]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "sunny, 21 C"}
                                     for u in uses]}])
    assert follow.type == "message"
    sent = str(gateway.fake_stats()["last"])
    assert "sunny, 21 C" in sent  # the tool result went upstream in that provider's format


def test_stream_helper_text(gateway, ant, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    with ant.messages.stream(model=model, max_tokens=200, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    want = expect[provider_type]["stream"]
    assert text == want["text"] and final.stop_reason == "end_turn" and final.model == model
    assert "".join(b.text for b in final.content if b.type == "text") == want["text"]


def test_stream_helper_tool_use(gateway, ant, expect, provider_type):
    model = gateway.model(provider_type, "chat")
    with ant.messages.stream(model=model, max_tokens=200, tools=TOOLS,
                             messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    want = expect[provider_type]["stream_tools"]["tool_calls"]
    assert [(u.name, u.input) for u in uses] == [(w["name"], w["arguments"]) for w in want]
    assert final.stop_reason == "tool_use"


def test_count_tokens(gateway, ant, provider_type):
    short = ant.messages.count_tokens(model=gateway.model(provider_type, "chat"), messages=ASK)
    longer = ant.messages.count_tokens(model=gateway.model(provider_type, "chat"), tools=TOOLS,
                                       messages=ASK + [{"role": "assistant", "content": "x" * 400}])
    assert 0 < short.input_tokens < longer.input_tokens


def test_errors_raise_the_sdk_exceptions(gateway, ant, provider_type):
    with pytest.raises(anthropic.RateLimitError) as e:
        ant.messages.create(model=gateway.model(provider_type, "err-429"), max_tokens=10, messages=ASK)
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.NotFoundError):
        ant.messages.create(model="no-such-model", max_tokens=10, messages=ASK)
    with pytest.raises(anthropic.BadRequestError):
        ant.messages.create(model=gateway.model(provider_type, "chat"), max_tokens=0, messages=ASK)
    bad = anthropic.Anthropic(base_url=gateway.base_url, api_key="gw-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model=gateway.model(provider_type, "chat"), max_tokens=10, messages=ASK)


def test_midstream_failure_is_an_error_event(gateway, ant, provider_type):
    with pytest.raises(anthropic.APIStatusError):
        with ant.messages.stream(model=gateway.model(provider_type, "err-midstream"), max_tokens=50,
                                 messages=ASK) as stream:
            for _ in stream:
                pass
