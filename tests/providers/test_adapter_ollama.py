"""Ollama adapter (native /api and the /v1 OpenAI layer), on the ollama/ fixtures."""
from __future__ import annotations

import base64
import json
import struct

import pytest

from app.providers.base import UpstreamError
from app.providers.ollama import OllamaAdapter
from app.providers.openai import OpenAIStreamDecoder


@pytest.fixture
def native(make_cfg):
    return OllamaAdapter(make_cfg("ollama", "http://localhost:11434/", secrets={}))


@pytest.fixture
def compat(make_cfg):
    return OllamaAdapter(make_cfg("ollama", "http://gpu-box:11434/v1", secrets={}))


def sent_body(req):
    return json.loads(req.body)


# --- requests ----------------------------------------------------------------------------------
def test_stream_flag_is_always_explicit(native, fxjson):
    doc = fxjson("ollama/chat-request-stream.json")  # streams by default when omitted
    req = native.chat_request({"messages": doc["messages"]}, "llama3.2")
    assert req.url == "http://localhost:11434/api/chat" and req.method == "POST"
    assert sent_body(req) == {**doc, "stream": False}
    assert req.stream is False and "Authorization" not in req.headers
    req = native.chat_request({"messages": doc["messages"], "stream": True}, "llama3.2")
    assert sent_body(req)["stream"] is True and req.stream is True
    assert req.headers["Accept"] == "application/x-ndjson"


def test_options_mapping(native, fxjson):
    doc = fxjson("ollama/chat-request-options.json")
    body = {"messages": doc["messages"], "temperature": 0.8, "top_p": 0.9, "seed": 42,
            "max_tokens": 100, "stop": ["\n", "user:"], "presence_penalty": 1.5,
            "frequency_penalty": 1.0, "response_format": {"type": "json_object"},
            "keep_alive": "5m"}
    sent = sent_body(native.chat_request(body, "llama3.2"))
    assert sent["format"] == "json" and sent["keep_alive"] == "5m" and sent["stream"] is False
    assert sent["messages"] == doc["messages"]
    for key in ("temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty"):
        assert sent["options"][key] == doc["options"][key], key
    assert sent["options"]["num_predict"] == doc["options"]["num_predict"]
    assert "max_tokens" not in sent and "temperature" not in sent


def test_json_schema_format_and_provider_defaults(make_cfg):
    a = OllamaAdapter(make_cfg("ollama", "", default_temperature=0.1, default_max_tokens=64,
                               config={"keep_alive": "1h"}))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = a.chat_request({"messages": [{"role": "user", "content": "x"}],
                          "response_format": {"type": "json_schema",
                                              "json_schema": {"name": "n", "schema": schema}},
                          "max_completion_tokens": 9}, "m")
    sent = sent_body(req)
    assert req.url == "http://localhost:11434/api/chat"
    assert req.headers["Authorization"].startswith("Bearer ")  # cloud/proxy key is sent
    assert sent["format"] == schema and sent["keep_alive"] == "1h"
    assert sent["options"] == {"temperature": 0.1, "num_predict": 9}


def test_tools_request(native, fxjson):
    doc = fxjson("ollama/chat-request-tools.json")
    body = {"messages": doc["messages"], "tools": doc["tools"], "tool_choice": "auto",
            "stream": True}
    assert sent_body(native.chat_request(body, "llama3.2")) == doc
    body["tool_choice"] = "none"
    assert "tools" not in sent_body(native.chat_request(body, "llama3.2"))


def test_history_with_tool_calls_and_tool_message(native, fxjson):
    doc = fxjson("ollama/chat-request-history-tools.json")
    body = {"messages": [
        {"role": "user", "content": "what is the weather in Toronto?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Toronto\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "11 degrees celsius"},
    ], "tools": doc["tools"], "stream": False}
    assert sent_body(native.chat_request(body, "llama3.2")) == doc


def test_images_from_data_uri_are_bare_base64(native, fxjson):
    doc = fxjson("ollama/chat-request-images.json")
    b64 = doc["messages"][0]["images"][0]
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}}]}]}
    sent = sent_body(native.chat_request(body, "llava"))
    assert sent["messages"] == doc["messages"]


def test_image_urls_are_rejected(native):
    body = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}
    with pytest.raises(UpstreamError) as ei:
        native.chat_request(body, "llava")
    assert ei.value.status == 400 and ei.value.param == "messages[0].content[0]"


