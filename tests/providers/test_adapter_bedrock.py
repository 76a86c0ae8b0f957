"""Amazon Bedrock adapter: event-stream framing, Converse translation, SigV4, embeddings."""
from __future__ import annotations

import base64
import json
import re
import struct
import uuid
import zlib
from datetime import datetime, timezone

import pytest

from app.providers.base import UpstreamError
from app.providers.bedrock import (BedrockAdapter, BedrockStreamDecoder, EventStreamError,
                                   EventStreamParser,
                                   decode_event_frames, encode_event_frame, event_frame,
                                   exception_frame, finish_reason)

AKID, SECRET, TOKEN = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FQoGZXIvYXdzEXAMPLETOKEN"
CREDS = {"aws_access_key_id": AKID, "aws_secret_access_key": SECRET}


@pytest.fixture
def adapter(make_cfg):
    return BedrockAdapter(make_cfg("bedrock", "", config={"region": "us-west-2"},
                                   secrets=dict(CREDS)))


@pytest.fixture(scope="module")
def vectors(fixtures_dir):
    """The hex frames of eventstream-framing.md, keyed "1", "1b", "2", "3"."""
    text = (fixtures_dir / "bedrock/eventstream-framing.md").read_text()
    out = {}
    for m in re.finditer(r"## Example (\w+)[^\n]*\n\s+([0-9a-f]+)\n", text):
        out[m.group(1)] = bytes.fromhex(m.group(2))
    assert set(out) == {"1", "1b", "2", "3"}
    return out


# --- event-stream framing ------------------------------------------------------------------------
def test_official_vector_one_string_header(vectors):
    (frame,) = decode_event_frames(vectors["1"])
    assert frame.headers == {"content-type": "application/json"}
    assert frame.payload == b"{'foo':'bar'}"
    assert encode_event_frame({"content-type": "application/json"}, b"{'foo':'bar'}") == \
        vectors["1"]


def test_official_error_vector(vectors):
    (frame,) = decode_event_frames(vectors["1b"])
    assert frame.headers == {":message-type": "error", ":error-code": "code",
                             ":error-message": "message"}
    assert frame.payload == b""
    with pytest.raises(UpstreamError) as ei:
        BedrockStreamDecoder("m").feed(vectors["1b"])
    assert ei.value.status == 502 and ei.value.message == "message"


def test_real_bedrock_invoke_stream_frame(vectors):
    (frame,) = decode_event_frames(vectors["2"])
    assert frame.headers == {":event-type": "chunk", ":content-type": "application/json",
                             ":message-type": "event"}
    payload = json.loads(frame.payload)
    assert payload["p"] == "abcdefghijklmnopqrstuv"
    inner = json.loads(base64.b64decode(payload["bytes"]))
    assert inner["id"] == "cmpl-981f7f176ad441459b94e45ee292a321"
    assert inner["usage"]["prompt_tokens"] == 44


def test_constructed_converse_frame_roundtrips_byte_exact(vectors):
    (frame,) = decode_event_frames(vectors["3"])
    assert frame.headers[":event-type"] == "contentBlockDelta"
    assert json.loads(frame.payload)["delta"] == {"text": "Hello"}
    assert encode_event_frame(frame.headers, frame.payload) == vectors["3"]
    assert len(vectors["3"]) == 192 and struct.unpack(">I", vectors["3"][-4:])[0] == 0xF60FE6CC


@pytest.mark.parametrize("offset,what", [(5, "prelude"), (8, "prelude"), (40, "message"),
                                         (-1, "message")])
def test_crc_failures_raise(vectors, offset, what):
    data = bytearray(vectors["3"])
    data[offset] ^= 0x01
    with pytest.raises(EventStreamError) as ei:
        decode_event_frames(bytes(data))
    assert what in ei.value.message and ei.value.status == 502
    assert ei.value.error_class == "malformed_response"


