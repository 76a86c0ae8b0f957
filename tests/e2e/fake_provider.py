#!/usr/bin/env python3
"""A fake upstream PROCESS that speaks five providers' real wire formats, for the e2e suite.

Run: ``python tests/e2e/fake_provider.py --port 18080``. Standard library only, except that the
Bedrock frames are encoded with ``app.providers.bedrock.encode_event_frame`` (checked at start-up
against botocore's official test vector from bedrock/eventstream-framing.md).

Bodies and stream transcripts are replayed from /work/shared/provider-fixtures, rewriting only
what a request needs (usage chunk only when asked for, Azure's filter chunks around OpenAI's
recorded chunks, ``drip`` chunks built from a fixture chunk's envelope).

Endpoints
  OpenAI       POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models  (Bearer key)
  Azure        POST /openai/deployments/<dep>/{chat/completions,embeddings}?api-version=...  (api-key)
  Anthropic    POST /v1/messages  (x-api-key + anthropic-version; max_tokens required)
  Ollama       POST /api/chat (NDJSON stream by default), POST /api/embed, GET /api/tags
  Bedrock      POST /model/<id>/{converse,converse-stream,invoke}  (SigV4 Authorization header)
  test hooks   GET /_stats (counters, JSON), POST /_reset

Behaviour by model name (body ``model``, Azure deployment, Bedrock model id):
  err-401 / err-404 / err-429 (Retry-After: 2) / err-500   each provider's own error wire shape
  slow        sleeps SLOW_SECONDS before answering (longer than the gateway's read timeout)
  drip        a stream of one chunk every 100 ms for 60 s; ``drip-N``: N chunks, 100 ms apart
  err-midstream  (streams) a few content chunks, then the provider's in-band error after HTTP 200:
              OpenAI/Azure ``data: {"error":...}``, Anthropic ``event: error`` (overloaded_error),
              Ollama an ``{"error": ...}`` NDJSON line, Bedrock a throttlingException frame
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import select
import socket
import struct
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent                      # the project (/work/main)
DEFAULT_FIXTURES = ROOT.parent / "shared" / "provider-fixtures"

# credentials the fake expects (the e2e conftest configures the gateway's providers with them)
OPENAI_KEY = "sk-e2e-openai-upstream-SECRET-0001"
AZURE_KEY = "e2e0azure0upstream0SECRET0000000002"
ANTHROPIC_KEY = "sk-ant-e2e-anthropic-upstream-SECRET-0003"
AWS_ACCESS_KEY_ID = "AKIAE2EFAKEKEY000004"
AWS_SECRET_ACCESS_KEY = "e2e/fake/aws/secret/SECRET/0000000000005"
AWS_REGION = "us-east-1"

SLOW_SECONDS = 3.0
DRIP_INTERVAL = 0.1
DRIP_DEFAULT_CHUNKS = 600                      # 60 s at 100 ms
ERROR_MODELS = ("err-401", "err-404", "err-429", "err-500")
MIDSTREAM = "err-midstream"


# ================================================================================================
# fixtures
# ================================================================================================
class Fixtures:
    """Loads the provider fixture files once; helpers to parse their transcript formats."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SystemExit(f"provider fixtures not found at {self.root}")

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def json(self, rel: str):
        return json.loads(self.text(rel))

    def sse(self, rel: str) -> list[tuple[str | None, str]]:
        """[(event name or None, data)] for every event of an .sse transcript."""
        events = []
        for block in re.split(r"\r?\n\r?\n", self.text(rel)):
            name, data = None, []
            for line in block.splitlines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
            if data:
                events.append((name, "\n".join(data)))
        return events

    def ndjson(self, rel: str) -> list[dict]:
        return [json.loads(line) for line in self.text(rel).splitlines() if line.strip()]

    def bedrock_events(self) -> dict[str, list[tuple[str, str, bytes]]]:
        """converse-stream-events.txt -> {"A": [(message-type, name, payload bytes)], "B": ..., "C": ...}."""
        sections: dict[str, list[tuple[str, str, bytes]]] = {}
        current = None
        for line in self.text("bedrock/converse-stream-events.txt").splitlines():
            m = re.match(r"## ([A-Z])\)", line)
            if m:
                current = m.group(1)
                sections[current] = []
                continue
            if not line.strip() or line.startswith("#") or current is None:
                continue
            mtype, name, payload = line.split(None, 2)
            json.loads(payload)  # must be valid JSON
            sections[current].append((mtype, name, payload.strip().encode("utf-8")))
        return sections


def sse_event(data: str | bytes, event: str | None = None) -> bytes:
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode("utf-8")
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + data + b"\n\n"


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def drip_count(model: str) -> int | None:
    if model == "drip":
        return DRIP_DEFAULT_CHUNKS
    m = re.fullmatch(r"drip-(\d+)", model or "")
    return int(m.group(1)) if m else None


def floats_to_b64(vec) -> str:
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")


