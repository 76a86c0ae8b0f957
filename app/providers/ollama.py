"""Ollama: native ``/api/chat`` + ``/api/embed`` (ollama/notes.md), or its OpenAI layer.

If ``api_base`` ends with ``/v1`` every chat/embeddings call is delegated to the OpenAI
adapter (Ollama's OpenAI-compatible endpoints); models/health always use the native
``GET /api/tags`` on the server root.

Native notes: ``stream`` is always sent explicitly (Ollama streams by default); sampling
params go into ``options``; tool-call arguments are objects (turned into JSON strings, with
generated ``call_...`` ids); images must be inline (bare base64); usage arrives only on the final
``done: true`` line; a ``{"error": ...}`` line inside a 200 stream raises UpstreamError.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import Adapter, UpstreamError, UpstreamRequest, Usage
from .common import (keeps_partial, ChunkFactory, TranslatingDecoder, args_to_obj, args_to_str, bad_request,
                     completion_id, content_parts, dumps, embedding_inputs,
                     embeddings_list, error_for_status, error_from_body, image_url_of,
                     load_json_object, malformed, max_tokens_of, now, parse_data_uri, stop_list,
                     tool_call_id, tool_choice_kind)
from .openai import OpenAIAdapter
from .sse import NDJSONParser

DONE_REASONS = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}

# OpenAI body field -> Ollama options key
_OPTION_MAP = {"temperature": "temperature", "top_p": "top_p", "seed": "seed",
               "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty",
               "top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repeat_penalty",
               "num_ctx": "num_ctx"}


def finish_reason(done_reason: str | None, had_tool_calls: bool) -> str:
    reason = DONE_REASONS.get(done_reason or "stop", "stop")
    # Ollama keeps done_reason "stop" for tool-call answers (pitfall 10)
    return "tool_calls" if had_tool_calls and reason == "stop" else reason


def usage_from_ollama(obj: dict[str, Any]) -> Usage:
    return Usage(prompt_tokens=int(obj.get("prompt_eval_count") or 0),
                 completion_tokens=int(obj.get("eval_count") or 0))


def convert_tool_calls(calls: Any, start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i, tc in enumerate(calls or []):
        fn = (tc or {}).get("function") or {}
        out.append({"index": start + i, "id": tc.get("id") or tool_call_id(), "type": "function",
                    "function": {"name": fn.get("name"),
                                 "arguments": args_to_str(fn.get("arguments"))}})
    return out


def translate_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array.", "messages")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name (Ollama wants tool_name)
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request("Each message must be an object.", f"messages[{i}]")
        role = msg.get("role")
        content = msg.get("content")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise bad_request(f"Unsupported message role {role!r}.", f"messages[{i}].role")
        texts: list[str] = []
        images: list[str] = []
        for j, part in enumerate(content_parts(content)):
            ptype = part.get("type")
            if ptype in ("text", "input_text", "output_text"):
                texts.append(str(part.get("text") or ""))
            elif ptype == "refusal":
                texts.append(str(part.get("refusal") or ""))
            elif ptype == "image_url":
                data = parse_data_uri(image_url_of(part))
                if not data:
                    raise bad_request("Ollama only accepts inline images (data URIs); image "
                                      "URLs are not supported.", f"messages[{i}].content[{j}]")
                images.append(data[1])
            else:
                raise bad_request(f"Unsupported content part type {ptype!r} for Ollama.",
                                  f"messages[{i}].content[{j}].type")
        m: dict[str, Any] = {"role": role, "content": "".join(texts)}
        if images:
            m["images"] = images
        if role == "assistant" and msg.get("tool_calls"):
            calls = []
            for tc in msg["tool_calls"]:
                fn = (tc or {}).get("function") or {}
                if tc.get("id"):
                    names[tc["id"]] = fn.get("name") or ""
                calls.append({"function": {"name": fn.get("name") or "",
                                           "arguments": args_to_obj(fn.get("arguments"))}})
            m["tool_calls"] = calls
        if role == "tool":
            name = msg.get("name") or names.get(msg.get("tool_call_id") or "")
            if name:
                m["tool_name"] = name
        out.append(m)
    return out


class OllamaStreamDecoder(TranslatingDecoder):
    """NDJSON ``/api/chat`` lines -> OpenAI chunks."""

    def __init__(self, public_model: str, provider: str = "", secrets: dict | None = None):
        super().__init__(public_model)
        self._nd = NDJSONParser()
        self._factory = ChunkFactory(public_model)
        self._tools = 0
        self._provider = provider
        self._secrets = secrets

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._lines(self._nd.feed(data))

    def close(self) -> list[dict[str, Any]]:
        return self._lines(self._nd.close())

    @keeps_partial
    def _lines(self, objs: list[Any]) -> Iterator[dict[str, Any]]:
        f = self._factory
        for obj in objs:
            if self._done:
                break
            if not isinstance(obj, dict):
                raise malformed("stream line")
            if obj.get("error") is not None:
                raise error_for_status(500, str(obj["error"]), provider=self._provider,
                                       secrets=self._secrets)
            msg = obj.get("message") or {}
            text = msg.get("content") if isinstance(msg, dict) else None
            if text is None and isinstance(obj.get("response"), str):  # /api/generate lines
                text = obj["response"]
            if text:
                yield f.chunk({"content": text})
            calls = msg.get("tool_calls") if isinstance(msg, dict) else None
            if calls:
                converted = convert_tool_calls(calls, self._tools)
                self._tools += len(converted)
                yield f.chunk({"tool_calls": converted})
            if obj.get("done"):
                self.usage = usage_from_ollama(obj)
                self.finish_reason = finish_reason(obj.get("done_reason"), self._tools > 0)
                yield f.chunk({}, self.finish_reason)
                self._done = True



class OllamaAdapter(Adapter):
    type = "ollama"
    label = "Ollama"
    default_api_base = "http://localhost:11434"
    config_fields = ("keep_alive",)
    secret_fields = ("api_key",)
    optional_secret_fields = ("api_key",)  # only ollama.com / proxied servers need a key

    def __init__(self, provider):
        super().__init__(provider)
        self._compat: OpenAIAdapter | None = OpenAIAdapter(provider) \
            if self.base_url.endswith("/v1") else None
        if self._compat is not None:
            self._compat.max_tokens_field = "max_tokens"

    @property
    def root_url(self) -> str:
        base = self.base_url
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def _headers(self, json_body: bool = True) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if json_body:
            h["Content-Type"] = "application/json"
        key = self.secret("api_key")
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    # --- chat ----------------------------------------------------------------------------------
    def translate_request(self, body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
        p = self.provider
        out: dict[str, Any] = {"model": upstream_model,
                               "messages": translate_messages(body.get("messages")),
                               "stream": bool(body.get("stream"))}
        options: dict[str, Any] = {}
        for src, dst in _OPTION_MAP.items():
            if body.get(src) is not None:
                options[dst] = body[src]
        if "temperature" not in options and p.default_temperature is not None:
            options["temperature"] = p.default_temperature
        mt = max_tokens_of(body)
        if mt is None:
            mt = p.default_max_tokens
        if mt is not None:
            options["num_predict"] = mt
        stops = stop_list(body.get("stop"))
        if stops:
            options["stop"] = stops
        if isinstance(body.get("options"), dict):  # native options sent by the client win
            options.update(body["options"])
        if options:
            out["options"] = options
        rf = body.get("response_format")
        if isinstance(rf, dict):
            if rf.get("type") == "json_object":
                out["format"] = "json"
            elif rf.get("type") == "json_schema":
                schema = (rf.get("json_schema") or {}).get("schema")
                out["format"] = schema if isinstance(schema, dict) else "json"
        if body.get("tools"):
            kind, name = tool_choice_kind(body.get("tool_choice"))
            tools = [t for t in body["tools"] if isinstance(t, dict)]
            if kind == "tool":  # no tool_choice in Ollama: offer only the forced tool
                tools = [t for t in tools if (t.get("function") or {}).get("name") == name]
            if kind != "none" and tools:
                out["tools"] = tools
        keep_alive = body.get("keep_alive") or (p.config or {}).get("keep_alive")
        if keep_alive:
            out["keep_alive"] = keep_alive
        if body.get("think") is not None:
            out["think"] = body["think"]
        return out

    def chat_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        if self._compat:
            return self._compat.chat_request(body, upstream_model)
        out = self.translate_request(body, upstream_model)
        h = self._headers()
        if out["stream"]:
            h["Accept"] = "application/x-ndjson"
        return UpstreamRequest("POST", f"{self.root_url}/api/chat", h, dumps(out),
                               stream=out["stream"])

    def parse_chat_response(self, data: bytes, public_model: str) -> tuple[dict[str, Any], Usage]:
        if self._compat:
            return self._compat.parse_chat_response(data, public_model)
        obj = load_json_object(data)
        if obj.get("error") is not None:
            raise error_for_status(500, str(obj["error"]), provider=self.provider.name,
                                   secrets=self.provider.secrets)
        msg = obj.get("message")
        if not isinstance(msg, dict):
            raise malformed()
        tool_calls = [{k: v for k, v in tc.items() if k != "index"}
                      for tc in convert_tool_calls(msg.get("tool_calls"))]
        content = msg.get("content") or ""
        message: dict[str, Any] = {"role": "assistant",
                                   "content": content if content or not tool_calls else None,
                                   "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        usage = usage_from_ollama(obj)
        return ({"id": completion_id(), "object": "chat.completion", "created": now(),
                 "model": public_model,
                 "choices": [{"index": 0, "message": message, "logprobs": None,
                              "finish_reason": finish_reason(obj.get("done_reason"),
                                                             bool(tool_calls))}],
                 "usage": usage.as_openai()}, usage)

    def stream_decoder(self, public_model: str):
        if self._compat:
            return self._compat.stream_decoder(public_model)
        return OllamaStreamDecoder(public_model, self.provider.name, self.provider.secrets)

    # --- embeddings ----------------------------------------------------------------------------
    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        if self._compat:
            return self._compat.embeddings_request(body, upstream_model)
        inputs = embedding_inputs(body)
        out: dict[str, Any] = {"model": upstream_model,
                               "input": body["input"] if isinstance(body["input"], str) else inputs}
        if isinstance(body.get("dimensions"), int):
            out["dimensions"] = body["dimensions"]
        keep_alive = (self.provider.config or {}).get("keep_alive")
        if keep_alive:
            out["keep_alive"] = keep_alive
        return UpstreamRequest("POST", f"{self.root_url}/api/embed", self._headers(), dumps(out))

    def parse_embeddings_response(self, data: bytes, public_model: str,
                                  body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        if self._compat:
            return self._compat.parse_embeddings_response(data, public_model, body)
        obj = load_json_object(data)
        if obj.get("error") is not None:
            raise error_for_status(500, str(obj["error"]), provider=self.provider.name,
                                   secrets=self.provider.secrets)
        vectors = obj.get("embeddings")
        if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
            raise malformed()
        count = obj.get("prompt_eval_count")
        usage = Usage(prompt_tokens=int(count)) if count is not None else Usage(estimated=True)
        return embeddings_list(vectors, public_model, body, usage), usage

    # --- errors / models -----------------------------------------------------------------------
    def parse_error(self, status: int, headers: dict[str, str], data: bytes) -> UpstreamError:
        return error_from_body(status, headers, data, provider=self.provider.name,
                               secrets=self.provider.secrets)

    def models_request(self) -> UpstreamRequest:
        return UpstreamRequest("GET", f"{self.root_url}/api/tags", self._headers(json_body=False))

    def parse_models(self, data: bytes) -> list[dict[str, Any]]:
        obj = load_json_object(data, "model list")
        items = obj.get("models")
        if not isinstance(items, list):
            raise malformed("model list")
        out = []
        for m in items:
            if not isinstance(m, dict):
                continue
            name = m.get("name") or m.get("model")
            if not name:
                continue
            details = m.get("details") if isinstance(m.get("details"), dict) else {}
            families = [str(x) for x in (details.get("families") or [])] + \
                [str(details.get("family") or "")]
            is_embed = "embed" in str(name).lower() or any("bert" in f for f in families)
            entry: dict[str, Any] = {"id": str(name), "kind": "embedding" if is_embed else "chat"}
            if details.get("parameter_size"):
                entry["parameter_size"] = details["parameter_size"]
            out.append(entry)
        return out