def test_truncated_stream_raises_on_close(vectors):
    p = EventStreamParser()
    assert p.feed(vectors["3"][:100]) == []
    with pytest.raises(EventStreamError):
        p.close()


def test_impossible_lengths_raise():
    prelude = struct.pack(">II", 10, 0)
    with pytest.raises(EventStreamError):
        EventStreamParser().feed(prelude + struct.pack(">I", zlib.crc32(prelude)) + b"xxxx")


def test_all_header_types_roundtrip_and_split_frames():
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    ts = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=timezone.utc)
    headers = {"t": True, "f": False, "byte": (2, -5), "short": (3, 30000), "int": 123456,
               "long": 2**40, "bytes": b"\x00\x01\xff", "str": "héllo", "ts": ts, "uuid": u}
    frames = [encode_event_frame(headers, b"payload-%d" % i) for i in range(3)]
    data = b"".join(frames)
    p = EventStreamParser()
    got = []
    for i in range(len(data)):  # one byte at a time
        got += p.feed(data[i:i + 1])
    p.close()
    assert [f.payload for f in got] == [b"payload-0", b"payload-1", b"payload-2"]
    assert got[0].headers == {"t": True, "f": False, "byte": -5, "short": 30000, "int": 123456,
                              "long": 2**40, "bytes": b"\x00\x01\xff", "str": "héllo",
                              "ts": ts, "uuid": u}


# --- ConverseStream decoding (converse-stream-events.txt) ----------------------------------------
def stream_sections(fixtures_dir):
    sections: dict[str, list[bytes]] = {}
    current = None
    for line in (fixtures_dir / "bedrock/converse-stream-events.txt").read_text().splitlines():
        m = re.match(r"## (\w)\)", line)
        if m:
            current = sections.setdefault(m.group(1), [])
            continue
        m = re.match(r"(event|exception) (\w+)\s+(\{.*\})$", line)
        if m and current is not None:
            kind, name, payload = m.groups()
            current.append(event_frame(name, json.loads(payload)) if kind == "event"
                           else exception_frame(name, json.loads(payload)["message"]))
    return {k: b"".join(v) for k, v in sections.items()}


@pytest.fixture(scope="module")
def sections(fixtures_dir):
    s = stream_sections(fixtures_dir)
    assert set(s) == {"A", "B", "C"}
    return s


def test_stream_text_answer(adapter, sections, run_decoder, split_mode, assemble):
    dec = adapter.stream_decoder("pub")
    chunks = run_decoder(dec, sections["A"], split_mode)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert assemble.text(chunks) == "The most popular song on WZPZ is Elemental Hotel."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["model"] == "pub" for c in chunks) and len({c["id"] for c in chunks}) == 1
    assert dec.done and (dec.usage.prompt_tokens, dec.usage.completion_tokens) == (412, 21)


def test_stream_tool_use_answer(adapter, sections, run_decoder, split_mode, assemble):
    dec = adapter.stream_decoder("pub")
    chunks = run_decoder(dec, sections["B"], split_mode)
    assert assemble.text(chunks) == "Let me look that up."
    calls = assemble.tool_calls(chunks)
    assert calls == {0: {"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song",
                         "arguments": '{"sign": "WZPZ"}'}}
    assert dec.finish_reason == "tool_calls" and dec.usage.completion_tokens == 48


def test_stream_exception_frame(adapter, sections, run_decoder, split_mode):
    dec = adapter.stream_decoder("pub")
    with pytest.raises(UpstreamError) as ei:
        run_decoder(dec, sections["C"], split_mode)
    assert ei.value.status == 429 and ei.value.error_class == "rate_limited"
    assert ei.value.message.startswith("Too many requests")


def test_stream_exception_after_content(adapter, sections):
    dec = adapter.stream_decoder("pub")
    frames = decode_event_frames(sections["A"])
    first_two = b"".join(encode_event_frame(f.headers, f.payload) for f in frames[:2])
    assert len(dec.feed(first_two)) == 2
    with pytest.raises(UpstreamError) as ei:
        dec.feed(exception_frame("serviceUnavailableException", "try later"))
    assert ei.value.status == 503