# ================================================================================================
# expectations: what a correct gateway must hand its OpenAI client, derived from the same files
# ================================================================================================
def expectations(fx: Fixtures) -> dict:
    """Per provider: text / usage / finish / tool calls of each canned answer, read from the fixtures."""

    def openai_stream(rel):
        text, calls, usage, finish = "", {}, None, None
        for _, data in fx.sse(rel):
            if data.strip() == "[DONE]":
                continue
            obj = json.loads(data)
            if obj.get("usage"):
                usage = (obj["usage"]["prompt_tokens"], obj["usage"]["completion_tokens"])
            for ch in obj.get("choices") or []:
                d = ch.get("delta") or {}
                text += d.get("content") or ""
                for tc in d.get("tool_calls") or []:
                    c = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
                    c["id"] = tc.get("id") or c["id"]
                    c["name"] = (tc.get("function") or {}).get("name") or c["name"]
                    c["arguments"] += (tc.get("function") or {}).get("arguments") or ""
                finish = ch.get("finish_reason") or finish
        return {"text": text, "usage": usage, "finish": finish,
                "tool_calls": [dict(c, arguments=json.loads(c["arguments"])) for _, c in sorted(calls.items())]}

    def openai_json(obj):
        msg = obj["choices"][0]["message"]
        return {"text": msg.get("content"), "usage": (obj["usage"]["prompt_tokens"], obj["usage"]["completion_tokens"]),
                "finish": obj["choices"][0]["finish_reason"],
                "tool_calls": [{"id": tc["id"], "name": tc["function"]["name"],
                                "arguments": json.loads(tc["function"]["arguments"])}
                               for tc in msg.get("tool_calls") or []]}

    def anthropic_json(obj):
        u = obj["usage"]
        return {"text": "".join(b["text"] for b in obj["content"] if b["type"] == "text"),
                "usage": (u["input_tokens"] + u.get("cache_read_input_tokens", 0)
                          + u.get("cache_creation_input_tokens", 0), u["output_tokens"]),
                "finish": {"end_turn": "stop", "tool_use": "tool_calls"}[obj["stop_reason"]],
                "tool_calls": [{"id": b["id"], "name": b["name"], "arguments": b["input"]}
                               for b in obj["content"] if b["type"] == "tool_use"]}

    def anthropic_stream(rel):
        text, blocks, inp, out, finish = "", {}, 0, 0, None
        for _, data in fx.sse(rel):
            obj = json.loads(data)
            t = obj["type"]
            if t == "message_start":
                inp = obj["message"]["usage"]["input_tokens"]
                out = obj["message"]["usage"].get("output_tokens", 0)
            elif t == "content_block_start" and obj["content_block"]["type"] == "tool_use":
                b = obj["content_block"]
                blocks[obj["index"]] = {"id": b["id"], "name": b["name"], "arguments": ""}
            elif t == "content_block_delta":
                d = obj["delta"]
                if d["type"] == "text_delta":
                    text += d["text"]
                elif d["type"] == "input_json_delta":
                    blocks[obj["index"]]["arguments"] += d["partial_json"]
            elif t == "message_delta":
                out = obj["usage"]["output_tokens"]
                finish = {"end_turn": "stop", "tool_use": "tool_calls"}[obj["delta"]["stop_reason"]]
        return {"text": text, "usage": (inp, out), "finish": finish,
                "tool_calls": [dict(c, arguments=json.loads(c["arguments"])) for _, c in sorted(blocks.items())]}

    def ollama_lines(lines):
        text, calls, usage = "", [], None
        for obj in lines:
            text += (obj.get("message") or {}).get("content") or ""
            for tc in (obj.get("message") or {}).get("tool_calls") or []:
                calls.append({"id": None, "name": tc["function"]["name"], "arguments": tc["function"]["arguments"]})
            if obj.get("done"):
                usage = (obj["prompt_eval_count"], obj["eval_count"])
        return {"text": text, "usage": usage, "finish": "tool_calls" if calls else "stop", "tool_calls": calls}

    def bedrock_json(obj):
        content = obj["output"]["message"]["content"]
        u = obj.get("usage")
        return {"text": "".join(b["text"] for b in content if "text" in b),
                "usage": (u["inputTokens"], u["outputTokens"]) if u else None,
                "finish": {"end_turn": "stop", "tool_use": "tool_calls"}[obj["stopReason"]],
                "tool_calls": [{"id": b["toolUse"]["toolUseId"], "name": b["toolUse"]["name"],
                                "arguments": b["toolUse"]["input"]} for b in content if "toolUse" in b]}

    def bedrock_stream(section):
        text, blocks, usage, finish = "", {}, None, None
        for mtype, name, payload in fx.bedrock_events()[section]:
            obj = json.loads(payload)
            if name == "contentBlockStart" and "toolUse" in obj.get("start", {}):
                tu = obj["start"]["toolUse"]
                blocks[obj["contentBlockIndex"]] = {"id": tu["toolUseId"], "name": tu["name"], "arguments": ""}
            elif name == "contentBlockDelta":
                d = obj["delta"]
                if "text" in d:
                    text += d["text"]
                elif "toolUse" in d:
                    blocks[obj["contentBlockIndex"]]["arguments"] += d["toolUse"]["input"]
            elif name == "messageStop":
                finish = {"end_turn": "stop", "tool_use": "tool_calls"}[obj["stopReason"]]
            elif name == "metadata":
                usage = (obj["usage"]["inputTokens"], obj["usage"]["outputTokens"])
        return {"text": text, "usage": usage, "finish": finish,
                "tool_calls": [dict(c, arguments=json.loads(c["arguments"])) for _, c in sorted(blocks.items())]}

    # err-midstream: the content the fake sends before the in-band error (same slices as Upstream)
    oa_head = "".join((ch.get("delta") or {}).get("content") or "" for _, d in fx.sse("openai/chat-stream-text.sse")[:3]
                      for ch in json.loads(d)["choices"])
    an_head = "".join(json.loads(d)["delta"]["text"] for e, d in
                      [(e, d) for e, d in fx.sse("anthropic/stream-text.sse") if e != "ping"][:4]
                      if e == "content_block_delta")
    ol_head = fx.ndjson("ollama/chat-stream.ndjson")[0]["message"]["content"]
    br_head = "".join(json.loads(p)["delta"]["text"] for _, n, p in fx.bedrock_events()["A"][:2]
                      if n == "contentBlockDelta")
    midstream = {"openai-compatible": oa_head, "azure-openai": oa_head, "anthropic": an_head,
                 "ollama": ol_head, "bedrock": br_head}

    azure_json = fx.json("azure/chat-response.json")
    titan = fx.json("bedrock/invoke-titan-embed-v2.json")["response"]
    out = {
        "openai-compatible": {
            "json": openai_json(fx.json("openai/chat-response-text.json")),
            "json_tools": openai_json(fx.json("openai/chat-response-tool-calls.json")),
            "stream": openai_stream("openai/chat-stream-text.sse"),
            "stream_tools": openai_stream("openai/chat-stream-tool-call.sse"),
            "embedding": fx.json("openai/embeddings-response-float.json")["data"][0]["embedding"],
            "embedding_tokens": fx.json("openai/embeddings-response-float.json")["usage"]["prompt_tokens"],
        },
        "azure-openai": {
            "json": {"text": azure_json["choices"][0]["message"]["content"],
                     "usage": (azure_json["usage"]["prompt_tokens"], azure_json["usage"]["completion_tokens"]),
                     "finish": azure_json["choices"][0]["finish_reason"], "tool_calls": []},
            "json_tools": openai_json(fx.json("openai/chat-response-tool-calls.json")),
            "stream": openai_stream("openai/chat-stream-text.sse"),
            "stream_tools": openai_stream("openai/chat-stream-tool-call.sse"),
            "embedding": fx.json("azure/embeddings-response.json")["data"][0]["embedding"],
            "embedding_tokens": fx.json("azure/embeddings-response.json")["usage"]["prompt_tokens"],
        },
        "anthropic": {
            "json": anthropic_json(fx.json("anthropic/response-text-recorded.json")),
            "json_tools": anthropic_json(fx.json("anthropic/response-text-tool-use-recorded.json")),
            "stream": anthropic_stream("anthropic/stream-text.sse"),
            "stream_tools": anthropic_stream("anthropic/stream-tool-use.sse"),
        },
        "ollama": {
            "json": ollama_lines([fx.json("ollama/chat-response-after-tool.json")]),
            "json_tools": ollama_lines([fx.json("ollama/chat-response-tools.json")]),
            "stream": ollama_lines(fx.ndjson("ollama/chat-stream.ndjson")),
            "stream_tools": ollama_lines(fx.ndjson("ollama/chat-stream-tools.ndjson")),
            "embedding": fx.json("ollama/embed-response.json")["embeddings"][0],
            "embedding_tokens": fx.json("ollama/embed-response.json")["prompt_eval_count"],
        },
        "bedrock": {
            "json": bedrock_json(fx.json("bedrock/converse-response-text.json")),
            "json_tools": bedrock_json(fx.json("bedrock/converse-response-tool-use.json")),
            "stream": bedrock_stream("A"),
            "stream_tools": bedrock_stream("B"),
            "embedding": titan["embedding"],
            "embedding_tokens": titan["inputTextTokenCount"],
        },
    }
    for ptype, text in midstream.items():
        out[ptype]["midstream_text"] = text
    return out


