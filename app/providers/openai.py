"""OpenAI and every OpenAI-compatible service (xAI, Groq, Mistral, vLLM, LM Studio, ...).

Bodies are passed through: unknown fields are kept, only ``model`` is replaced with the upstream
id (and provider defaults are filled in when the client left them out).

Streaming and usage: for streams this adapter always sends ``stream_options.include_usage=true``
upstream (any other client ``stream_options`` keys are kept). The decoder never returns the
upstream usage chunk (``choices: []``); it stores the totals in ``decoder.usage``. The core
emits its own usage chunk only if ``base.client_wants_usage(client_body)`` is True, so a client
that did not ask never sees one. A compatible server that rejects ``stream_options`` can be
configured with ``config["stream_include_usage"] = False``.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from .base import Adapter, UpstreamError, UpstreamRequest, Usage
from .common import (keeps_partial, TranslatingDecoder, dumps, error_for_status, error_from_body,
                     extract_error_fields, guess_kind, load_json_object, loads, malformed,
                     usage_from_openai)
from .openai_responses import DIALECT as RESPONSES, ResponsesStreamDecoder, native_body, parse_response
from .sse import SSEParser

# stream error "type" -> upstream-equivalent HTTP status (errors inside a 200 stream)
_STREAM_ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
    "not_found_error": 404, "rate_limit_error": 429, "tokens": 429, "requests": 429,
    "insufficient_quota": 429, "server_error": 500, "api_error": 500, "overloaded_error": 529,
    "timeout": 504,
}


def stream_error(err_obj: Any, provider: str = "", secrets: dict | None = None) -> UpstreamError:
    """UpstreamError for an ``{"error": ...}`` object received inside a 200 stream."""
    message, type_, code, param = extract_error_fields(err_obj)
    status = None
    inner = err_obj.get("error") if isinstance(err_obj, dict) else None
    if isinstance(inner, dict):
        for key in ("status", "code"):  # OpenRouter puts the HTTP status in error.code
            val = inner.get(key)
            if isinstance(val, int) and 400 <= val < 600:
                status = val
                break
    if status is None:
        status = _STREAM_ERROR_STATUS.get(type_ or "", 0) or \
            (429 if code in ("rate_limit_exceeded", "insufficient_quota") else 500)
    return error_for_status(status, message or "The upstream provider failed mid-stream.",
                            provider=provider, code=code, param=param, secrets=secrets,
                            overloaded=(type_ == "overloaded_error"))


class OpenAIStreamDecoder(TranslatingDecoder):
    """SSE ``chat.completion.chunk`` pass-through with ``model`` rewritten.

    Handles: data lines split across feeds, ``[DONE]``, the usage chunk (``choices: []``,
    stored in ``usage``, not returned), usage attached to a normal chunk (Mistral/Groq
    ``x_groq.usage``; the key is removed before returning it), Azure's empty first chunk and
    filter-only chunks (choices without ``delta``; dropped), and ``{"error": ...}`` payloads
    (raised as UpstreamError).
    """

    def __init__(self, public_model: str, provider: str = "", secrets: dict | None = None):
        super().__init__(public_model)
        self._sse = SSEParser()
        self._provider = provider
        self._secrets = secrets

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        return self._events(self._sse.feed(data))

    def close(self) -> list[dict[str, Any]]:
        return self._events(self._sse.close())

    @keeps_partial
    def _events(self, events) -> Iterator[dict[str, Any]]:
        for ev in events:
            if self._done:
                break
            payload = ev.data.strip()
            if not payload:
                continue
            if payload == "[DONE]":
                self._done = True
                break
            try:
                objs = [loads(payload)]
            except ValueError:
                # servers that omit the blank line between events: one JSON per data line
                try:
                    objs = [loads(line) for line in payload.split("\n") if line.strip()
                            and line.strip() != "[DONE]"]
                except ValueError:
                    raise malformed("stream event") from None
                if "[DONE]" in payload.split("\n"):
                    self._done = True
            for obj in objs:
                chunk = self._chunk(obj, ev.event)
                if chunk is not None:
                    yield chunk

    def _chunk(self, obj: Any, event: str | None) -> dict[str, Any] | None:
        if not isinstance(obj, dict):
            raise malformed("stream event")
        if obj.get("error") is not None or event == "error":
            raise stream_error(obj, self._provider, self._secrets)
        usage = obj.pop("usage", None)
        if usage is None and isinstance(obj.get("x_groq"), dict):
            usage = obj["x_groq"].get("usage")
        parsed = usage_from_openai(usage)
        if parsed is not None:
            self.usage = parsed
        raw_choices = obj.get("choices")
        choices = []
        for ch in raw_choices if isinstance(raw_choices, list) else []:
            if not isinstance(ch, dict):
                continue
            if "delta" not in ch or ch.get("delta") is None:
                if not ch.get("finish_reason"):
                    continue  # Azure async-filter chunk: filter results only
                ch["delta"] = {}
            if ch.get("finish_reason") and ch.get("index", 0) == 0:
                self.finish_reason = ch["finish_reason"]
            choices.append(ch)
        if not choices:
            return None  # usage chunk, Azure prompt-filter chunk, keep-alives
        obj["choices"] = choices
        obj["model"] = self.public_model
        if not obj.get("object"):
            obj["object"] = "chat.completion.chunk"
        return obj


class OpenAIAdapter(Adapter):
    type = "openai"
    label = "OpenAI"
    default_api_base = "https://api.openai.com/v1"
    config_fields = ("organization", "project", "responses_api")
    secret_fields = ("api_key",)
    # the field used to fill in provider.default_max_tokens (OpenAI reasoning models reject
    # max_tokens; many compatible servers only know max_tokens)
    max_tokens_field: ClassVar[str] = "max_completion_tokens"

    # --- plumbing ------------------------------------------------------------------------------
    def _headers(self, stream: bool = False, json_body: bool = True) -> dict[str, str]:
        h: dict[str, str] = {"Accept": "text/event-stream" if stream else "application/json"}
        if json_body:
            h["Content-Type"] = "application/json"
        key = self.secret("api_key")
        if key:
            h["Authorization"] = f"Bearer {key}"
        cfg = self.provider.config or {}
        if cfg.get("organization"):
            h["OpenAI-Organization"] = str(cfg["organization"])
        if cfg.get("project"):
            h["OpenAI-Project"] = str(cfg["project"])
        return h

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _apply_defaults(self, body: dict[str, Any]) -> None:
        p = self.provider
        if p.default_temperature is not None and body.get("temperature") is None:
            body["temperature"] = p.default_temperature
        if (p.default_max_tokens is not None and body.get("max_tokens") is None
                and body.get("max_completion_tokens") is None):
            body[self.max_tokens_field] = p.default_max_tokens

    def prepare_chat_body(self, body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
        """The upstream JSON body (a shallow copy; the client's dict is not modified)."""
        out = dict(body)
        out["model"] = upstream_model
        self._apply_defaults(out)
        if out.get("stream"):
            if (self.provider.config or {}).get("stream_include_usage", True):
                opts = out.get("stream_options")
                out["stream_options"] = {**(opts if isinstance(opts, dict) else {}),
                                         "include_usage": True}
        else:
            out.pop("stream_options", None)  # OpenAI rejects stream_options without stream
        return out

    # --- chat ----------------------------------------------------------------------------------
    def chat_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        out = self.prepare_chat_body(body, upstream_model)
        stream = bool(out.get("stream"))
        return UpstreamRequest("POST", self._url("chat/completions"), self._headers(stream),
                               dumps(out), stream=stream)

    def parse_chat_response(self, data: bytes, public_model: str) -> tuple[dict[str, Any], Usage]:
        obj = load_json_object(data)
        if obj.get("error") is not None:
            raise stream_error(obj, self.provider.name, self.provider.secrets)
        if not isinstance(obj.get("choices"), list):
            raise malformed()
        obj["model"] = public_model
        obj.setdefault("object", "chat.completion")  # Azure's documented bodies omit it
        usage = usage_from_openai(obj.get("usage"))
        if usage is None:
            usage = Usage(estimated=True)  # upstream sent none: the core should estimate
        return obj, usage

    def stream_decoder(self, public_model: str) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(public_model, self.provider.name, self.provider.secrets)

    # --- the Responses API, natively (openai_responses) -----------------------------------------
    # on unless the provider's config says ``"responses_api": false``; compatible servers that
    # speak it (vLLM, ...) turn it on with ``"responses_api": true``
    responses_api_default: ClassVar[bool] = True

    def native(self, dialect: str) -> bool:
        if dialect != RESPONSES:
            return False
        flag = (self.provider.config or {}).get("responses_api")
        if flag is None or flag == "":
            return self.responses_api_default
        return str(flag).strip().lower() not in ("false", "0", "off", "no")

    def _responses_target(self, upstream_model: str) -> tuple[str, str]:
        """(URL, body model) of a Responses call."""
        return self._url("responses"), upstream_model

    def native_request(self, dialect: str, body: dict[str, Any],
                       upstream_model: str) -> UpstreamRequest:
        url, model = self._responses_target(upstream_model)
        out = native_body(body, model, self.provider)
        stream = out.get("stream") is True
        return UpstreamRequest("POST", url, self._headers(stream), dumps(out), stream=stream,
                               dialect=dialect)

    def parse_native_response(self, dialect: str, data: bytes,
                              public_model: str) -> tuple[dict[str, Any], Usage]:
        return parse_response(data, public_model, self.provider.name, self.provider.secrets)

    def native_stream_decoder(self, dialect: str, public_model: str) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder(public_model, self.provider.name, self.provider.secrets)

    # --- embeddings ----------------------------------------------------------------------------
    def embeddings_request(self, body: dict[str, Any], upstream_model: str) -> UpstreamRequest:
        out = dict(body)
        out["model"] = upstream_model
        return UpstreamRequest("POST", self._url("embeddings"), self._headers(), dumps(out))

    def parse_embeddings_response(self, data: bytes, public_model: str,
                                  body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        obj = load_json_object(data)
        if obj.get("error") is not None:
            raise stream_error(obj, self.provider.name, self.provider.secrets)
        if not isinstance(obj.get("data"), list):
            raise malformed()
        obj["model"] = public_model
        obj.setdefault("object", "list")
        for item in obj["data"]:
            if isinstance(item, dict):
                item.setdefault("object", "embedding")
        u = obj.get("usage") or {}
        if isinstance(u, dict) and u.get("prompt_tokens") is not None:
            usage = Usage(prompt_tokens=int(u.get("prompt_tokens") or 0))
        else:
            usage = Usage(estimated=True)
        return obj, usage

    # --- errors / models -----------------------------------------------------------------------
    def parse_error(self, status: int, headers: dict[str, str], data: bytes) -> UpstreamError:
        return error_from_body(status, headers, data, provider=self.provider.name,
                               secrets=self.provider.secrets)

    def models_request(self) -> UpstreamRequest:
        return UpstreamRequest("GET", self._url("models"), self._headers(json_body=False))

    def parse_models(self, data: bytes) -> list[dict[str, Any]]:
        obj = load_json_object(data, "model list")
        items = obj.get("data")
        if not isinstance(items, list):
            raise malformed("model list")
        out = []
        for m in items:
            if isinstance(m, dict) and m.get("id"):
                entry = {"id": str(m["id"]), "kind": guess_kind(str(m["id"]))}
                if m.get("owned_by"):
                    entry["owned_by"] = m["owned_by"]
                out.append(entry)
        return out


# xAI grok-4 reasoning models answer 400 to these (compat/xai.md; medium confidence)
_GROK4_REJECTS = ("presence_penalty", "frequency_penalty", "stop")


class OpenAICompatibleAdapter(OpenAIAdapter):
    """Any server speaking the OpenAI Chat Completions wire format (see registry.PRESETS)."""

    type = "openai-compatible"
    label = "OpenAI-compatible"
    default_api_base = ""
    config_fields = ("responses_api",)
    secret_fields = ("api_key",)
    optional_secret_fields = ("api_key",)  # local servers (vLLM, LM Studio, llama.cpp) need none
    max_tokens_field = "max_tokens"
    responses_api_default = False  # most compatible servers speak chat completions only

    def prepare_chat_body(self, body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
        out = super().prepare_chat_body(body, upstream_model)
        if upstream_model.startswith("grok-4"):
            for key in _GROK4_REJECTS:
                out.pop(key, None)
        return out


class XAIAdapter(OpenAICompatibleAdapter):
    """xAI Grok: the OpenAI-compatible preset with its own type (no embeddings endpoint)."""

    type = "xai"
    label = "xAI (Grok)"
    default_api_base = "https://api.x.ai/v1"
    supports_embeddings = False
    responses_api_default = True  # xAI serves /v1/responses
    optional_secret_fields = ()