def test_stream_without_metadata_is_done_at_close_only_after_message_stop(adapter):
    dec = adapter.stream_decoder("pub")
    dec.feed(event_frame("messageStart", {"role": "assistant"}))
    dec.feed(event_frame("messageStop", {"stopReason": "max_tokens"}))
    assert not dec.done and dec.finish_reason == "length"
    dec.close()
    assert dec.done and dec.usage is None


# --- request translation -------------------------------------------------------------------------
def test_converse_request_matches_fixture(adapter, fxjson):
    expected = fxjson("bedrock/converse-request.json")
    spec = expected["toolConfig"]["tools"][0]["toolSpec"]
    body = {"model": "pub", "messages": [
        {"role": "system", "content": "You are a radio DJ assistant. Answer briefly."},
        {"role": "user", "content": "What is the most popular song on WZPZ?"}],
        "max_tokens": 512, "temperature": 0.5, "top_p": 0.9, "stop": "END",
        "tools": [{"type": "function", "function": {"name": spec["name"],
                                                    "description": spec["description"],
                                                    "parameters": spec["inputSchema"]["json"]}}],
        "tool_choice": "auto", "response_format": {"type": "json_object"}}
    req = adapter.chat_request(body, "anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert req.url == ("https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                       "anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse")
    assert json.loads(req.body) == expected
    assert req.stream is False and req.headers["Content-Type"] == "application/json"


def test_converse_tool_result_request(adapter, fxjson):
    expected = fxjson("bedrock/converse-request-tool-result.json")
    png = expected["messages"][0]["content"][1]["image"]["source"]["bytes"]
    spec = expected["toolConfig"]["tools"][0]["toolSpec"]
    result = expected["messages"][2]["content"][0]["toolResult"]
    body = {"messages": [
        {"role": "system", "content": expected["system"][0]["text"]},
        {"role": "user", "content": [
            {"type": "text", "text": expected["messages"][0]["content"][0]["text"]},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
             "function": {"name": "top_song", "arguments": "{\"sign\": \"WZPZ\"}"}}]},
        {"role": "tool", "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
         "content": json.dumps(result["content"][0]["json"])}],
        "max_completion_tokens": 512,
        "tools": [{"type": "function", "function": {"name": spec["name"],
                                                    "description": spec["description"],
                                                    "parameters": spec["inputSchema"]["json"]}}]}
    sent = json.loads(adapter.chat_request(body, "m").body)
    # tool output travels as a text block (works for every Converse model)
    result["content"] = [{"text": json.dumps(result["content"][0]["json"])}]
    assert sent == expected


@pytest.mark.parametrize("choice,expected", [
    ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "top_song"}}, {"tool": {"name": "top_song"}}),
])
def test_tool_choice(adapter, choice, expected):
    body = {"messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
            "tools": [{"type": "function", "function": {"name": "top_song"}}]}
    assert json.loads(adapter.chat_request(body, "m").body)["toolConfig"]["toolChoice"] == expected


def test_tool_choice_none_drops_tools_unless_history_uses_them(adapter):
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = {"messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": "none"}
    assert "toolConfig" not in json.loads(adapter.chat_request(body, "m").body)
    body["messages"] += [
        {"role": "assistant", "tool_calls": [{"id": "t", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t", "content": "ok"}]
    cfg = json.loads(adapter.chat_request(body, "m").body)["toolConfig"]
    assert "toolChoice" not in cfg and cfg["tools"][0]["toolSpec"]["name"] == "f"


def test_merges_roles_and_rejects_image_urls(adapter):
    body = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                         {"role": "assistant", "content": "c "}]}
    sent = json.loads(adapter.chat_request(body, "m").body)
    assert sent["messages"] == [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
                                {"role": "assistant", "content": [{"text": "c"}]}]
    assert "inferenceConfig" not in sent and "system" not in sent
    bad = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]}
    with pytest.raises(UpstreamError) as ei:
        adapter.chat_request(bad, "m")
    assert ei.value.status == 400
    bmp = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]}
    with pytest.raises(UpstreamError):
        adapter.chat_request(bmp, "m")