# ================================================================================================
# replies
# ================================================================================================
class Reply:
    """A canned HTTP answer: a whole body, or a list of chunks sent with chunked encoding."""

    def __init__(self, status: int = 200, body=None, headers: dict | None = None,
                 content_type: str = "application/json", chunks=None, delay: float = 0.0,
                 sleep: float = 0.0):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.status, self.body, self.chunks, self.delay, self.sleep = status, body, chunks, delay, sleep
        self.headers = {"Content-Type": content_type, **(headers or {})}


def retry_headers(kind: str) -> dict:
    return {"Retry-After": "2"} if kind == "err-429" else {}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with getattr(self, "lock", threading.Lock()):
            self.requests = Counter()
            self.models = Counter()
            self.open_streams = 0
            self.streams_started = 0
            self.streams_completed = 0
            self.streams_closed_early = 0
            self.closed_early_models = Counter()
            self.last = {}

    def request(self, path: str, model: str | None, headers: dict, body) -> None:
        with self.lock:
            self.requests[path] += 1
            if model:
                self.models[model] += 1
            self.last[path] = {"headers": headers, "body": body}

    def stream(self, delta_open: int, outcome: str | None = None, model: str | None = None) -> None:
        with self.lock:
            self.open_streams += delta_open
            if delta_open > 0:
                self.streams_started += 1
            if outcome == "completed":
                self.streams_completed += 1
            elif outcome == "closed_early":
                self.streams_closed_early += 1
                self.closed_early_models[model or ""] += 1

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests": dict(self.requests), "requests_total": sum(self.requests.values()),
                    "models": dict(self.models), "open_streams": self.open_streams,
                    "streams_started": self.streams_started,
                    "streams_completed": self.streams_completed,
                    "streams_closed_early": self.streams_closed_early,
                    "closed_early_models": dict(self.closed_early_models), "last": self.last}


