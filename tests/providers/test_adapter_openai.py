"""OpenAI + OpenAI-compatible adapters, on the openai/ fixtures."""
from __future__ import annotations

import json

import pytest

from app.providers.base import UpstreamError
from app.providers.openai import OpenAIAdapter, OpenAICompatibleAdapter, XAIAdapter

KEY = "sk-test-secret-key-123456"


@pytest.fixture
def adapter(make_cfg):
    return OpenAIAdapter(make_cfg("openai", "https://api.openai.com/v1/",
                                  config={"organization": "org-1"}))


# --- requests ----------------------------------------------------------------------------------
def test_chat_request_passes_body_through_and_replaces_model(adapter, fxjson):
    body = fxjson("openai/chat-request-full.json")
    body["some_future_field"] = {"keep": True}
    original = json.loads(json.dumps(body))
    req = adapter.chat_request(body, "gpt-4o-2024-08-06-upstream")
    assert req.method == "POST"
    assert req.url == "https://api.openai.com/v1/chat/completions"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Accept"] == "text/event-stream"
    assert req.headers["OpenAI-Organization"] == "org-1"
    assert req.stream is True
    sent = json.loads(req.body)
    assert sent["model"] == "gpt-4o-2024-08-06-upstream"
    expected = dict(original, model="gpt-4o-2024-08-06-upstream")
    assert sent == expected  # everything else untouched, incl. unknown fields
    assert body == original  # the client's dict was not mutated


def test_stream_always_requests_usage_and_keeps_other_stream_options(adapter):
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_obfuscation": False}}
    sent = json.loads(adapter.chat_request(body, "gpt-4o").body)
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert "stream_options" not in body or body["stream_options"] == {"include_obfuscation": False}
    sent = json.loads(adapter.chat_request({"messages": [], "stream": True}, "m").body)
    assert sent["stream_options"] == {"include_usage": True}


def test_non_stream_request_drops_stream_options_and_accepts_json(adapter, fxjson):
    body = fxjson("openai/chat-request-tools.json")
    body["stream_options"] = {"include_usage": True}
    req = adapter.chat_request(body, "gpt-5.4")
    sent = json.loads(req.body)
    assert "stream_options" not in sent and req.stream is False
    assert req.headers["Accept"] == "application/json"
    assert sent["tools"] == body["tools"] and sent["tool_choice"] == "auto"


def test_provider_defaults_fill_only_missing_fields(make_cfg):
    cfg = make_cfg("openai", "https://api.openai.com/v1", default_temperature=0.3,
                   default_max_tokens=123)
    sent = json.loads(OpenAIAdapter(cfg).chat_request(
        {"messages": [{"role": "user", "content": "x"}]}, "m").body)
    assert sent["temperature"] == 0.3 and sent["max_completion_tokens"] == 123
    sent = json.loads(OpenAIAdapter(cfg).chat_request(
        {"messages": [], "temperature": 0, "max_tokens": 5}, "m").body)
    assert sent["temperature"] == 0 and sent["max_tokens"] == 5
    assert "max_completion_tokens" not in sent
    compat = OpenAICompatibleAdapter(make_cfg("openai-compatible", "http://localhost:8000/v1",
                                              default_max_tokens=50))
    assert json.loads(compat.chat_request({"messages": []}, "m").body)["max_tokens"] == 50


def test_compat_without_key_sends_no_authorization(make_cfg):
    a = OpenAICompatibleAdapter(make_cfg("openai-compatible", "http://localhost:1234/v1",
                                         secrets={}))
    req = a.chat_request({"messages": []}, "local-model")
    assert req.url == "http://localhost:1234/v1/chat/completions"
    assert "Authorization" not in req.headers


def test_compat_can_disable_stream_options(make_cfg):
    a = OpenAICompatibleAdapter(make_cfg("openai-compatible", "http://x/v1",
                                         config={"stream_include_usage": False}))
    assert "stream_options" not in json.loads(a.chat_request({"stream": True}, "m").body)


def test_xai_grok4_strips_rejected_params_other_models_keep_them(make_cfg):
    a = XAIAdapter(make_cfg("xai"))
    body = {"messages": [], "presence_penalty": 1, "frequency_penalty": 1, "stop": ["x"],
            "temperature": 0.5}
    req = a.chat_request(body, "grok-4-0709")
    assert req.url == "https://api.x.ai/v1/chat/completions"
    sent = json.loads(req.body)
    assert not {"presence_penalty", "frequency_penalty", "stop"} & set(sent)
    assert sent["temperature"] == 0.5
    kept = json.loads(a.chat_request(body, "grok-3").body)
    assert kept["stop"] == ["x"] and kept["presence_penalty"] == 1
    assert XAIAdapter.supports_embeddings is False


