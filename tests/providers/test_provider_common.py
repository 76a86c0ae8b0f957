"""Shared helpers: SSE/NDJSON parsers, error mapping, scrubbing, data URIs, registry."""
from __future__ import annotations

import base64
import struct
from datetime import datetime, timedelta, timezone

import pytest

from app.providers import registry
from app.providers.base import Adapter, ProviderConfig, UpstreamError, client_wants_usage
from app.providers.common import (args_to_obj, args_to_str, b64_to_floats, error_for_status,
                                  error_from_body, floats_to_b64, parse_data_uri,
                                  retry_after_from_headers, scrub)
from app.providers.sse import NDJSONParser, SSEParser


# --- SSE -------------------------------------------------------------------------------------
def _parse_all(data: bytes, step: int | None = None):
    p = SSEParser()
    events = []
    if step is None:
        events += p.feed(data)
    else:
        for i in range(0, len(data), step):
            events += p.feed(data[i:i + step])
    events += p.close()
    return [(e.event, e.data) for e in events]


RAW = (b"event: a\ndata: {\"x\": 1}\n\n"
       b": comment\n"
       b"data: line1\r\ndata: line2\r\n\r\n"
       b"event:b\rdata:no-space\r\r"
       b"data: \xc3\xa9t\xc3\xa9\n\n")
EXPECTED = [("a", '{"x": 1}'), (None, "line1\nline2"), ("b", "no-space"), (None, "été")]


@pytest.mark.parametrize("step", [None, 1, 2, 3, 5, 7])
def test_sse_parser_is_split_safe_and_handles_all_line_endings(step):
    assert _parse_all(RAW, step) == EXPECTED


def test_sse_parser_flushes_last_event_without_blank_line_on_close():
    p = SSEParser()
    assert p.feed(b"event: message_stop\ndata: {}") == []
    evs = p.close()
    assert [(e.event, e.data) for e in evs] == [("message_stop", "{}")]


def test_sse_parser_ignores_bom_and_events_without_data():
    assert _parse_all(b"\xef\xbb\xbfevent: ping\n\ndata: x\n\n", 1) == [(None, "x")]


def test_ndjson_parser_split_safe_and_malformed_line_raises():
    p = NDJSONParser()
    data = b'{"a":1}\n\n{"b":"\xc3\xa9"}\r\n{"c":3}'
    out = []
    for i in range(len(data)):
        out += p.feed(data[i:i + 1])
    out += p.close()
    assert out == [{"a": 1}, {"b": "é"}, {"c": 3}]
    with pytest.raises(UpstreamError) as ei:
        NDJSONParser().feed(b"{not json}\n")
    assert ei.value.status == 502 and ei.value.error_class == "malformed_response"


# --- error mapping ------------------------------------------------------------------------------
@pytest.mark.parametrize("status,gw,type_,code,cls", [
    (400, 400, "invalid_request_error", None, "bad_request"),
    (401, 502, "api_error", "upstream_auth_failed", "upstream_auth"),
    (403, 502, "api_error", "upstream_auth_failed", "upstream_auth"),
    (404, 404, "invalid_request_error", "model_not_found", "not_found"),
    (408, 504, "api_error", "upstream_timeout", "timeout"),
    (422, 400, "invalid_request_error", None, "bad_request"),
    (429, 429, "rate_limit_error", "rate_limit_exceeded", "rate_limited"),
    (500, 502, "api_error", "upstream_error", "upstream_error"),
    (502, 502, "api_error", "upstream_error", "upstream_error"),
    (503, 503, "api_error", "upstream_overloaded", "upstream_error"),
    (504, 504, "api_error", "upstream_timeout", "timeout"),
    (529, 503, "api_error", "upstream_overloaded", "upstream_error"),
])
def test_error_for_status_table(status, gw, type_, code, cls):
    e = error_for_status(status, "upstream said no")
    assert (e.status, e.type, e.code, e.error_class) == (gw, type_, code, cls)
    if status not in (401, 403):
        assert e.message == "upstream said no"