# ================================================================================================
# providers
# ================================================================================================
class Upstream:
    """Builds Replies for every provider from the fixtures."""

    def __init__(self, fx: Fixtures):
        self.fx = fx
        from app.providers.bedrock import encode_event_frame  # the project's encoder
        self.encode_event_frame = encode_event_frame
        self._check_frame_encoder()
        # openai
        self.oa_text_sse = fx.sse("openai/chat-stream-text.sse")
        self.oa_tool_sse = fx.sse("openai/chat-stream-tool-call.sse")
        self.oa_json = fx.json("openai/chat-response-text.json")
        self.oa_json_tools = fx.json("openai/chat-response-tool-calls.json")
        self.oa_emb_float = fx.json("openai/embeddings-response-float.json")
        self.oa_emb_b64 = fx.json("openai/embeddings-response-base64.json")
        self.oa_models = fx.json("openai/models-list.json")
        self.oa_errors = fx.json("openai/errors.json")
        # azure
        self.az_json = fx.json("azure/chat-response.json")
        self.az_sse = fx.sse("azure/chat-stream-reported-chunks.sse")
        self.az_emb = fx.json("azure/embeddings-response.json")
        # anthropic
        self.an_json = fx.json("anthropic/response-text-recorded.json")
        self.an_json_tools = fx.json("anthropic/response-text-tool-use-recorded.json")
        self.an_text_sse = fx.sse("anthropic/stream-text.sse")
        self.an_tool_sse = fx.sse("anthropic/stream-tool-use.sse")
        self.an_errors = fx.json("anthropic/errors.json")
        self.an_error_sse = fx.sse("anthropic/stream-error-event.sse")
        # ollama
        self.ol_stream = fx.text("ollama/chat-stream.ndjson").splitlines(keepends=True)
        self.ol_stream_tools = fx.text("ollama/chat-stream-tools.ndjson").splitlines(keepends=True)
        self.ol_json = fx.json("ollama/chat-response-after-tool.json")
        self.ol_stream_error = fx.text("ollama/stream-error.ndjson").splitlines(keepends=True)
        self.ol_json_tools = fx.json("ollama/chat-response-tools.json")
        self.ol_embed = fx.json("ollama/embed-response.json")
        self.ol_embed_multi = fx.json("ollama/embed-response-multi.json")
        self.ol_tags = fx.json("ollama/tags-response.json")
        # bedrock
        self.br_json = fx.json("bedrock/converse-response-text.json")
        self.br_json_tools = fx.json("bedrock/converse-response-tool-use.json")
        self.br_events = fx.bedrock_events()
        self.br_titan = fx.json("bedrock/invoke-titan-embed-v2.json")

    def _check_frame_encoder(self) -> None:
        """botocore's official vector (eventstream-framing.md, example 1) must come out byte for byte."""
        want = bytes.fromhex(
            "0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e"
            "7b27666f6f273a27626172277d8d9c08b1")
        got = self.encode_event_frame({"content-type": "application/json"}, b"{'foo':'bar'}")
        if got != want:
            raise SystemExit("encode_event_frame does not reproduce botocore's test vector")

    # ---------------------------------------------------------------------------------- OpenAI
    def openai_error(self, kind: str, sent_key: str | None) -> Reply:
        if kind == "err-401":
            body = json.loads(json.dumps(self.oa_errors["401_invalid_api_key"]["body"]))
            # real OpenAI echoes (part of) the key it got; echo all of it so leaks are visible
            body["error"]["message"] = body["error"]["message"].replace("kk", sent_key or "")
            return Reply(401, body)
        if kind == "err-404":
            return Reply(404, self.oa_errors["404_model_not_found"]["body"])
        if kind == "err-429":
            return Reply(429, self.oa_errors["429_rate_limit_tokens"]["body"], retry_headers(kind))
        return Reply(500, {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                                     "type": "server_error", "param": None, "code": None}})

    def openai_chat(self, req: dict, model: str, azure: bool = False) -> Reply:
        tools = bool(req.get("tools"))
        if not req.get("stream"):
            if tools:
                return Reply(200, self.oa_json_tools)
            return Reply(200, self.az_json if azure else self.oa_json)
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        n = drip_count(model)
        if n is not None:
            events = self._openai_drip(n, include_usage)
        elif model == MIDSTREAM:  # no recorded OpenAI in-band error: the documented envelope
            events = [d for _, d in self.oa_text_sse[:3]] + [compact({"error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error", "param": None, "code": None}})]
        else:
            events = [data for _, data in (self.oa_tool_sse if tools else self.oa_text_sse)]
            if not include_usage:  # the usage chunk exists only when the client asked for it
                events = [d for d in events if d == "[DONE]" or not json.loads(d).get("usage")]
        if azure:
            events = self._azureize(events)
        return Reply(200, content_type="text/event-stream", chunks=[sse_event(d) for d in events],
                     headers={"Cache-Control": "no-cache"}, delay=DRIP_INTERVAL if n is not None else 0.0)

    # ------------------------------------------------------------ OpenAI Responses API (native)
    # The Responses wire format (POST /v1/responses; Azure: /openai/v1/responses), answered with
    # the same content as the chat fixtures: text -> a message item with an output_text part,
    # tool calls -> function_call items; streams as the typed events OpenAI sends.
    @staticmethod
    def _resp_envelope(req: dict, model: str, status: str) -> dict:
        return {"id": "resp_68af4030592c81938ec0a5fbab4a3e9f05438e46b5f69a3b", "object": "response",
                "created_at": 1756315696, "status": status, "background": False, "error": None,
                "incomplete_details": None, "instructions": req.get("instructions"),
                "max_output_tokens": req.get("max_output_tokens"), "max_tool_calls": None,
                "model": model, "output": [], "parallel_tool_calls": True,
                "previous_response_id": None, "prompt_cache_key": None,
                "reasoning": {"effort": None, "summary": None}, "safety_identifier": None,
                "service_tier": "default", "store": req.get("store", True), "temperature": 1.0,
                "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto",
                "tools": req.get("tools") or [], "top_logprobs": 0, "top_p": 1.0,
                "truncation": "disabled", "usage": None, "user": None, "metadata": {}}

    @staticmethod
    def _resp_usage(pt: int, ct: int) -> dict:
        return {"input_tokens": pt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": ct,
                "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": pt + ct}

    @staticmethod
    def _resp_items(text: str | None, calls: list[dict]) -> list[dict]:
        items = []
        if text:
            items.append({"id": "msg_68af40337b8c8193a2bf1f3a4bd4a6d905438e46b5f69a3b", "type": "message",
                          "status": "completed", "role": "assistant",
                          "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]})
        for i, c in enumerate(calls):
            items.append({"id": f"fc_68af4034a1c4819b86a4e2b0c1d3e5f7{i:02d}", "type": "function_call",
                          "status": "completed", "arguments": c["arguments"], "call_id": c["id"],
                          "name": c["name"]})
        return items

    def openai_responses(self, req: dict, model: str, azure: bool = False) -> Reply:
        tools = bool(req.get("tools"))
        if not req.get("stream"):
            chat = self.oa_json_tools if tools else (self.az_json if azure else self.oa_json)
            msg = chat["choices"][0]["message"]
            calls = [{"id": tc["id"], "name": tc["function"]["name"], "arguments": tc["function"]["arguments"]}
                     for tc in msg.get("tool_calls") or []]
            resp = self._resp_envelope(req, model, "completed")
            resp["output"] = self._resp_items(msg.get("content"), calls)
            resp["usage"] = self._resp_usage(chat["usage"]["prompt_tokens"], chat["usage"]["completion_tokens"])
            return Reply(200, resp)
        # the chat stream fixture's pieces, re-sent as Responses events
        pieces, calls, usage = [], {}, (0, 0)
        for _, data in (self.oa_tool_sse if tools else self.oa_text_sse):
            if data == "[DONE]":
                continue
            obj = json.loads(data)
            if obj.get("usage"):
                usage = (obj["usage"]["prompt_tokens"], obj["usage"]["completion_tokens"])
            for ch in obj.get("choices") or []:
                d = ch.get("delta") or {}
                if d.get("content"):
                    pieces.append(d["content"])
                for tc in d.get("tool_calls") or []:
                    c = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": [], })
                    c["id"] = tc.get("id") or c["id"]
                    c["name"] = (tc.get("function") or {}).get("name") or c["name"]
                    if (tc.get("function") or {}).get("arguments"):
                        c["arguments"].append(tc["function"]["arguments"])
        if model == MIDSTREAM:
            pieces = pieces[:2]
        seq = [0]
        events: list[bytes] = []

        def ev(type_: str, **fields) -> None:
            events.append(sse_event(compact({"type": type_, "sequence_number": seq[0], **fields}), type_))
            seq[0] += 1

        resp = self._resp_envelope(req, model, "in_progress")
        ev("response.created", response=resp)
        ev("response.in_progress", response=resp)
        text = "".join(pieces)
        done_items = self._resp_items(text, [dict(c, arguments="".join(c["arguments"])) for _, c in sorted(calls.items())])
        for idx, item in enumerate(done_items):
            if item["type"] == "message":
                ev("response.output_item.added", output_index=idx, item=dict(item, status="in_progress", content=[]))
                ev("response.content_part.added", item_id=item["id"], output_index=idx, content_index=0,
                   part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
                for p in pieces:
                    ev("response.output_text.delta", item_id=item["id"], output_index=idx, content_index=0,
                       delta=p, logprobs=[])
                if model == MIDSTREAM:
                    ev("error", code="server_error", message="The server had an error while processing your request. Sorry about that!", param=None)
                    failed = dict(resp, status="failed", error={"code": "server_error", "message": "The server had an error while processing your request. Sorry about that!"})
                    ev("response.failed", response=failed)
                    return Reply(200, content_type="text/event-stream", chunks=events)
                ev("response.output_text.done", item_id=item["id"], output_index=idx, content_index=0,
                   text=text, logprobs=[])
                ev("response.content_part.done", item_id=item["id"], output_index=idx, content_index=0,
                   part=item["content"][0])
            else:
                ev("response.output_item.added", output_index=idx, item=dict(item, status="in_progress", arguments=""))
                call = calls[sorted(calls)[idx - (1 if text else 0)]]
                for a in call["arguments"]:
                    ev("response.function_call_arguments.delta", item_id=item["id"], output_index=idx, delta=a)
                ev("response.function_call_arguments.done", item_id=item["id"], output_index=idx,
                   arguments=item["arguments"])
            ev("response.output_item.done", output_index=idx, item=item)
        ev("response.completed", response=dict(resp, status="completed", output=done_items,
                                               usage=self._resp_usage(*usage)))
        return Reply(200, content_type="text/event-stream", chunks=events, headers={"Cache-Control": "no-cache"})

    def _openai_drip(self, n: int, include_usage: bool) -> list[str]:
        role = json.loads(self.oa_text_sse[0][1])
        content = json.loads(self.oa_text_sse[1][1])
        finish = next(json.loads(d) for _, d in self.oa_text_sse
                      if d != "[DONE]" and any(c.get("finish_reason") for c in json.loads(d)["choices"]))
        usage = next(json.loads(d) for _, d in self.oa_text_sse if d != "[DONE]" and json.loads(d).get("usage"))
        out = [compact(role)]
        for i in range(n):
            content["choices"][0]["delta"] = {"content": f"tick{i} "}
            out.append(compact(content))
        out.append(compact(finish))
        if include_usage:
            usage["usage"] = {"prompt_tokens": 14, "completion_tokens": n, "total_tokens": 14 + n}
            out.append(compact(usage))
        out.append("[DONE]")
        return out

    def _azureize(self, events: list[str]) -> list[str]:
        """OpenAI's recorded chunks as Azure sends them: empty-choices prompt-filter chunk first,
        content_filter_results on every choice, an async-filter chunk (no delta) before the finish."""
        first, content, async_filter = (d for _, d in self.az_sse[:3])
        filters = json.loads(content)["choices"][0]["content_filter_results"]
        out = [first]
        for d in events:
            if d == "[DONE]":
                out.append(d)
                continue
            obj = json.loads(d)
            if any(c.get("finish_reason") for c in obj.get("choices") or []):
                out.append(async_filter)
            for c in obj.get("choices") or []:
                c["content_filter_results"] = filters
            out.append(compact(obj))
        return out

    def openai_embeddings(self, req: dict, azure: bool = False) -> Reply:
        inp = req.get("input")
        n = len(inp) if isinstance(inp, list) and inp and not isinstance(inp[0], int) else 1
        fmt = req.get("encoding_format") or "float"
        if azure:
            base = json.loads(json.dumps(self.az_emb))
            vec = base["data"][0]["embedding"]
            item = {"index": 0, "embedding": floats_to_b64(vec) if fmt == "base64" else vec}
        else:
            base = json.loads(json.dumps(self.oa_emb_b64 if fmt == "base64" else self.oa_emb_float))
            item = base["data"][0]
        base["data"] = [dict(item, index=i) for i in range(n)]
        base["usage"] = {k: v * n for k, v in base["usage"].items()}
        return Reply(200, base)

    # ---------------------------------------------------------------------------------- Anthropic
    def anthropic_error(self, kind: str) -> Reply:
        if kind == "err-401":
            return Reply(401, {"type": "error", "error": {"type": "authentication_error",
                                                          "message": "invalid x-api-key"},
                               "request_id": "req_e2e401"})
        if kind == "err-404":
            return Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": "model: err-404"},
                               "request_id": "req_e2e404"})
        if kind == "err-429":
            rec = self.an_errors["429_recorded"]
            return Reply(429, rec["body"], {**rec["headers"], **retry_headers(kind)})
        return Reply(500, {"type": "error", "error": {"type": "api_error", "message": "Internal server error"},
                           "request_id": "req_e2e500"})

    def anthropic_messages(self, req: dict, model: str) -> Reply:
        if not isinstance(req.get("max_tokens"), int):
            return Reply(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": "max_tokens: Field required"}})
        for i, m in enumerate(req.get("messages") or []):
            if m.get("role") not in ("user", "assistant"):
                return Reply(400, {"type": "error", "error": {
                    "type": "invalid_request_error",
                    "message": f"messages.{i}.role: Input should be 'user' or 'assistant'"}})
        tools = bool(req.get("tools"))
        if not req.get("stream"):
            return Reply(200, self.an_json_tools if tools else self.an_json)
        n = drip_count(model)
        if n is not None:
            events = [(e, d) for e, d in self.an_text_sse if e in ("message_start", "content_block_start")]
            for i in range(n):
                events.append(("content_block_delta", compact({"type": "content_block_delta", "index": 0,
                                                               "delta": {"type": "text_delta", "text": f"tick{i} "}})))
            events += [(e, d) for e, d in self.an_text_sse if e in ("content_block_stop", "message_stop")]
            events.insert(-1, ("message_delta", compact({"type": "message_delta",
                                                         "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                                         "usage": {"output_tokens": n}})))
        elif model == MIDSTREAM:
            events = [(e, d) for e, d in self.an_text_sse if e != "ping"][:4] + self.an_error_sse
        else:
            events = self.an_tool_sse if tools else self.an_text_sse
        return Reply(200, content_type="text/event-stream", chunks=[sse_event(d, e) for e, d in events],
                     headers={"Cache-Control": "no-cache"}, delay=DRIP_INTERVAL if n is not None else 0.0)

    # ---------------------------------------------------------------------------------- Ollama
    @staticmethod
    def ollama_error(kind: str, model: str) -> Reply:
        status, msg = {"err-401": (401, "unauthorized"),
                       "err-404": (404, f'model "{model}" not found, try pulling it first'),
                       "err-429": (429, "too many requests, please retry later"),
                       "err-500": (500, "llama runner process has terminated: exit status 2")}[kind]
        return Reply(status, {"error": msg}, retry_headers(kind))

    def ollama_chat(self, req: dict, model: str) -> Reply:
        tools = bool(req.get("tools"))
        if req.get("stream", True) is False:  # Ollama streams unless told not to
            return Reply(200, self.ol_json_tools if tools else self.ol_json)
        n = drip_count(model)
        if n is not None:
            first = json.loads(self.ol_stream[0])
            lines = []
            for i in range(n):
                first["message"]["content"] = f"tick{i} "
                lines.append(compact(first) + "\n")
            last = json.loads(self.ol_stream[-1])
            last["eval_count"] = n
            lines.append(compact(last) + "\n")
        elif model == MIDSTREAM:
            lines = self.ol_stream[:1] + self.ol_stream_error[-1:]
        else:
            lines = self.ol_stream_tools if tools else self.ol_stream
        return Reply(200, content_type="application/x-ndjson", chunks=[ln.encode() for ln in lines],
                     delay=DRIP_INTERVAL if n is not None else 0.0)

    def ollama_embed(self, req: dict) -> Reply:
        inp = req.get("input")
        texts = [inp] if isinstance(inp, str) else list(inp or [])
        if not texts:
            return Reply(400, {"error": "invalid input type"})
        if len(texts) == 1:
            return Reply(200, self.ol_embed)
        body = json.loads(json.dumps(self.ol_embed_multi))
        vecs = body["embeddings"]
        body["embeddings"] = [vecs[i % len(vecs)] for i in range(len(texts))]
        return Reply(200, body)

    # ---------------------------------------------------------------------------------- Bedrock
    @staticmethod
    def bedrock_error(kind: str) -> Reply:
        status, etype, msg = {
            "err-401": (403, "UnrecognizedClientException", "The security token included in the request is invalid."),
            "err-404": (400, "ValidationException", "The provided model identifier is invalid."),
            "err-429": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
            "err-500": (500, "InternalServerException", "The server encountered an internal error."),
        }[kind]
        return Reply(status, {"message": msg}, {"x-amzn-ErrorType": f"{etype}:http://internal.amazon.com/coral/com.amazon.coral.service/",
                                                **retry_headers(kind)})

    def bedrock_frame(self, mtype: str, name: str, payload: bytes) -> bytes:
        if mtype == "exception":
            headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
        else:
            headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
        return self.encode_event_frame(headers, payload)

    def bedrock_converse(self, req: dict, model: str, stream: bool) -> Reply:
        if not isinstance(req.get("messages"), list) or not req["messages"]:
            return self._bedrock_validation("messages is required")
        tools = bool(req.get("toolConfig"))
        if not stream:
            return Reply(200, self.br_json_tools if tools else self.br_json)
        n = drip_count(model)
        if n is not None:
            events = [ev for ev in self.br_events["A"] if ev[1] == "messageStart"]
            events += [("event", "contentBlockDelta",
                        compact({"contentBlockIndex": 0, "delta": {"text": f"tick{i} "}}).encode()) for i in range(n)]
            events += [ev for ev in self.br_events["A"] if ev[1] in ("contentBlockStop", "messageStop")]
            events.append(("event", "metadata", compact({"usage": {"inputTokens": 412, "outputTokens": n,
                                                                   "totalTokens": 412 + n},
                                                         "metrics": {"latencyMs": 100 * n}}).encode()))
            chunks = [self.bedrock_frame(*ev) for ev in events]
        elif model == MIDSTREAM:
            chunks = [self.bedrock_frame(*ev) for ev in self.br_events["A"][:2] + self.br_events["C"]]
        else:
            data = b"".join(self.bedrock_frame(*ev) for ev in self.br_events["B" if tools else "A"])
            # frames split across (and sharing) HTTP chunks, as the framing doc warns
            chunks = [data[i:i + 37] for i in range(0, len(data), 37)]
        return Reply(200, content_type="application/vnd.amazon.eventstream", chunks=chunks,
                     headers={"x-amzn-RequestId": "e2e-bedrock-request"},
                     delay=DRIP_INTERVAL if n is not None else 0.0)

    @staticmethod
    def _bedrock_validation(msg: str) -> Reply:
        return Reply(400, {"message": msg}, {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"})

    def bedrock_invoke(self, req: dict, model: str) -> Reply:
        if not model.startswith("amazon.titan-embed"):
            return self._bedrock_validation("This fake only serves Titan embeddings through InvokeModel.")
        if not isinstance(req.get("inputText"), str) or set(req) - {"inputText", "dimensions", "normalize", "embeddingTypes"}:
            return self._bedrock_validation("Malformed input request, please reformat your input and try again.")
        return Reply(200, self.br_titan["response"])


# ================================================================================================
# HTTP
# ================================================================================================
STATS = Stats()
UP: Upstream | None = None
VERBOSE = False

AZURE_OP = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|embeddings)$")
BEDROCK_OP = re.compile(r"^/model/([^/]+)/(converse|converse-stream|invoke)$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # keep-alive
    server_version = "fake-provider/1"

    def log_message(self, fmt, *args):  # quiet unless --verbose
        if VERBOSE:
            sys.stderr.write("fake: " + (fmt % args) + "\n")

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    # ------------------------------------------------------------------ plumbing
    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            req = json.loads(raw) if raw else {}
        except ValueError:
            req = None
        if path == "/_stats":
            return self._send(Reply(200, STATS.snapshot()))
        if path == "/_reset" and method == "POST":
            STATS.reset()
            return self._send(Reply(200, {"ok": True}))
        try:
            reply, model = self._route(method, path, query, headers, req)
        except Exception as exc:  # a bug in the fake: say so loudly
            import traceback
            traceback.print_exc()
            reply, model = Reply(500, {"error": {"message": f"fake_provider bug: {exc!r}"}}), None
        STATS.request(path, model, headers, req)
        if reply.sleep:
            time.sleep(reply.sleep)
        self._send(reply, model)

    def _send(self, reply: Reply, model: str | None = None) -> None:
        try:
            self.send_response(reply.status)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            if reply.chunks is None:
                body = reply.body or b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        except OSError:
            self.close_connection = True
            return
        self._stream(reply, model)

    def _stream(self, reply: Reply, model: str | None) -> None:
        if model == MIDSTREAM:  # content and error in one write: one read for the gateway, always
            reply.chunks = [b"".join(reply.chunks)]
        STATS.stream(+1)
        outcome = "completed"
        try:
            for i, chunk in enumerate(reply.chunks):
                if i and reply.delay:
                    time.sleep(reply.delay)
                if self._peer_closed():
                    outcome = "closed_early"
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # BrokenPipe / ConnectionReset: the gateway hung up
            outcome = "closed_early"
        finally:
            STATS.stream(-1, outcome, model)
        if outcome != "completed":
            self.close_connection = True

    def _peer_closed(self) -> bool:
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # ------------------------------------------------------------------ routing
    def _route(self, method: str, path: str, query: dict, headers: dict, req) -> tuple[Reply, str | None]:
        if req is None:
            return Reply(400, {"error": {"message": "We could not parse the JSON body of your request.",
                                         "type": "invalid_request_error", "param": None, "code": None}}), None
        up = UP
        # --- OpenAI
        if path in ("/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/responses"):
            auth = headers.get("authorization", "")
            sent = auth[7:] if auth.lower().startswith("bearer ") else None
            model = req.get("model") if method == "POST" else None
            if sent != OPENAI_KEY:
                return up.openai_error("err-401", sent), model
            if path == "/v1/models":
                return Reply(200, up.oa_models), None
            special = self._special(model)
            if special in ERROR_MODELS:
                return up.openai_error(special, sent), model
            reply = up.openai_chat(req, model) if path == "/v1/chat/completions" else \
                up.openai_responses(req, model) if path == "/v1/responses" else up.openai_embeddings(req)
            return self._maybe_slow(reply, special), model
        # --- Azure: the Responses API on the v1 surface (deployment name in "model")
        if path == "/openai/v1/responses" and method == "POST":
            deployment = req.get("model")
            if headers.get("api-key") != AZURE_KEY:
                return Reply(401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}), deployment
            special = self._special(deployment)
            if special in ERROR_MODELS:
                return up.openai_error(special, None), deployment
            return self._maybe_slow(up.openai_responses(req, deployment, azure=True), special), deployment
        # --- Azure
        m = AZURE_OP.match(path)
        if m and method == "POST":
            deployment, op = unquote(m.group(1)), m.group(2)
            if headers.get("api-key") != AZURE_KEY:
                return Reply(401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}), deployment
            if not query.get("api-version"):
                return Reply(404, {"error": {"code": "404", "message": "Resource not found"}}), deployment
            special = self._special(deployment)
            if special in ERROR_MODELS:
                if special == "err-404":
                    return Reply(404, {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}), deployment
                if special == "err-401":
                    return Reply(401, {"error": {"code": "401", "message": f"Access denied due to invalid subscription key {headers.get('api-key')}."}}), deployment
                return up.openai_error(special, None), deployment
            reply = up.openai_chat(req, deployment, azure=True) if op == "chat/completions" \
                else up.openai_embeddings(req, azure=True)
            return self._maybe_slow(reply, special), deployment
        # --- Anthropic
        if path == "/v1/messages" and method == "POST":
            model = req.get("model")
            if headers.get("x-api-key") != ANTHROPIC_KEY:
                return up.anthropic_error("err-401"), model
            if not headers.get("anthropic-version"):
                return Reply(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                              "message": "anthropic-version: header is required"}}), model
            special = self._special(model)
            if special in ERROR_MODELS:
                return up.anthropic_error(special), model
            return self._maybe_slow(up.anthropic_messages(req, model), special), model
        # --- Ollama
        if path in ("/api/chat", "/api/embed") and method == "POST":
            model = req.get("model")
            special = self._special(model)
            if special in ERROR_MODELS:
                return up.ollama_error(special, model), model
            reply = up.ollama_chat(req, model) if path == "/api/chat" else up.ollama_embed(req)
            return self._maybe_slow(reply, special), model
        if path == "/api/tags":
            return Reply(200, up.ol_tags), None
        # --- Bedrock
        m = BEDROCK_OP.match(path)
        if m and method == "POST":
            model, op = unquote(m.group(1)), m.group(2)
            auth = headers.get("authorization", "")
            scope = f"Credential={AWS_ACCESS_KEY_ID}/"
            if not auth.startswith("AWS4-HMAC-SHA256 ") or scope not in auth \
                    or f"/{AWS_REGION}/bedrock/aws4_request" not in auth or not headers.get("x-amz-date"):
                return Reply(403, {"message": "Missing Authentication Token"},
                             {"x-amzn-ErrorType": "MissingAuthenticationTokenException"}), model
            special = self._special(model)
            if special in ERROR_MODELS:
                return up.bedrock_error(special), model
            if op == "invoke":
                reply = up.bedrock_invoke(req, model)
            else:
                reply = up.bedrock_converse(req, model, stream=(op == "converse-stream"))
            return self._maybe_slow(reply, special), model
        return Reply(404, {"error": {"message": f"fake_provider: no route for {method} {path}",
                                     "type": "invalid_request_error", "param": None, "code": None}}), None

    @staticmethod
    def _special(model: str | None) -> str | None:
        if model in ERROR_MODELS or model == "slow":
            return model
        return None

    @staticmethod
    def _maybe_slow(reply: Reply, special: str | None) -> Reply:
        if special == "slow":
            reply.sleep = SLOW_SECONDS
        return reply


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        """A peer that hangs up (the gateway abandoning a response) is expected, not an error."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main(argv=None) -> None:
    global UP, VERBOSE
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--fixtures", default=str(DEFAULT_FIXTURES))
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    VERBOSE = args.verbose
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    UP = Upstream(Fixtures(Path(args.fixtures)))
    server = Server((args.host, args.port), Handler)
    print(f"fake provider on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