# --- responses ---------------------------------------------------------------------------------
def test_parse_chat_response_rewrites_model_and_reads_usage(adapter, fx):
    obj, usage = adapter.parse_chat_response(fx("openai/chat-response-text.json"), "my-gpt")
    assert obj["model"] == "my-gpt"
    assert obj["choices"][0]["message"]["content"] == "Hello! How can I assist you today?"
    assert obj["service_tier"] == "default"  # extra fields kept
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (19, 10, 0)
    assert usage.estimated is False


def test_parse_chat_response_tool_calls(adapter, fx):
    obj, usage = adapter.parse_chat_response(fx("openai/chat-response-tool-calls.json"), "m")
    ch = obj["choices"][0]
    assert ch["finish_reason"] == "tool_calls"
    assert ch["message"]["tool_calls"][0]["function"]["name"] == "get_current_weather"
    assert usage.total_tokens == 99


def test_parse_chat_response_without_usage_is_marked_estimated(adapter):
    obj, usage = adapter.parse_chat_response(
        b'{"id":"x","object":"chat.completion","choices":[]}', "m")
    assert usage.estimated is True and usage.total_tokens == 0


@pytest.mark.parametrize("data", [b"not json", b"[1,2]", b'{"id":"x"}'])
def test_parse_chat_response_malformed(adapter, data):
    with pytest.raises(UpstreamError) as ei:
        adapter.parse_chat_response(data, "m")
    assert ei.value.status == 502 and ei.value.error_class == "malformed_response"


# --- streaming ---------------------------------------------------------------------------------
def test_stream_text(adapter, fx, run_decoder, split_mode, assemble):
    dec = adapter.stream_decoder("pub-model")
    chunks = run_decoder(dec, fx("openai/chat-stream-text.sse"), split_mode)
    assert all(c["model"] == "pub-model" for c in chunks)
    assert all(c["choices"] for c in chunks)  # the usage chunk (choices: []) is not returned
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = assemble.text(chunks)
    assert text.startswith("I'm unable to provide real") and text.endswith("weather app.")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert dec.finish_reason == "stop" and dec.done
    assert (dec.usage.prompt_tokens, dec.usage.completion_tokens) == (14, 30)
    assert all("usage" not in c for c in chunks)


def test_stream_single_tool_call(adapter, fx, run_decoder, split_mode, assemble):
    dec = adapter.stream_decoder("m")
    chunks = run_decoder(dec, fx("openai/chat-stream-tool-call.sse"), split_mode)
    calls = assemble.tool_calls(chunks)
    assert calls == {0: {"id": "call_4XzlGBLtUe9dy3GVNV4jhq7h", "name": "get_weather",
                         "arguments": '{"city":"New York City"}'}}
    assert dec.finish_reason == "tool_calls" and dec.usage.total_tokens == 60


def test_stream_parallel_tool_calls(adapter, fx, run_decoder, split_mode, assemble):
    dec = adapter.stream_decoder("m")
    chunks = run_decoder(dec, fx("openai/chat-stream-parallel-tool-calls.sse"), split_mode)
    calls = assemble.tool_calls(chunks)
    assert [c["name"] for c in calls.values()] == ["GetWeatherArgs", "get_stock_price"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Edinburgh", "country": "GB",
                                                 "units": "c"}
    assert json.loads(calls[1]["arguments"]) == {"ticker": "AAPL", "exchange": "NASDAQ"}
    assert dec.usage.prompt_tokens == 149 and dec.usage.completion_tokens == 60


def test_stream_ignores_data_after_done(adapter):
    dec = adapter.stream_decoder("m")
    chunks = dec.feed(b'data: [DONE]\n\ndata: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n')
    assert chunks == [] and dec.done


