"""Anthropic Messages adapter, on the anthropic/ fixtures."""
from __future__ import annotations

import json

import pytest

from app.providers.anthropic import AnthropicAdapter, finish_reason
from app.providers.base import UpstreamError

KEY = "sk-ant-api03-test-key-0123456789"


@pytest.fixture
def adapter(make_cfg):
    return AnthropicAdapter(make_cfg("anthropic", "https://api.anthropic.com",
                                     secrets={"api_key": KEY}))


def translate(adapter, body, model="claude-sonnet-4-5"):
    req = adapter.chat_request(body, model)
    return req, json.loads(req.body)


# --- request translation ---------------------------------------------------------------------
def test_full_request_matches_fixture(adapter, fxjson):
    expected = fxjson("anthropic/request-full.json")
    png = expected["messages"][0]["content"][0]["source"]["data"]
    url = expected["messages"][0]["content"][1]["source"]["url"]
    tool = expected["tools"][0]
    body = {
        "model": "public-claude", "max_tokens": 1024, "temperature": 0.2, "stream": False,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": expected["system"][0]["text"],
                                            "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                {"type": "image_url", "image_url": {"url": url, "detail": "auto"}},
                {"type": "text", "text": "Describe these images, then tell me the weather in Paris."},
            ]},
            {"role": "assistant", "content": "I'll check the current weather in Paris for you.",
             "tool_calls": [{"id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "type": "function",
                             "function": {"name": "get_weather",
                                          "arguments": "{\"location\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
             "content": "15°C, light rain"},
            {"role": "user", "content": "Answer in one sentence."},
        ],
        "tools": [{"type": "function", "function": {"name": tool["name"],
                                                    "description": tool["description"],
                                                    "parameters": tool["input_schema"]}}],
        "tool_choice": "auto", "parallel_tool_calls": False,
        "stop": "END_OF_ANSWER", "user": expected["metadata"]["user_id"],
        "response_format": {"type": "json_object"}, "seed": 7, "presence_penalty": 0.5,
    }
    req, sent = translate(adapter, body)
    expected.pop("stream")  # stream:false is simply omitted
    assert sent == expected
    assert req.url == "https://api.anthropic.com/v1/messages" and req.stream is False
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["Content-Type"] == "application/json"
    assert "Authorization" not in req.headers


def test_system_string_request_matches_fixture(adapter, fxjson):
    expected = fxjson("anthropic/request-system-string.json")
    body = {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "Hello, Claude"}],
            "max_completion_tokens": 1024, "stop": ["\n\nQ:", "  "], "stream": True,
            "stream_options": {"include_usage": True},
            "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"}
    req, sent = translate(adapter, body)
    assert sent == expected  # whitespace-only stop sequence dropped, stream_options not sent
    assert req.stream is True and req.headers["Accept"] == "text/event-stream"


def test_tool_round_trip_request_matches_recorded(adapter, fxjson):
    expected = fxjson("anthropic/request-tool-result-recorded.json")
    tool = expected["tools"][0]
    body = {"messages": [
        {"role": "user", "content": "What's the weather in SF in Celsius?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_013DU6hV4C1M8dJ32ybQFAFi", "type": "function",
             "function": {"name": "get_weather",
                          "arguments": "{\"location\":\"SF\",\"units\":\"c\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_013DU6hV4C1M8dJ32ybQFAFi",
         "content": expected["messages"][2]["content"][0]["content"]},
    ], "max_tokens": 1024,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "",
                                                    "parameters": tool["input_schema"]}}]}
    _, sent = translate(adapter, body, "claude-haiku-4-5")
    for block in expected["messages"][1]["content"]:
        block.pop("caller")  # SDK-recorded extra, not something we send
    expected["tools"][0].pop("description")  # empty descriptions are omitted
    assert sent == expected


def test_n_tool_messages_become_one_user_turn_and_same_roles_merge(adapter):
    body = {"messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "text",
                                                                        "text": "b"}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "t2", "type": "function", "function": {"name": "g", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "r1"},
        {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "r2"}]},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "Sure:  "},
    ]}
    _, sent = translate(adapter, body)
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "a"},
                                              {"type": "text", "text": "b"}]
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        {"type": "tool_use", "id": "t2", "name": "g", "input": {}}]  # no empty text block
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "r1"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "r2"},
        {"type": "text", "text": "thanks"}]
    assert sent["messages"][3]["content"] == "Sure:"  # prefill without trailing whitespace
    assert "system" not in sent


