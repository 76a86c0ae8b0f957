"""The OpenAI Responses API spoken natively (OpenAI, Azure OpenAI's v1 surface, and compatible
servers that enable it): the gateway's ``POST /v1/responses`` is then passed through instead of
being translated into chat completions.

What changes on the way: ``model`` becomes the upstream id and back the public name; ``store``
is forced off upstream and ``previous_response_id`` removed (the gateway keeps stored responses
itself and expands a chain into ``input``, so chains work across providers and fallbacks); usage comes from ``usage.input_tokens`` /
``output_tokens`` (``response.completed`` in a stream). Everything else is forwarded as is.
"""
from __future__ import annotations

from typing import Any

from .base import UpstreamError, Usage
from .common import dumps, error_for_status, extract_error_fields, load_json_object, malformed
from .forwarding import ForwardingDecoder, frame

DIALECT = "responses"
_RESPONSE_EVENTS = ("response.created", "response.in_progress", "response.completed",
                    "response.incomplete", "response.failed", "response.queued")
_DELTA_EVENTS = ("response.output_text.delta", "response.function_call_arguments.delta",
                 "response.refusal.delta", "response.reasoning_summary_text.delta")


def usage_of(u: Any) -> Usage | None:
    """Responses API usage -> Usage (None when absent)."""
    if not isinstance(u, dict):
        return None
    details = u.get("input_tokens_details") if isinstance(u.get("input_tokens_details"), dict) else {}
    try:
        return Usage(int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0),
                     int(details.get("cached_tokens") or 0))
    except (TypeError, ValueError):
        return None


def output_chars(resp: dict[str, Any]) -> int:
    """Characters of generated text and call arguments in a response's output items."""
    chars = 0
    for item in resp.get("output") or ():
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            chars += len(item["arguments"]) + len(str(item.get("name") or ""))
        for part in item.get("content") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                chars += len(part["text"])
    return chars


def _rewrite(resp: Any, public_model: str) -> None:
    if isinstance(resp, dict):
        resp["model"] = public_model


def native_body(body: dict[str, Any], upstream_model: str, defaults) -> dict[str, Any]:
    """The upstream body: the client's, with the upstream model, no server-side storage and the
    provider's defaults where the client left a field out."""
    out = dict(body)
    out["model"] = upstream_model
    out["store"] = False
    out.pop("previous_response_id", None)  # the gateway expanded the chain into ``input``
    if defaults.default_temperature is not None and out.get("temperature") is None:
        out["temperature"] = defaults.default_temperature
    if defaults.default_max_tokens is not None and out.get("max_output_tokens") is None:
        out["max_output_tokens"] = defaults.default_max_tokens
    return out


def parse_response(data: bytes, public_model: str, provider: str, secrets: dict | None) -> tuple[dict[str, Any], Usage]:
    obj = load_json_object(data)
    if obj.get("error") is not None and not isinstance(obj.get("output"), list):
        raise failure(obj.get("error"), provider, secrets)
    if not isinstance(obj.get("output"), list):
        raise malformed()
    _rewrite(obj, public_model)
    usage = usage_of(obj.get("usage"))
    if usage is None:  # the core estimates the prompt; the output is counted here
        usage = Usage(0, -(-output_chars(obj) // 4), estimated=True)
    return obj, usage


def failure(err: Any, provider: str, secrets: dict | None) -> UpstreamError:
    """UpstreamError for a Responses ``error`` object (``{"code", "message"}``) or event."""
    message, _type, code, param = extract_error_fields({"error": err} if isinstance(err, dict) else err)
    status = 429 if code in ("rate_limit_exceeded", "insufficient_quota") else \
        400 if code in ("invalid_prompt", "invalid_request_error", "context_length_exceeded") else 502
    return error_for_status(status, message or "The upstream provider failed the response.",
                            provider=provider, code=code, param=param, secrets=secrets)


class ResponsesStreamDecoder(ForwardingDecoder):
    """The Responses API's typed SSE events, forwarded with the model name rewritten."""

    end_marker = "[DONE]"

    def __init__(self, public_model: str, provider: str = "", secrets: dict | None = None):
        super().__init__(public_model, provider, secrets)
        self.seq = -1  # the last sequence_number forwarded

    def _event(self, type_: str, obj: dict[str, Any], payload: str) -> bytes:
        if isinstance(obj.get("sequence_number"), int):
            self.seq = obj["sequence_number"]
        if type_ in _DELTA_EVENTS and isinstance(obj.get("delta"), str):
            self.chars += len(obj["delta"])
            return frame(type_, payload.encode())
        if type_ in _RESPONSE_EVENTS:
            resp = obj.get("response")
            _rewrite(resp, self.public_model)
            if type_ in ("response.completed", "response.incomplete") and isinstance(resp, dict):
                self.final, self._done = resp, True
                self.usage = usage_of(resp.get("usage"))
                self.finish_reason = "stop" if type_ == "response.completed" else "length"
            elif type_ == "response.failed":
                self._done = True
                resp = resp if isinstance(resp, dict) else {}
                self.usage = usage_of(resp.get("usage"))
                self.failed = self.failed or failure(resp.get("error"), self.provider, self.secrets)
            return frame(type_, dumps(obj))
        if type_ == "error":  # usually followed by response.failed; the stream may also just end
            self.failed = failure(obj, self.provider, self.secrets)
        return frame(type_, payload.encode())

    def error_event(self, err: UpstreamError) -> bytes:
        self.seq += 1
        return frame("error", dumps({"type": "error", "sequence_number": self.seq,
                                     "code": err.code or err.error_class, "message": err.message,
                                     "param": err.param}))