def test_stream_url_and_arn_encoding(adapter):
    arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-v2:1"
    req = adapter.chat_request({"messages": [{"role": "user", "content": "x"}],
                                "stream": True}, arn)
    assert req.url == ("https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                       "arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile"
                       "%2Fus.anthropic.claude-v2%3A1/converse-stream")
    assert req.stream and req.headers["Accept"] == "application/vnd.amazon.eventstream"


def test_api_base_override(make_cfg):
    a = BedrockAdapter(make_cfg("bedrock", "http://127.0.0.1:9999/", secrets=dict(CREDS)))
    assert a.chat_request({"messages": [{"role": "user", "content": "x"}]}, "m.x:0").url == \
        "http://127.0.0.1:9999/model/m.x%3A0/converse"
    assert a.models_request().url == "http://127.0.0.1:9999/foundation-models"
    vpc = BedrockAdapter(make_cfg("bedrock", "https://bedrock-runtime.eu-west-1.amazonaws.com",
                                  config={"region": "eu-west-1"}, secrets=dict(CREDS)))
    assert vpc.models_request().url == "https://bedrock.eu-west-1.amazonaws.com/foundation-models"


# --- auth ------------------------------------------------------------------------------------------
def test_sigv4_headers(make_cfg):
    a = BedrockAdapter(make_cfg("bedrock", "", config={"region": "eu-central-1"},
                                secrets={**CREDS, "aws_session_token": TOKEN}))
    req = a.chat_request({"messages": [{"role": "user", "content": "x"}]}, "m")
    h = {k.lower(): v for k, v in req.headers.items()}
    assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=" + AKID + "/")
    assert "/eu-central-1/bedrock/aws4_request" in h["authorization"]
    assert "SignedHeaders=" in h["authorization"] and "Signature=" in h["authorization"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", h["x-amz-date"])
    assert h["x-amz-security-token"] == TOKEN
    assert SECRET not in json.dumps(h)


def test_sigv4_without_session_token_and_signature_depends_on_body(adapter):
    r1 = adapter.chat_request({"messages": [{"role": "user", "content": "x"}]}, "m")
    r2 = adapter.chat_request({"messages": [{"role": "user", "content": "y"}]}, "m")
    h1 = {k.lower(): v for k, v in r1.headers.items()}
    assert "x-amz-security-token" not in h1
    assert "/us-west-2/bedrock/aws4_request" in h1["authorization"]
    sig = lambda r: r.headers["Authorization"].rsplit("Signature=", 1)[1]  # noqa: E731
    assert sig(r1) != sig(r2)


def test_bearer_api_key_and_missing_credentials(make_cfg):
    a = BedrockAdapter(make_cfg("bedrock", "", secrets={"api_key": "ABSKbedrockkey"}))
    req = a.chat_request({"messages": [{"role": "user", "content": "x"}]}, "m")
    assert req.headers["Authorization"] == "Bearer ABSKbedrockkey"
    assert "X-Amz-Date" not in req.headers
    assert req.url.startswith("https://bedrock-runtime.us-east-1.amazonaws.com/")
    none = BedrockAdapter(make_cfg("bedrock", "", secrets={}))
    with pytest.raises(UpstreamError) as ei:
        none.chat_request({"messages": [{"role": "user", "content": "x"}]}, "m")
    assert ei.value.error_class == "upstream_auth"


# --- responses ---------------------------------------------------------------------------------
def test_parse_text_response(adapter, fx):
    obj, usage = adapter.parse_chat_response(fx("bedrock/converse-response-text.json"), "pub")
    assert obj["model"] == "pub" and obj["object"] == "chat.completion"
    assert obj["choices"][0]["message"]["content"].startswith("The most popular song")
    assert obj["choices"][0]["finish_reason"] == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (412, 21)


def test_parse_tool_use_response(adapter, fx):
    obj, usage = adapter.parse_chat_response(fx("bedrock/converse-response-tool-use.json"), "pub")
    msg = obj["choices"][0]["message"]
    assert msg["content"] is None and obj["choices"][0]["finish_reason"] == "tool_calls"
    assert msg["tool_calls"] == [{"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                                  "function": {"name": "top_song",
                                               "arguments": '{"sign":"WZPZ"}'}}]
    assert usage.estimated  # the doc example has no usage


