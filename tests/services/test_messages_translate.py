"""Anthropic Messages <-> chat translation and the Anthropic event writer (app.services.messages_api)."""
from __future__ import annotations

import json

import pytest

from app.services.completions import ProxyError
from app.services.messages_api import translate as t
from app.services.messages_api.stream import EventWriter, translate_stream


def body(**kw):
    return {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **kw}


def test_system_blocks_images_tool_results_and_tools_translate():
    chat = t.to_chat(body(
        system=[{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Be kind."}],
        stop_sequences=["END"], temperature=0.2, metadata={"user_id": "u-1"},
        tools=[{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                                         {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                              {"type": "text", "text": "Calling."},
                                              {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                                         {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True},
                                         {"type": "text", "text": "and now?"}]}]))
    m = chat["messages"]
    assert m[0] == {"role": "system", "content": "Be terse.\nBe kind."}
    assert m[1]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}
    assert m[1]["content"][2]["image_url"]["url"] == "https://x.test/a.jpg"
    assert m[2]["content"] == "Calling." and json.loads(m[2]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert m[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    assert m[4] == {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"}
    assert m[5] == {"role": "user", "content": "and now?"}  # tool results come before the text
    assert chat["stop"] == ["END"] and chat["user"] == "u-1" and chat["max_tokens"] == 100
    assert chat["tools"][0]["function"] == {"name": "w", "description": "weather", "parameters": {"type": "object"}}
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False


@pytest.mark.parametrize("bad,param", [
    ({"max_tokens": None}, "max_tokens"), ({"max_tokens": 0}, "max_tokens"), ({"messages": []}, "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"), ({"stream": "yes"}, "stream"),
    ({"tools": [{"name": "x"}]}, "tools.0"), ({"stop_sequences": "END"}, "stop_sequences"),
])
def test_validation_names_the_field(bad, param):
    with pytest.raises(ProxyError) as e:
        t.validate({**body(), **bad})
    assert e.value.status == 400 and e.value.param == param


def test_unsupported_blocks_are_refused_by_name():
    with pytest.raises(ProxyError) as e:
        t.to_chat(body(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]))
    assert "document" in e.value.message and e.value.param == "messages.0.content.0.type"


def test_chat_answer_to_message():
    obj = {"choices": [{"message": {"role": "assistant", "content": "Hi", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Oslo"}'}}]},
        "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 10}}}
    msg = t.from_chat(obj, "pub", body())
    assert msg["id"].startswith("msg_") and msg["model"] == "pub" and msg["stop_reason"] == "tool_use"
    assert msg["content"] == [{"type": "text", "text": "Hi"},
                              {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Oslo"}}]
    assert msg["usage"] == {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10,
                            "output_tokens": 5}
    assert t.from_chat({"choices": [{"message": {"content": "x"}, "finish_reason": "length"}]}, "p", body())["stop_reason"] == "max_tokens"


def _chunk(**delta):
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}).encode() + b"\n\n"


def events(pieces):
    out = []
    for block in b"".join(translate_stream(iter(pieces), EventWriter("pub", body(), 12))).decode().split("\n\n"):
        if block.strip():
            head, data = block.split("\n", 1)
            out.append((head[7:], json.loads(data[6:])))
    return out


def test_event_sequence_for_text_then_tool_use():
    evs = events([_chunk(role="assistant", content=""), _chunk(content="Hel"), _chunk(content="lo"),
                  _chunk(tool_calls=[{"index": 0, "id": "call_9", "function": {"name": "w", "arguments": ""}}]),
                  _chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}]),
                  _chunk(tool_calls=[{"index": 0, "function": {"arguments": '1}'}}]),
                  b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}\n\n',
                  b'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}\n\n',
                  b"data: [DONE]\n\n"])
    types = [e for e, _ in evs]
    assert types == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    assert all(d["type"] == e for e, d in evs)
    assert evs[0][1]["message"]["model"] == "pub" and evs[0][1]["message"]["usage"]["input_tokens"] == 12
    assert evs[6][1] == {"type": "content_block_start", "index": 1,
                         "content_block": {"type": "tool_use", "id": "call_9", "name": "w", "input": {}}}
    assert "".join(d["delta"]["partial_json"] for e, d in evs[7:9]) == '{"a":1}'
    assert evs[10][1]["delta"]["stop_reason"] == "tool_use" and evs[10][1]["usage"]["output_tokens"] == 4


def test_failures_become_error_events():
    evs = events([_chunk(content="x"), b'data: {"error": {"message": "slow down", "type": "rate_limit_error"}}\n\n'])
    assert evs[-1] == ("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    cut = events([_chunk(content="x")])
    assert cut[-1][0] == "error" and cut[-1][1]["error"]["type"] == "api_error"