def test_auth_errors_never_echo_the_upstream_message_or_key():
    body = b'{"error":{"message":"Incorrect API key provided: sk-abc123456789xyz","code":"invalid_api_key"}}'
    e = error_from_body(401, {}, body, provider="main-openai",
                        secrets={"api_key": "sk-abc123456789xyz"})
    assert e.status == 502 and e.code == "upstream_auth_failed"
    assert "sk-" not in e.message and "credentials" in e.message and "main-openai" in e.message


def test_scrub_removes_known_key_shapes_and_configured_secrets():
    text = ("keys sk-proj-AAAAAAAAAAAAAAAA sk-ant-api03-BBBBBBBB xai-CCCCCCCCCCCC "
            "gsk_DDDDDDDDDDDD AKIAABCDEFGHIJKLMNOP Bearer eyJhbGciOi.xx my-own-secret")
    out = scrub(text, {"api_key": "my-own-secret"})
    for leaked in ("AAAAAAAA", "BBBBBBBB", "CCCCCCCC", "DDDDDDDD", "AKIAABCD", "eyJhbGci",
                   "my-own-secret"):
        assert leaked not in out
    assert out.startswith("keys ")


def test_non_json_error_body_keeps_status_mapping_and_drops_html():
    e = error_from_body(429, {"Retry-After": "7"}, b"<html>Too Many</html>")
    assert e.status == 429 and e.retry_after == "7" and "<html>" not in e.message
    e = error_from_body(500, {}, b"upstream exploded")
    assert e.status == 502 and e.message == "upstream exploded"


def test_request_too_large_429_is_not_retryable():
    body = (b'{"error":{"message":"Request too large for gpt-4o in organization org-x on tokens '
            b'per min (TPM): Limit 30000, Requested 45411.","type":"tokens","param":null,'
            b'"code":"rate_limit_exceeded"}}')
    e = error_from_body(429, {}, body)
    assert e.status == 400 and e.code == "request_too_large" and e.error_class == "bad_request"


@pytest.mark.parametrize("headers,expected", [
    ({"retry-after-ms": "1500", "Retry-After": "9"}, "2"),
    ({"Retry-After": "9"}, "9"),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, "Wed, 21 Oct 2015 07:28:00 GMT"),
    ({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}, "360"),
    ({"x-ratelimit-reset-tokens": "174ms"}, "1"),
    ({}, None),
])
def test_retry_after_sources(headers, expected):
    assert retry_after_from_headers(headers) == expected


def test_retry_after_from_anthropic_reset_timestamp():
    reset = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    value = retry_after_from_headers({"anthropic-ratelimit-requests-remaining": "0",
                                      "anthropic-ratelimit-requests-reset": reset})
    assert value is not None and 28 <= int(value) <= 31


# --- misc helpers -------------------------------------------------------------------------------
def test_parse_data_uri_variants():
    assert parse_data_uri("data:image/png;base64,iVBOR\nw0K") == ("image/png", "iVBORw0K")
    assert parse_data_uri("data:text/plain,hi%20there") == (
        "text/plain", base64.b64encode(b"hi there").decode())
    assert parse_data_uri("https://example.com/a.png") is None
    assert parse_data_uri("data:nocomma") is None


def test_base64_embedding_encoding_matches_openai_fixture(fxjson):
    floats = fxjson("openai/embeddings-response-float.json")["data"][0]["embedding"]
    b64 = fxjson("openai/embeddings-response-base64.json")["data"][0]["embedding"]
    assert floats_to_b64(floats) == b64 == "ZicXO4DRGLw4BT27"
    assert b64_to_floats(b64) == pytest.approx(floats, rel=1e-6)
    assert struct.unpack("<3f", base64.b64decode(b64))[0] == pytest.approx(0.0023064255)


