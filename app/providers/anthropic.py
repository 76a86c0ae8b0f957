"""Anthropic Messages API (anthropic/notes.md, errors.json).

Request translation (OpenAI chat -> Messages):

* ``system``/``developer`` messages -> top-level ``system`` (a string when there is one plain
  string, else a list of text blocks; ``cache_control`` on parts is kept);
* consecutive same-role turns are merged; N ``tool`` messages become one user turn with N
  ``tool_result`` blocks (placed before any text of that turn);
* ``max_tokens`` (required) = ``max_completion_tokens`` / ``max_tokens`` / provider default /
  4096; ``temperature`` is clamped to Anthropic's 0..1; ``stop`` -> ``stop_sequences``;
  ``user`` -> ``metadata.user_id``;
* tools / ``tool_choice`` / ``parallel_tool_calls=false`` -> ``disable_parallel_tool_use``;
* images: data URI -> base64 source, http(s) URL -> url source;
* ``response_format`` and other OpenAI-only fields (seed, penalties, logprobs...) are dropped.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import Adapter, UpstreamError, UpstreamRequest, Usage
from .common import (keeps_partial, ChunkFactory, TranslatingDecoder, args_to_obj, args_to_str, bad_request,
                     content_parts, content_text, dumps, error_for_status, error_from_body,
                     function_tools, guess_kind, image_url_of, load_json_object, loads, malformed,
                     max_tokens_of, now, parse_data_uri, stop_list, tool_choice_kind)
from .anthropic_messages import DIALECT as MESSAGES, MessagesStreamDecoder, parse_message
from .sse import SSEParser

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}

# documented error type -> HTTP status (errors.json "documented_status_codes")
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


_USAGE_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
               "output_tokens")


def update_counts(counts: dict[str, int], u: Any) -> dict[str, int]:
    """Overwrite (never add) the counters present in an Anthropic ``usage`` object.

    Input counts come in ``message_start``; ``message_delta`` carries the cumulative output and,
    in newer streams, repeats the input counts (pitfall 8): setting instead of summing makes
    both shapes come out right.
    """
    if isinstance(u, dict):
        for k in _USAGE_KEYS:
            if u.get(k) is not None:
                counts[k] = int(u[k])
    return counts


def usage_from_counts(counts: dict[str, int]) -> Usage:
    """prompt = input + cache_read + cache_creation; cached = cache_read."""
    cache_read = counts.get("cache_read_input_tokens", 0)
    return Usage(prompt_tokens=counts.get("input_tokens", 0) + cache_read
                 + counts.get("cache_creation_input_tokens", 0),
                 completion_tokens=counts.get("output_tokens", 0), cached_tokens=cache_read)


def _counted_usage(counts: dict[str, int], u: Any) -> Usage:
    return usage_from_counts(update_counts(counts, u))


def usage_from_anthropic(u: Any) -> Usage:
    return usage_from_counts(update_counts({}, u))


def _image_block(part: dict[str, Any], param: str) -> dict[str, Any]:
    url = image_url_of(part)
    data = parse_data_uri(url)
    if data:
        return {"type": "image", "source": {"type": "base64", "media_type": data[0],
                                            "data": data[1]}}
    if url.lower().startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request("image_url must be an http(s) URL or a data URI.", param)


def _text_block(part: dict[str, Any]) -> dict[str, Any] | None:
    text = str(part.get("text") or "")
    if not text:
        return None  # Anthropic rejects empty text blocks
    block: dict[str, Any] = {"type": "text", "text": text}
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _user_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    blocks = []
    for j, part in enumerate(content_parts(content)):
        ptype = part.get("type")
        if ptype in ("text", "input_text"):
            b = _text_block(part)
            if b:
                blocks.append(b)
        elif ptype == "image_url":
            blocks.append(_image_block(part, f"{param}.content[{j}]"))
        elif ptype == "file":
            f = part.get("file") or {}
            data = parse_data_uri(str(f.get("file_data") or ""))
            if not data:
                raise bad_request("Only inline (data URI) files are supported.",
                                  f"{param}.content[{j}]")
            blocks.append({"type": "document", "source": {"type": "base64",
                                                          "media_type": data[0],
                                                          "data": data[1]}})
        else:
            raise bad_request(f"Unsupported content part type {ptype!r} for Anthropic.",
                              f"{param}.content[{j}].type")
    return blocks


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content)


def translate_messages(messages: Any) -> tuple[Any, list[dict[str, Any]]]:
    """OpenAI messages -> (system, anthropic messages)."""
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array.", "messages")
    system_blocks: list[dict[str, Any]] = []
    system_plain = True
    out: list[dict[str, Any]] = []

    def push(role: str, content: Any) -> None:
        if content == [] or content == "":
            return
        if out and out[-1]["role"] == role:  # merge consecutive same-role turns
            merged = _as_blocks(out[-1]["content"]) + _as_blocks(content)
            if role == "user":  # tool_result blocks must lead the user turn
                merged.sort(key=lambda b: 0 if b.get("type") == "tool_result" else 1)
            out[-1]["content"] = merged
        else:
            out.append({"role": role, "content": content})

    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request("Each message must be an object.", f"messages[{i}]")
        role = msg.get("role")
        content = msg.get("content")
        param = f"messages[{i}]"
        if role in ("system", "developer"):
            if not isinstance(content, str):
                system_plain = False
                for part in content_parts(content):
                    b = _text_block(part) if part.get("type") in ("text", "input_text") else None
                    if b:
                        system_blocks.append(b)
            elif content:
                system_blocks.append({"type": "text", "text": content})
        elif role == "user":
            if isinstance(content, str):
                push("user", content)
            else:
                push("user", _user_blocks(content, param))
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            text = content_text(content)
            if text:
                blocks.append({"type": "text", "text": text})
            for tc in msg.get("tool_calls") or []:
                fn = (tc or {}).get("function") or {}
                blocks.append({"type": "tool_use", "id": tc.get("id") or "",
                               "name": fn.get("name") or "",
                               "input": args_to_obj(fn.get("arguments"))})
            if blocks and len(blocks) == 1 and blocks[0]["type"] == "text":
                push("assistant", blocks[0]["text"])
            else:
                push("assistant", blocks)
        elif role == "tool":
            if not msg.get("tool_call_id"):
                raise bad_request("tool messages need tool_call_id.", f"{param}.tool_call_id")
            push("user", [{"type": "tool_result", "tool_use_id": msg["tool_call_id"],
                           "content": content_text(content)}])
        else:
            raise bad_request(f"Unsupported message role {role!r}.", f"{param}.role")

    # a final assistant turn is a prefill; Anthropic rejects trailing whitespace there
    if out and out[-1]["role"] == "assistant":
        last = out[-1]
        if isinstance(last["content"], str):
            last["content"] = last["content"].rstrip()
        elif last["content"] and last["content"][-1].get("type") == "text":
            last["content"][-1] = {**last["content"][-1],
                                   "text": last["content"][-1]["text"].rstrip()}
    if not out:
        raise bad_request("messages must contain at least one user or assistant message.",
                          "messages")

    system: Any = None
    if system_blocks:
        if system_plain and not any("cache_control" in b for b in system_blocks):
            system = "\n\n".join(b["text"] for b in system_blocks)
        else:
            system = system_blocks
    return system, out


class AnthropicStreamDecoder(TranslatingDecoder):
    """Anthropic SSE events -> OpenAI chunks (first chunk has ``delta.role``)."""

    def __init__(self, public_model: str, provider: str = "", secrets: dict | None = None):
        super().__init__(public_model)
        self._sse = SSEParser()
        self._factory = ChunkFactory(public_model)
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool index
        self._counts: dict[str, int] = {}
        self._provider = provider
        self._secrets = secrets

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._handle(self._sse.feed(data))

    def close(self) -> list[dict[str, Any]]:
        return self._handle(self._sse.close())

    @keeps_partial
    def _handle(self, events) -> Iterator[dict[str, Any]]:
        for ev in events:
            if self._done:
                break
            try:
                obj = loads(ev.data)
            except ValueError:
                raise malformed("stream event") from None
            if not isinstance(obj, dict):
                raise malformed("stream event")
            chunk = self._event(obj.get("type") or ev.event, obj)
            if chunk is not None:
                yield chunk

    def _event(self, etype: str | None, obj: dict[str, Any]) -> dict[str, Any] | None:
        f = self._factory
        if etype == "message_start":
            msg = obj.get("message") or {}
            if msg.get("id"):
                f.id = msg["id"]
            self.usage = usage_from_counts(update_counts(self._counts, msg.get("usage")))
            return f.chunk({"content": ""})
        if etype == "content_block_start":
            block = obj.get("content_block") or {}
            if block.get("type") == "tool_use":
                ti = len(self._tool_index)
                self._tool_index[int(obj.get("index", 0))] = ti
                return f.chunk({"tool_calls": [{
                    "index": ti, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}]})
            if block.get("type") == "text" and block.get("text"):
                return f.chunk({"content": block["text"]})
            return None
        if etype == "content_block_delta":
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return f.chunk({"content": delta.get("text") or ""})
            if dtype == "input_json_delta":
                partial = delta.get("partial_json") or ""
                ti = self._tool_index.get(int(obj.get("index", 0)))
                if not partial or ti is None:
                    return None
                return f.chunk({"tool_calls": [{"index": ti,
                                                "function": {"arguments": partial}}]})
            return None  # thinking / signature / citations deltas have no OpenAI equivalent
        if etype == "message_delta":
            self.usage = usage_from_counts(update_counts(self._counts, obj.get("usage")))
            reason = finish_reason((obj.get("delta") or {}).get("stop_reason"))
            if reason:
                self.finish_reason = reason
                return f.chunk({}, reason)
            return None
        if etype == "message_stop":
            self._done = True
            return None
        if etype == "error":
            err = obj.get("error") or {}
            etype_ = err.get("type") or "api_error"
            raise error_for_status(ERROR_TYPE_STATUS.get(etype_, 500),
                                   err.get("message") or "The upstream provider failed mid-stream.",
                                   provider=self._provider, secrets=self._secrets,
                                   overloaded=(etype_ == "overloaded_error"))
        return None  # ping, content_block_stop, unknown future events


class AnthropicAdapter(Adapter):
    type = "anthropic"
    label = "Anthropic"
    supports_embeddings = False
    default_api_base = "https://api.anthropic.com"
    config_fields = ("anthropic_version", "anthropic_beta")
    secret_fields = ("api_key",)

    def _url(self, path: str) -> str:
        base = self.base_url
        prefix = base if base.endswith("/v1") else f"{base}/v1"
        return f"{prefix}/{path}"

    def _headers(self, stream: bool = False, json_body: bool = True) -> dict[str, str]:
        cfg = self.provider.config or {}
        h = {"anthropic-version": str(cfg.get("anthropic_version") or DEFAULT_VERSION),
             "Accept": "text/event-stream" if stream else "application/json"}
        if json_body:
            h["Content-Type"] = "application/json"
        key = self.secret("api_key")
        if key:
            h["x-api-key"] = key
        if cfg.get("anthropic_beta"):
            h["anthropic-beta"] = str(cfg["anthropic_beta"])
        return h

    # --- chat ----------------------------------------------------------------------------------
    def translate_request(self, body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
        system, messages = translate_messages(body.get("messages"))
        p = self.provider
        out: dict[str, Any] = {"model": upstream_model, "messages": messages}
        if system is not None:
            out["system"] = system
        mt = max_tokens_of(body)
        out["max_tokens"] = mt if mt is not None else (p.default_max_tokens or DEFAULT_MAX_TOKENS)
        temp = body.get("temperature")
        if temp is None:
            temp = p.default_temperature
        if temp is not None:
            out["temperature"] = max(0.0, min(1.0, float(temp)))
        if body.get("top_p") is not None:
            out["top_p"] = body["top_p"]
        if body.get("top_k") is not None:  # not OpenAI, but commonly sent to Anthropic
            out["top_k"] = body["top_k"]
        stops = [s for s in stop_list(body.get("stop")) if s.strip()]
        if stops:
            out["stop_sequences"] = stops
        if body.get("user"):
            out["metadata"] = {"user_id": str(body["user"])}
        if body.get("n") not in (None, 1):
            raise bad_request("Anthropic does not support n > 1.", "n")
        if body.get("stream"):
            out["stream"] = True
        tools = function_tools(body.get("tools"))
        if tools:
            out["tools"] = [{"name": t["name"], **({"description": t["description"]}
                                                    if t["description"] else {}),
                             "input_schema": t["parameters"]} for t in tools]
            kind, name = tool_choice_kind(body.get("tool_choice"))
            choice: dict[str, Any] | None = None
            if kind == "auto":
                choice = {"type": "auto"}
            elif kind == "required":
                choice = {"type": "any"}
            elif kind == "none":
                choice = {"type": "none"}
            elif kind == "tool":
                choice = {"type": "tool", "name": name}
            if body.get("parallel_tool_calls") is False and kind != "none":
                choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
            if choice is not None:
                out["tool_choice"] = choice
        # response_format (json_object / json_schema): no Messages API equivalent; dropped.
        return out

    def chat_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        out = self.translate_request(body, upstream_model)
        stream = bool(out.get("stream"))
        return UpstreamRequest("POST", self._url("messages"), self._headers(stream), dumps(out),
                               stream=stream)

    def parse_chat_response(self, data: bytes, public_model: str) -> tuple[dict[str, Any], Usage]:
        obj = load_json_object(data)
        if obj.get("type") == "error":
            err = obj.get("error") or {}
            raise error_for_status(ERROR_TYPE_STATUS.get(err.get("type"), 500),
                                   err.get("message"), provider=self.provider.name,
                                   secrets=self.provider.secrets)
        blocks = obj.get("content")
        if not isinstance(blocks, list):
            raise malformed()
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for b in blocks:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "text":
                texts.append(str(b.get("text") or ""))
            elif b.get("type") == "tool_use":
                tool_calls.append({"id": b.get("id"), "type": "function",
                                   "function": {"name": b.get("name"),
                                                "arguments": args_to_str(b.get("input"))}})
        message: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(texts) if texts or not tool_calls else None,
                                   "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        usage = usage_from_anthropic(obj.get("usage"))
        result = {"id": obj.get("id") or "", "object": "chat.completion", "created": now(),
                  "model": public_model,
                  "choices": [{"index": 0, "message": message, "logprobs": None,
                               "finish_reason": finish_reason(obj.get("stop_reason")) or "stop"}],
                  "usage": usage.as_openai()}
        return result, usage

    def stream_decoder(self, public_model: str) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(public_model, self.provider.name, self.provider.secrets)

    # --- the Messages API, natively (anthropic_messages): POST /v1/messages passed through ----
    def native(self, dialect: str) -> bool:
        return dialect == MESSAGES

    def native_request(self, dialect: str, body: dict[str, Any],
                       upstream_model: str) -> UpstreamRequest:
        out = {**body, "model": upstream_model}
        if out.get("temperature") is None and self.provider.default_temperature is not None:
            out["temperature"] = max(0.0, min(1.0, float(self.provider.default_temperature)))
        stream = out.get("stream") is True
        return UpstreamRequest("POST", self._url("messages"), self._headers(stream), dumps(out),
                               stream=stream, dialect=dialect)

    def parse_native_response(self, dialect: str, data: bytes,
                              public_model: str) -> tuple[dict[str, Any], Usage]:
        return parse_message(data, public_model, _counted_usage, ERROR_TYPE_STATUS,
                             self.provider.name, self.provider.secrets)

    def native_stream_decoder(self, dialect: str, public_model: str) -> MessagesStreamDecoder:
        return MessagesStreamDecoder(public_model, _counted_usage, ERROR_TYPE_STATUS,
                                     self.provider.name, self.provider.secrets)

    # --- embeddings: Anthropic has none ----------------------------------------------------------
    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        raise bad_request("Anthropic does not offer an embeddings API.", "model")

    # --- errors / models -----------------------------------------------------------------------
    def parse_error(self, status: int, headers: dict[str, str], data: bytes) -> UpstreamError:
        return error_from_body(status, headers, data, provider=self.provider.name,
                               secrets=self.provider.secrets)

    def models_request(self) -> UpstreamRequest:
        return UpstreamRequest("GET", self._url("models?limit=1000"),
                               self._headers(json_body=False))

    def parse_models(self, data: bytes) -> list[dict[str, Any]]:
        obj = load_json_object(data, "model list")
        items = obj.get("data")
        if not isinstance(items, list):
            raise malformed("model list")
        out = []
        for m in items:
            if isinstance(m, dict) and m.get("id"):
                entry = {"id": str(m["id"]), "kind": guess_kind(str(m["id"]))}
                if m.get("display_name"):
                    entry["display_name"] = m["display_name"]
                out.append(entry)
        return out
