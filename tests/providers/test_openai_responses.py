"""The Responses API decoder and request building (app.providers.openai_responses) on wire bytes."""
from __future__ import annotations

import json

import pytest

from app.providers.base import ProviderConfig, UpstreamError
from app.providers.openai import OpenAIAdapter, OpenAICompatibleAdapter, XAIAdapter
from app.providers.azure import AzureOpenAIAdapter
from tests.proxy.test_responses_native import upstream_events, upstream_response


def adapter(cls=OpenAIAdapter, **kw):
    return cls(ProviderConfig(id=1, name="p", type=cls.type, api_base=kw.pop("api_base", "http://u.test/v1"),
                              secrets={"api_key": "sk-x"}, **kw))


def decode(data: bytes, size: int):
    dec = adapter().native_stream_decoder("responses", "public")
    out = []
    for i in range(0, len(data), size):
        out += dec.feed(data[i:i + size])
    out += dec.close()
    return dec, b"".join(out)


@pytest.mark.parametrize("size", [1, 7, 100000])
def test_decoder_is_split_independent_and_rewrites_only_the_model(size):
    wire = upstream_events(("Hel", "lo")).encode()
    dec, out = decode(wire, size)
    assert dec.done and dec.failed is None and dec.chars == 5
    assert (dec.usage.prompt_tokens, dec.usage.completion_tokens, dec.usage.cached_tokens) == (21, 7, 4)
    sent = [json.loads(b.split(b"\ndata: ", 1)[1]) for b in out.strip().split(b"\n\n")]
    got = [json.loads(b.split("\ndata: ", 1)[1]) for b in wire.decode().strip().split("\n\n")]
    assert len(sent) == len(got)
    for a, b in zip(sent, got):
        if "response" in b:
            assert a["response"]["model"] == "public" and b["response"]["model"] != "public"
            a["response"]["model"] = b["response"]["model"]
        assert a == b  # nothing else changed
    assert dec.final["status"] == "completed" and dec.final["model"] == "public"


def test_failure_events_mark_the_decoder_failed_and_done():
    dec, out = decode(upstream_events(("x",), end="failed").encode(), 50)
    assert dec.done and isinstance(dec.failed, UpstreamError) and dec.failed.status == 502
    assert out.count(b"event: error\n") == 1 and out.endswith(b"\n\n")


def test_error_event_continues_the_sequence():
    dec, _ = decode(upstream_events(("x",)).encode().split(b"event: response.output_text.done")[0], 9)
    assert not dec.done
    ev = json.loads(dec.error_event(UpstreamError(502, "cut", code="stream_truncated")).split(b"data: ")[1])
    assert ev == {"type": "error", "sequence_number": dec.seq, "code": "stream_truncated", "message": "cut", "param": None}
    assert ev["sequence_number"] == 5  # created, in_progress, item added, part added, delta, then this


def test_malformed_event_raises():
    dec = adapter().native_stream_decoder("responses", "m")
    with pytest.raises(UpstreamError) as e:
        dec.feed(b"event: response.created\ndata: {not json\n\n")
    assert e.value.error_class == "malformed_response"


def test_json_parse_estimates_output_when_usage_missing():
    body = dict(upstream_response("x" * 40), usage=None)
    obj, usage = adapter().parse_native_response("responses", json.dumps(body).encode(), "pub")
    assert obj["model"] == "pub" and usage.estimated and usage.completion_tokens == 10


def test_request_defaults_and_switches():
    a = adapter(default_max_tokens=77, default_temperature=0.3)
    req = a.native_request("responses", {"model": "pub", "input": "hi", "store": True,
                                         "previous_response_id": "resp_1", "stream": True}, "gpt-4.1")
    body = json.loads(req.body)
    assert req.url == "http://u.test/v1/responses" and req.stream and req.dialect == "responses"
    assert body == {"model": "gpt-4.1", "input": "hi", "store": False, "stream": True,
                    "max_output_tokens": 77, "temperature": 0.3}
    assert a.native("responses") and not a.native("messages")
    assert not adapter(config={"responses_api": "off"}).native("responses")
    assert not adapter(OpenAICompatibleAdapter).native("responses")
    assert adapter(OpenAICompatibleAdapter, config={"responses_api": True}).native("responses")
    assert adapter(XAIAdapter).native("responses")


@pytest.mark.parametrize("base,url", [
    ("https://r.openai.azure.com", "https://r.openai.azure.com/openai/v1/responses"),
    ("https://r.openai.azure.com/openai", "https://r.openai.azure.com/openai/v1/responses"),
    ("https://r.openai.azure.com/openai/v1", "https://r.openai.azure.com/openai/v1/responses"),
])
def test_azure_uses_the_v1_surface(base, url):
    req = adapter(AzureOpenAIAdapter, api_base=base).native_request("responses", {"input": "x"}, "dep-1")
    assert req.url == url and json.loads(req.body)["model"] == "dep-1" and req.headers["api-key"] == "sk-x"