def test_tool_argument_helpers_are_lenient():
    assert args_to_obj('{"a": 1}') == {"a": 1}
    assert args_to_obj("") == {} and args_to_obj(None) == {}
    assert args_to_obj("[1]") == {"value": [1]}
    assert args_to_obj("{broken") == {"raw_arguments": "{broken"}
    assert args_to_str({"city": "Tokyo"}) == '{"city":"Tokyo"}'
    assert args_to_str('{"x":1}') == '{"x":1}'


def test_client_wants_usage():
    assert client_wants_usage({"stream": True, "stream_options": {"include_usage": True}})
    assert not client_wants_usage({"stream": True})
    assert not client_wants_usage({"stream": True, "stream_options": {"include_usage": False}})
    assert not client_wants_usage({"stream_options": {"include_usage": True}})


# --- registry -----------------------------------------------------------------------------------
def test_registry_covers_all_types_with_consistent_classes():
    assert set(registry.ADAPTERS) == {"openai", "openai-compatible", "azure-openai", "anthropic",
                                      "ollama", "bedrock", "xai"}
    for t, cls in registry.ADAPTERS.items():
        assert issubclass(cls, Adapter) and cls.type == t and cls.label
        assert set(cls.optional_secret_fields) <= set(cls.secret_fields)
    assert registry.PROVIDER_TYPES == [(t, c.label) for t, c in registry.ADAPTERS.items()]
    assert registry.ADAPTERS["azure-openai"].config_fields == (
        "deployment", "embeddings_deployment", "resource", "responses_api")
    assert registry.ADAPTERS["bedrock"].config_fields == ("region",)
    assert registry.ADAPTERS["bedrock"].secret_fields == (
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    assert "anthropic_version" in registry.ADAPTERS["anthropic"].config_fields
    assert registry.ADAPTERS["openai"].secret_fields == ("api_key",)
    assert "api_key" in registry.ADAPTERS["ollama"].optional_secret_fields


def test_presets_are_openai_compatible_with_real_bases():
    expected = {"xai", "groq", "mistral", "deepseek", "openrouter", "together", "vllm",
                "lmstudio", "llamacpp", "ollama-openai"}
    assert set(registry.PRESETS) == expected
    for name, p in registry.PRESETS.items():
        assert p["type"] == "openai-compatible" and p["label"]
        assert p["api_base"].startswith(("https://", "http://localhost:"))
        assert not p["api_base"].endswith("/")
    assert registry.PRESETS["xai"]["api_base"] == "https://api.x.ai/v1"
    assert registry.PRESETS["groq"]["api_base"] == "https://api.groq.com/openai/v1"
    assert registry.PRESETS["openrouter"]["api_base"] == "https://openrouter.ai/api/v1"
    assert registry.PRESETS["ollama-openai"]["api_base"] == "http://localhost:11434/v1"


def test_get_adapter_known_unknown_and_preset():
    a = registry.get_adapter(ProviderConfig(1, "p", "anthropic", ""))
    assert type(a).__name__ == "AnthropicAdapter" and a.provider.name == "p"
    with pytest.raises(KeyError) as ei:
        registry.get_adapter(ProviderConfig(1, "p", "gemini-native", ""))
    assert "gemini-native" in str(ei.value) and "openai" in str(ei.value)
    with pytest.raises(ValueError):
        registry.get_adapter(ProviderConfig(1, "p", "nope", ""))
    groq = registry.get_adapter(ProviderConfig(1, "g", "groq", "", secrets={"api_key": "k"}))
    req = groq.chat_request({"messages": [{"role": "user", "content": "hi"}]}, "llama-3.3")
    assert req.url == "https://api.groq.com/openai/v1/chat/completions"


def test_client_side_failure_helpers():
    from app.providers.common import connection_error, timeout_error
    t = timeout_error("azure-east")
    assert (t.status, t.code, t.error_class) == (504, "upstream_timeout", "timeout")
    assert "azure-east" in t.message
    c = connection_error()
    assert (c.status, c.error_class) == (502, "upstream_error")
    assert c.to_openai()["error"]["type"] == "api_error"