# --- responses ---------------------------------------------------------------------------------
def test_parse_tool_call_response(native, fx):
    obj, usage = native.parse_chat_response(fx("ollama/chat-response-tools.json"), "pub")
    ch = obj["choices"][0]
    assert obj["model"] == "pub" and obj["object"] == "chat.completion"
    assert ch["finish_reason"] == "tool_calls"  # done_reason stays "stop" upstream
    assert ch["message"]["content"] is None
    tc = ch["message"]["tool_calls"][0]
    assert tc["id"].startswith("call_") and len(tc["id"]) > 10 and tc["type"] == "function"
    assert tc["function"]["name"] == "get_weather"
    assert json.loads(tc["function"]["arguments"]) == {"city": "Tokyo"}
    assert "index" not in tc
    assert (usage.prompt_tokens, usage.completion_tokens) == (169, 18)


@pytest.mark.parametrize("name,content,pt,ct", [
    ("ollama/chat-response-after-tool.json", "The current temperature in Toronto is 11°C.", 94, 11),
    ("ollama/chat-response-images.json", None, 26, 83),
])
def test_parse_text_responses(native, fx, name, content, pt, ct):
    obj, usage = native.parse_chat_response(fx(name), "pub")
    msg = obj["choices"][0]["message"]
    if content:
        assert msg["content"] == content
    else:
        assert msg["content"].startswith(" The image features")
    assert obj["choices"][0]["finish_reason"] == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (pt, ct)
    assert obj["usage"]["total_tokens"] == pt + ct


@pytest.mark.parametrize("reason,expected", [("length", "length"), ("load", "stop"),
                                             ("unload", "stop"), (None, "stop")])
def test_done_reason_mapping(native, fxjson, reason, expected):
    resp = fxjson("ollama/chat-response-after-tool.json")
    resp["done_reason"] = reason
    obj, _ = native.parse_chat_response(json.dumps(resp).encode(), "pub")
    assert obj["choices"][0]["finish_reason"] == expected


# --- streaming ---------------------------------------------------------------------------------
def test_stream_text(native, fx, run_decoder, split_mode, assemble):
    dec = native.stream_decoder("pub")
    chunks = run_decoder(dec, fx("ollama/chat-stream.ndjson"), split_mode)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "The"}
    assert assemble.text(chunks) == "The"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["model"] == "pub" for c in chunks) and len({c["id"] for c in chunks}) == 1
    assert dec.done and (dec.usage.prompt_tokens, dec.usage.completion_tokens) == (26, 282)


def test_stream_tools(native, fx, run_decoder, split_mode, assemble):
    dec = native.stream_decoder("pub")
    chunks = run_decoder(dec, fx("ollama/chat-stream-tools.ndjson"), split_mode)
    calls = assemble.tool_calls(chunks)
    assert list(calls) == [0] and calls[0]["name"] == "get_weather"
    assert calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {"city": "Tokyo"}
    assert dec.finish_reason == "tool_calls" and chunks[-1]["choices"][0]["finish_reason"] == \
        "tool_calls"
    assert dec.usage.prompt_tokens == 169 and dec.usage.completion_tokens == 15


def test_stream_generate_lines_and_content_on_done_line(native, fx, run_decoder, assemble):
    dec = native.stream_decoder("pub")
    chunks = run_decoder(dec, fx("ollama/generate-stream-doc.ndjson"), 5)
    assert assemble.text(chunks) == "That's a fantastic question!"
    assert dec.done and dec.finish_reason == "stop"


def test_stream_error_line_raises_after_content(native, fx):
    dec = native.stream_decoder("pub")
    data = fx("ollama/stream-error.ndjson")
    cut = data.index(b'{"error"')
    got = dec.feed(data[:cut])
    assert len(got) == 4
    with pytest.raises(UpstreamError) as ei:
        dec.feed(data[cut:])
    assert ei.value.status == 502 and "error was encountered" in ei.value.message
    assert not dec.done