def test_multiple_system_messages_join_and_developer_role(adapter):
    _, sent = translate(adapter, {"messages": [
        {"role": "system", "content": "one"}, {"role": "developer", "content": "two"},
        {"role": "user", "content": "hi"}]})
    assert sent["system"] == "one\n\ntwo"


@pytest.mark.parametrize("openai_choice,parallel,expected", [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None,
     {"type": "tool", "name": "get_weather"}),
    ({"type": "function", "function": {"name": "get_weather"}}, False,
     {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    (None, None, None),
])
def test_tool_choice_mapping(adapter, fxjson, openai_choice, parallel, expected):
    variants = fxjson("anthropic/tool-choice-variants.json")
    body = {"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}]}
    if openai_choice is not None:
        body["tool_choice"] = openai_choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    _, sent = translate(adapter, body)
    assert sent.get("tool_choice") == expected
    assert sent["tools"] == [{"name": "get_weather",
                              "input_schema": {"type": "object", "properties": {}}}]
    if openai_choice == "required":
        assert expected == variants["openai_equivalents"]['"required"']


def test_max_tokens_defaults_and_temperature_clamp(make_cfg):
    plain = AnthropicAdapter(make_cfg("anthropic"))
    _, sent = translate(plain, {"messages": [{"role": "user", "content": "x"}],
                                "temperature": 1.7, "top_p": 0.9})
    assert sent["max_tokens"] == 4096 and sent["temperature"] == 1.0 and sent["top_p"] == 0.9
    configured = AnthropicAdapter(make_cfg("anthropic", default_max_tokens=777,
                                           default_temperature=0.4))
    _, sent = translate(configured, {"messages": [{"role": "user", "content": "x"}]})
    assert sent["max_tokens"] == 777 and sent["temperature"] == 0.4
    _, sent = translate(configured, {"messages": [{"role": "user", "content": "x"}],
                                     "max_completion_tokens": 12})
    assert sent["max_tokens"] == 12


def test_base_url_with_v1_and_version_config(make_cfg):
    a = AnthropicAdapter(make_cfg("anthropic", "https://proxy.example/anthropic/v1/",
                                  config={"anthropic_version": "2024-01-01",
                                          "anthropic_beta": "prompt-caching-2024-07-31"}))
    req = a.chat_request({"messages": [{"role": "user", "content": "x"}]}, "m")
    assert req.url == "https://proxy.example/anthropic/v1/messages"
    assert req.headers["anthropic-version"] == "2024-01-01"
    assert req.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert AnthropicAdapter(make_cfg("anthropic", "")).chat_request(
        {"messages": [{"role": "user", "content": "x"}]}, "m").url == \
        "https://api.anthropic.com/v1/messages"


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                 "image_url": {"url": "ftp://x"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
    ({"messages": []}, "messages"),
])
def test_untranslatable_requests_are_400(adapter, body, param):
    with pytest.raises(UpstreamError) as ei:
        adapter.chat_request(body, "m")
    assert ei.value.status == 400 and ei.value.param == param
    assert ei.value.error_class == "bad_request"


# --- responses ---------------------------------------------------------------------------------
def test_parse_text_and_tool_use_response(adapter, fx):
    obj, usage = adapter.parse_chat_response(
        fx("anthropic/response-text-tool-use-recorded.json"), "pub")
    assert obj["object"] == "chat.completion" and obj["model"] == "pub"
    assert obj["id"] == "msg_01UBZt9MX63Tk3v1gKvgxk3A"
    ch = obj["choices"][0]
    assert ch["finish_reason"] == "tool_calls"
    assert ch["message"]["content"].startswith("I'll get the weather")
    assert ch["message"]["tool_calls"] == [{
        "id": "toolu_01LRanfq6DmHn1yDTB4d1SAh", "type": "function",
        "function": {"name": "get_weather",
                     "arguments": json.dumps({"location": "San Francisco, CA", "units": "f"},
                                             separators=(",", ":"))}}]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (701, 93, 0)
    assert obj["usage"]["total_tokens"] == 794


def test_parse_text_response(adapter, fx):
    obj, usage = adapter.parse_chat_response(fx("anthropic/response-text-recorded.json"), "pub")
    msg = obj["choices"][0]["message"]
    assert msg["content"] == "The weather in SF is currently **20°C** (68°F) and **Sunny**!"
    assert "tool_calls" not in msg and obj["choices"][0]["finish_reason"] == "stop"
    assert usage.total_tokens == 730


def test_cache_tokens_count_into_prompt_and_cached(adapter, fxjson):
    resp = fxjson("anthropic/response-text-recorded.json")
    resp["usage"].update(input_tokens=10, cache_read_input_tokens=100,
                         cache_creation_input_tokens=5)
    _, usage = adapter.parse_chat_response(json.dumps(resp).encode(), "pub")
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (115, 100, 25)
    assert usage.as_openai()["prompt_tokens_details"] == {"cached_tokens": 100}


@pytest.mark.parametrize("stop,expected", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "stop"),
    ("model_context_window_exceeded", "length"), ("something_new", "stop"),
])
def test_finish_reason_mapping(adapter, fxjson, stop, expected):
    assert finish_reason(stop) == expected
    resp = fxjson("anthropic/response-text-recorded.json")
    resp["stop_reason"] = stop
    obj, _ = adapter.parse_chat_response(json.dumps(resp).encode(), "pub")
    assert obj["choices"][0]["finish_reason"] == expected