def test_stream_error_payload_raises_mapped_error(adapter):
    dec = adapter.stream_decoder("m")
    good = dec.feed(b'data: {"id":"1","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
    assert good[0]["choices"][0]["delta"]["content"] == "hi"
    with pytest.raises(UpstreamError) as ei:
        dec.feed(b'data: {"error":{"message":"Rate limit reached","type":"tokens",'
                 b'"code":"rate_limit_exceeded"}}\n\n')
    assert ei.value.status == 429 and ei.value.error_class == "rate_limited"
    dec = adapter.stream_decoder("m")
    with pytest.raises(UpstreamError) as ei:
        dec.feed(b'data: {"error":{"message":"The server had an error","type":"server_error"}}\n\n')
    assert ei.value.status == 502 and ei.value.message == "The server had an error"


def test_stream_usage_attached_to_a_content_chunk_is_taken_and_removed(adapter):
    dec = adapter.stream_decoder("m")
    chunks = dec.feed(b'data: {"id":"1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
                      b'"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n')
    assert len(chunks) == 1 and "usage" not in chunks[0]
    assert dec.usage.total_tokens == 7 and dec.finish_reason == "stop"


def test_stream_tolerates_missing_blank_lines_between_events(adapter):
    dec = adapter.stream_decoder("m")
    data = (b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n'
            b'data: {"choices":[{"index":0,"delta":{"content":"b"}}]}\n\n')
    assert [c["choices"][0]["delta"]["content"] for c in dec.feed(data)] == ["a", "b"]


def test_stream_malformed_event_raises(adapter):
    with pytest.raises(UpstreamError) as ei:
        adapter.stream_decoder("m").feed(b"data: {oops\n\n")
    assert ei.value.error_class == "malformed_response"


def test_stream_without_done_is_not_done(adapter, fx, run_decoder):
    data = fx("openai/chat-stream-text.sse")
    cut = data[: data.index(b'"finish_reason":"stop"')]
    dec = adapter.stream_decoder("m")
    run_decoder(dec, cut[: cut.rindex(b"\n\n") + 2])
    assert not dec.done and dec.usage is None and dec.finish_reason is None


# --- embeddings --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_embeddings_pass_through(adapter, fxjson, fx, fmt):
    body = fxjson(f"openai/embeddings-request-{fmt}.json")
    body["dimensions"] = 3
    req = adapter.embeddings_request(body, "text-embedding-ada-002-up")
    assert req.url == "https://api.openai.com/v1/embeddings" and req.method == "POST"
    sent = json.loads(req.body)
    assert sent == dict(body, model="text-embedding-ada-002-up")
    obj, usage = adapter.parse_embeddings_response(
        fx(f"openai/embeddings-response-{fmt}.json"), "pub-embed", body)
    assert obj["model"] == "pub-embed" and usage.prompt_tokens == 8
    expected = fxjson(f"openai/embeddings-response-{fmt}.json")["data"][0]["embedding"]
    assert obj["data"][0]["embedding"] == expected
    assert adapter.embeddings_requests(body, "x")[0].url == req.url
    obj2, _ = adapter.parse_embeddings_responses(
        [fx(f"openai/embeddings-response-{fmt}.json")], "pub-embed", body)
    assert obj2 == obj


# --- errors ------------------------------------------------------------------------------------
def test_errors_from_fixture(adapter, fxjson):
    errors = fxjson("openai/errors.json")
    e400 = adapter.parse_error(400, {}, json.dumps(errors["400_tool_message_without_tool_calls"]
                                                   ["body"]).encode())
    assert (e400.status, e400.type, e400.error_class) == (400, "invalid_request_error",
                                                          "bad_request")
    assert e400.param == "messages.[3].role" and "role 'tool'" in e400.message

    e401 = adapter.parse_error(401, {}, json.dumps(errors["401_invalid_api_key"]["body"]).encode())
    assert (e401.status, e401.type, e401.code, e401.error_class) == (
        502, "api_error", "upstream_auth_failed", "upstream_auth")
    assert "kk" not in e401.message

    e404 = adapter.parse_error(404, {}, json.dumps(errors["404_model_not_found"]["body"]).encode())
    assert (e404.status, e404.code, e404.error_class) == (404, "model_not_found", "not_found")
    assert "does not exist" in e404.message

    headers = dict(errors["response_headers"]["documented_rate_limit_headers"])
    headers["retry-after-ms"] = "6"
    e429 = adapter.parse_error(429, headers,
                               json.dumps(errors["429_rate_limit_tokens"]["body"]).encode())
    assert (e429.status, e429.type, e429.error_class) == (429, "rate_limit_error", "rate_limited")
    assert e429.retry_after == "1" and e429.code == "rate_limit_exceeded"
    assert "org-OASFC7k1Ff5IzueeLArhQtnT" in e429.message  # non-secret text passes through


@pytest.mark.parametrize("status,gw,cls", [(408, 504, "timeout"), (500, 502, "upstream_error"),
                                           (503, 503, "upstream_error"), (403, 502, "upstream_auth")])
def test_other_statuses(adapter, status, gw, cls):
    e = adapter.parse_error(status, {}, b'{"error":{"message":"x","type":"server_error"}}')
    assert (e.status, e.error_class) == (gw, cls)


def test_error_messages_are_scrubbed(adapter):
    e = adapter.parse_error(400, {}, json.dumps(
        {"error": {"message": f"bad key {KEY} and sk-other-1234567890"}}).encode())
    assert KEY not in e.message and "sk-other" not in e.message


# --- models ------------------------------------------------------------------------------------
def test_models_request_and_parse(adapter, fx):
    req = adapter.models_request()
    assert (req.method, req.url) == ("GET", "https://api.openai.com/v1/models")
    assert req.headers["Authorization"] == f"Bearer {KEY}" and req.body is None
    assert adapter.health_request().url == req.url
    models = adapter.parse_models(fx("openai/models-list.json"))
    assert [m["id"] for m in models] == ["model-id-0", "model-id-1", "model-id-2"]
    assert all(m["kind"] == "chat" for m in models)
    assert adapter.parse_models(b'{"data":[{"id":"text-embedding-3-small"}]}')[0]["kind"] == \
        "embedding"