def test_cache_usage(adapter, fxjson):
    resp = fxjson("bedrock/converse-response-text.json")
    resp["usage"].update(inputTokens=12, cacheReadInputTokens=400, cacheWriteInputTokens=3)
    _, usage = adapter.parse_chat_response(json.dumps(resp).encode(), "pub")
    assert (usage.prompt_tokens, usage.cached_tokens) == (415, 400)


@pytest.mark.parametrize("stop,expected", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
    ("malformed_tool_use", "stop"),
])
def test_stop_reasons(stop, expected):
    assert finish_reason(stop) == expected


# --- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("status,errtype,gw,cls", [
    (400, "ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/",
     400, "bad_request"),
    (403, "AccessDeniedException", 502, "upstream_auth"),
    (403, "UnrecognizedClientException", 502, "upstream_auth"),
    (404, "ResourceNotFoundException", 404, "not_found"),
    (408, "ModelTimeoutException", 504, "timeout"),
    (429, "ThrottlingException", 429, "rate_limited"),
    (424, "ModelErrorException", 502, "upstream_error"),
    (500, "InternalServerException", 502, "upstream_error"),
    (503, "ServiceUnavailableException", 503, "upstream_error"),
])
def test_error_mapping(adapter, status, errtype, gw, cls):
    e = adapter.parse_error(status, {"X-Amzn-Errortype": errtype},
                            b'{"message":"something went wrong"}')
    assert (e.status, e.error_class) == (gw, cls)
    if status not in (403,):
        assert e.message == "something went wrong"


def test_error_type_from_body_and_invalid_model(adapter):
    e = adapter.parse_error(400, {}, b'{"__type":"com.amazon#ThrottlingException",'
                                     b'"message":"Rate exceeded"}')
    assert e.status == 429
    e = adapter.parse_error(400, {"x-amzn-errortype": "ValidationException"},
                            b'{"message":"The provided model identifier is invalid."}')
    assert (e.status, e.code) == (404, "model_not_found")