def test_malformed_response(adapter):
    with pytest.raises(UpstreamError) as ei:
        adapter.parse_chat_response(b'{"id":"x","content":"nope"}', "pub")
    assert ei.value.error_class == "malformed_response"


# --- streaming ---------------------------------------------------------------------------------
def test_stream_text_2024(adapter, fx, run_decoder, split_mode, assemble):
    dec = adapter.stream_decoder("pub")
    chunks = run_decoder(dec, fx("anthropic/stream-text.sse"), split_mode)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["model"] == "pub" and c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["id"] == "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK" for c in chunks)
    assert assemble.text(chunks) == "Hello there!"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert sum(1 for c in chunks if c["choices"][0]["finish_reason"]) == 1
    assert dec.done and dec.finish_reason == "stop"
    assert (dec.usage.prompt_tokens, dec.usage.completion_tokens) == (11, 6)


def test_stream_recorded_padding_and_usage_not_double_counted(adapter, fx, run_decoder,
                                                              split_mode, assemble):
    dec = adapter.stream_decoder("pub")
    chunks = run_decoder(dec, fx("anthropic/stream-text-recorded.sse"), split_mode)
    assert assemble.text(chunks) == "[12345,67890]"
    assert (dec.usage.prompt_tokens, dec.usage.completion_tokens) == (135, 10)