# --- embeddings --------------------------------------------------------------------------------
def test_embed_single_and_multi(native, fxjson, fx):
    for req_name in ("embed-request", "embed-request-multi"):
        doc = fxjson(f"ollama/{req_name}.json")
        req = native.embeddings_request({"input": doc["input"], "model": "pub"}, "all-minilm")
        assert req.url == "http://localhost:11434/api/embed"
        assert sent_body(req) == doc
    body = {"input": ["a", "b"], "encoding_format": "float"}
    obj, usage = native.parse_embeddings_response(fx("ollama/embed-response-multi.json"), "pub",
                                                  body)
    vectors = fxjson("ollama/embed-response-multi.json")["embeddings"]
    assert obj["object"] == "list" and obj["model"] == "pub"
    assert [d["index"] for d in obj["data"]] == [0, 1]
    assert [d["embedding"] for d in obj["data"]] == vectors
    assert usage.estimated is True  # multi response carries no prompt_eval_count
    obj, usage = native.parse_embeddings_response(fx("ollama/embed-response.json"), "pub",
                                                  {"input": "x"})
    assert usage.prompt_tokens == 8 and obj["usage"] == {"prompt_tokens": 8, "total_tokens": 8}


def test_embed_base64_and_dimensions(native, fx, fxjson):
    vec = fxjson("ollama/embed-response.json")["embeddings"][0]
    body = {"input": "x", "encoding_format": "base64", "dimensions": 4}
    assert sent_body(native.embeddings_request(body, "m"))["dimensions"] == 4
    obj, _ = native.parse_embeddings_response(fx("ollama/embed-response.json"), "pub", body)
    raw = base64.b64decode(obj["data"][0]["embedding"])
    assert len(raw) == 16  # truncated to 4 float32s
    assert list(struct.unpack("<4f", raw)) == pytest.approx(vec[:4], rel=1e-6)


def test_embed_rejects_token_arrays(native):
    with pytest.raises(UpstreamError) as ei:
        native.embeddings_request({"input": [[1, 2, 3]]}, "m")
    assert ei.value.status == 400


# --- errors / models ---------------------------------------------------------------------------
@pytest.mark.parametrize("status,gw,cls", [(400, 400, "bad_request"), (404, 404, "not_found"),
                                           (429, 429, "rate_limited"), (500, 502, "upstream_error"),
                                           (401, 502, "upstream_auth")])
def test_errors(native, status, gw, cls):
    e = native.parse_error(status, {}, b'{"error":"model \\"nope\\" not found, try pulling it first"}')
    assert (e.status, e.error_class) == (gw, cls)
    if status in (400, 404, 429, 500):
        assert "try pulling it first" in e.message


def test_models_and_health(native, compat, fx):
    req = native.models_request()
    assert (req.method, req.url) == ("GET", "http://localhost:11434/api/tags")
    assert native.health_request().url == req.url
    assert compat.models_request().url == "http://gpu-box:11434/api/tags"
    models = native.parse_models(fx("ollama/tags-response.json"))
    assert models == [{"id": "deepseek-r1:latest", "kind": "chat", "parameter_size": "7.6B"},
                      {"id": "llama3.2:latest", "kind": "chat", "parameter_size": "3.2B"}]
    emb = native.parse_models(json.dumps({"models": [
        {"name": "all-minilm:latest", "details": {"family": "bert"}},
        {"name": "nomic-embed-text:latest", "details": {"family": "nomic-bert"}}]}).encode())
    assert [m["kind"] for m in emb] == ["embedding", "embedding"]


# --- /v1 mode = OpenAI adapter -------------------------------------------------------------------
def test_v1_base_behaves_like_openai(compat, make_cfg):
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True, "tool_choice": "auto"}
    req = compat.chat_request(body, "llama3.2")
    assert req.url == "http://gpu-box:11434/v1/chat/completions"
    sent = sent_body(req)
    assert sent["model"] == "llama3.2" and sent["stream_options"] == {"include_usage": True}
    assert "options" not in sent and sent["messages"] == body["messages"]
    assert isinstance(compat.stream_decoder("pub"), OpenAIStreamDecoder)
    emb = compat.embeddings_request({"input": "x", "encoding_format": "base64"}, "all-minilm")
    assert emb.url == "http://gpu-box:11434/v1/embeddings"
    assert sent_body(emb)["encoding_format"] == "base64"
    obj, usage = compat.parse_chat_response(
        b'{"id":"c","object":"chat.completion","model":"llama3.2","system_fingerprint":"fp_ollama",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"hey"},'
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,'
        b'"total_tokens":4}}', "pub")
    assert obj["model"] == "pub" and usage.total_tokens == 4
    trailing = OllamaAdapter(make_cfg("ollama", "http://h:11434/v1/", secrets={}))
    assert trailing.chat_request(body, "m").url == "http://h:11434/v1/chat/completions"