# --- embeddings --------------------------------------------------------------------------------
def test_titan_single_input(adapter, fxjson):
    doc = fxjson("bedrock/invoke-titan-embed-v2.json")
    req = adapter.embeddings_request({"input": doc["g1_request"]["inputText"]},
                                     "amazon.titan-embed-text-v1")
    assert req.url == ("https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                       "amazon.titan-embed-text-v1/invoke")
    assert json.loads(req.body) == doc["g1_request"]
    assert req.headers["Authorization"].startswith("AWS4-HMAC-SHA256")
    v2 = adapter.embeddings_request({"input": [doc["request"]["inputText"]], "dimensions": 512},
                                    "amazon.titan-embed-text-v2:0")
    assert json.loads(v2.body) == {"inputText": doc["request"]["inputText"], "dimensions": 512}
    assert v2.url.endswith("/model/amazon.titan-embed-text-v2%3A0/invoke")


def test_titan_list_input_needs_one_call_per_input(adapter, fxjson):
    doc = fxjson("bedrock/invoke-titan-embed-v2.json")
    body = {"input": ["one", "two", "three"], "encoding_format": "base64"}
    reqs = adapter.embeddings_requests(body, "amazon.titan-embed-text-v2:0")
    assert [json.loads(r.body)["inputText"] for r in reqs] == ["one", "two", "three"]
    with pytest.raises(UpstreamError) as ei:
        adapter.embeddings_request(body, "amazon.titan-embed-text-v2:0")
    assert ei.value.status == 400 and "embeddings_requests" in ei.value.message
    responses = []
    for i in range(3):
        r = dict(doc["response"])
        r["embedding"] = [float(i), 0.5, -0.25]
        responses.append(json.dumps(r).encode())
    obj, usage = adapter.parse_embeddings_responses(responses, "pub", body)
    assert [d["index"] for d in obj["data"]] == [0, 1, 2]
    decoded = [struct.unpack("<3f", base64.b64decode(d["embedding"])) for d in obj["data"]]
    assert decoded == [(0.0, 0.5, -0.25), (1.0, 0.5, -0.25), (2.0, 0.5, -0.25)]
    assert usage.prompt_tokens == 27 and not usage.estimated
    single, u1 = adapter.parse_embeddings_response(json.dumps(doc["response"]).encode(), "pub",
                                                   {"input": "x"})
    assert single["data"][0]["embedding"] == doc["response"]["embedding"] and u1.prompt_tokens == 9


def test_cohere_request_batches_and_both_response_shapes(adapter, fxjson):
    doc = fxjson("bedrock/invoke-cohere-embed.json")
    body = {"input": doc["request"]["texts"]}
    req = adapter.embeddings_request(body, "cohere.embed-english-v3")
    expected = {k: v for k, v in doc["request"].items() if k != "truncate"}
    assert json.loads(req.body) == expected
    for key in ("response_unverified_floats", "response_unverified_by_type"):
        obj, usage = adapter.parse_embeddings_response(json.dumps(doc[key]).encode(), "pub", body)
        assert [d["embedding"] for d in obj["data"]] == doc["response_unverified_floats"]["embeddings"]
        assert usage.estimated and usage.prompt_tokens > 0
    many = adapter.embeddings_requests({"input": [f"t{i}" for i in range(100)],
                                        "input_type": "search_query"}, "cohere.embed-english-v3")
    assert [len(json.loads(r.body)["texts"]) for r in many] == [96, 4]
    assert json.loads(many[0].body)["input_type"] == "search_query"


def test_unsupported_embedding_model(adapter):
    with pytest.raises(UpstreamError) as ei:
        adapter.embeddings_requests({"input": "x"}, "anthropic.claude-v2")
    assert ei.value.status == 400


# --- models ------------------------------------------------------------------------------------
def test_models_request_and_parse(adapter):
    req = adapter.models_request()
    assert (req.method, req.url) == ("GET",
                                     "https://bedrock.us-west-2.amazonaws.com/foundation-models")
    assert req.headers["Authorization"].startswith("AWS4-HMAC-SHA256")
    assert "/us-west-2/bedrock/aws4_request" in req.headers["Authorization"]
    assert adapter.health_request().url == req.url
    data = json.dumps({"modelSummaries": [
        {"modelArn": "arn:...", "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
         "modelName": "Claude 3 Haiku", "providerName": "Anthropic",
         "inputModalities": ["TEXT", "IMAGE"], "outputModalities": ["TEXT"],
         "responseStreamingSupported": True},
        {"modelId": "amazon.titan-embed-text-v2:0", "outputModalities": ["EMBEDDING"],
         "inputModalities": ["TEXT"], "responseStreamingSupported": False},
        {"modelId": "stability.sd3-large-v1:0", "outputModalities": ["IMAGE"]},
    ]}).encode()
    models = adapter.parse_models(data)
    assert [(m["id"], m["kind"]) for m in models] == [
        ("anthropic.claude-3-haiku-20240307-v1:0", "chat"),
        ("amazon.titan-embed-text-v2:0", "embedding")]
    assert models[0]["streaming"] is True and models[0]["provider"] == "Anthropic"