def test_stream_text_then_tool_use(adapter, fx, run_decoder, split_mode, assemble):
    dec = adapter.stream_decoder("pub")
    chunks = run_decoder(dec, fx("anthropic/stream-tool-use.sse"), split_mode)
    assert assemble.text(chunks) == "I'll check the current weather in Paris for you."
    calls = assemble.tool_calls(chunks)
    assert calls == {0: {"id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "name": "get_weather",
                         "arguments": '{"location": "Paris"}'}}
    first_tool = next(c for c in chunks if c["choices"][0]["delta"].get("tool_calls"))
    assert first_tool["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == ""
    assert dec.finish_reason == "tool_calls"
    assert (dec.usage.prompt_tokens, dec.usage.completion_tokens) == (377, 65)


def test_stream_recorded_tool_only(adapter, fx, run_decoder, split_mode, assemble):
    dec = adapter.stream_decoder("pub")
    chunks = run_decoder(dec, fx("anthropic/stream-tool-use-recorded.sse"), split_mode)
    calls = assemble.tool_calls(chunks)
    assert list(calls) == [0] and calls[0]["id"] == "toolu_018acGYLtfR52q9yDbWaEdQZ"
    assert json.loads(calls[0]["arguments"]) == {"location": "San Francisco, CA", "units": "f"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    # no empty-string argument fragments forwarded besides the opening one
    frags = [tc["function"]["arguments"] for c in chunks
             for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert frags[0] == "" and all(frags[1:])
    assert (dec.usage.prompt_tokens, dec.usage.completion_tokens) == (656, 74)


def test_stream_splits_give_identical_chunks(adapter, fx, run_decoder):
    data = fx("anthropic/stream-tool-use.sse")
    whole = run_decoder(adapter.stream_decoder("pub"), data, "whole")
    for mode in ("bytes", 11, 12):
        other = run_decoder(adapter.stream_decoder("pub"), data, mode)
        strip = lambda cs: [{k: v for k, v in c.items() if k != "created"} for c in cs]  # noqa
        assert strip(other) == strip(whole)


def test_stream_error_event_overloaded(adapter, fx, run_decoder, split_mode):
    dec = adapter.stream_decoder("pub")
    with pytest.raises(UpstreamError) as ei:
        run_decoder(dec, fx("anthropic/stream-error-event.sse"), split_mode)
    assert ei.value.status == 503 and ei.value.message == "Overloaded"
    assert ei.value.error_class == "upstream_error"


def test_stream_error_after_some_text(adapter, fx):
    dec = adapter.stream_decoder("pub")
    data = fx("anthropic/stream-text.sse")
    cut = data.index(b"event: content_block_stop")
    assert dec.feed(data[:cut])
    with pytest.raises(UpstreamError) as ei:
        dec.feed(b'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error",'
                 b'"message":"slow down"}}\n\n')
    assert ei.value.status == 429


# --- errors ------------------------------------------------------------------------------------
def test_recorded_errors(adapter, fxjson):
    errors = fxjson("anthropic/errors.json")
    for name, status, gw, cls in [("400_recorded", 400, 400, "bad_request"),
                                  ("429_recorded", 429, 429, "rate_limited"),
                                  ("529_overloaded_body_used_in_sdk_tests", 529, 503,
                                   "upstream_error")]:
        e = adapter.parse_error(status, {"retry-after": "12"},
                                json.dumps(errors[name]["body"]).encode())
        assert (e.status, e.error_class) == (gw, cls), name
        assert e.message == errors[name]["body"]["error"]["message"]
        if status == 429:
            assert e.retry_after == "12" and e.type == "rate_limit_error"


@pytest.mark.parametrize("status,etype,gw,cls", [
    (401, "authentication_error", 502, "upstream_auth"),
    (403, "permission_error", 502, "upstream_auth"),
    (404, "not_found_error", 404, "not_found"),
    (413, "request_too_large", 400, "bad_request"),
    (500, "api_error", 502, "upstream_error"),
    (504, "timeout_error", 504, "timeout"),
])
def test_documented_error_statuses(adapter, status, etype, gw, cls):
    body = json.dumps({"type": "error", "error": {"type": etype, "message": f"m {KEY}"},
                       "request_id": "req_1"}).encode()
    e = adapter.parse_error(status, {}, body)
    assert (e.status, e.error_class) == (gw, cls)
    assert KEY not in e.message


# --- models ------------------------------------------------------------------------------------
def test_models_request_and_parse(adapter):
    req = adapter.models_request()
    assert req.method == "GET" and req.url.startswith("https://api.anthropic.com/v1/models")
    assert req.headers["x-api-key"] == KEY and "anthropic-version" in req.headers
    assert adapter.health_request().url == req.url
    data = json.dumps({"data": [
        {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
         "created_at": "2025-09-29T00:00:00Z"},
        {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5",
         "created_at": "2025-10-01T00:00:00Z"}],
        "has_more": False, "first_id": "a", "last_id": "b"}).encode()
    models = adapter.parse_models(data)
    assert [m["id"] for m in models] == ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]
    assert models[0]["kind"] == "chat" and models[0]["display_name"] == "Claude Sonnet 4.5"


def test_no_embeddings(adapter):
    assert AnthropicAdapter.supports_embeddings is False
    with pytest.raises(UpstreamError) as ei:
        adapter.embeddings_request({"input": "x"}, "m")
    assert ei.value.status == 400
