"""The Anthropic Messages API spoken natively: the gateway's ``POST /v1/messages`` passed through
to Anthropic providers (the client's body, ``model`` replaced by the upstream id; the answer,
JSON or events, forwarded with ``model`` set back to the public name). Usage comes from the
message's ``usage`` (``message_start`` + ``message_delta`` in a stream).
"""
from __future__ import annotations

from typing import Any

from .base import UpstreamError, Usage
from .common import dumps, error_for_status, load_json_object, malformed
from .forwarding import ForwardingDecoder, frame

DIALECT = "messages"


def failure(err: Any, status_of: dict[str, int], provider: str, secrets: dict | None) -> UpstreamError:
    err = err if isinstance(err, dict) else {}
    etype = err.get("type") or "api_error"
    return error_for_status(status_of.get(etype, 500), err.get("message") or "The upstream provider failed.",
                            provider=provider, secrets=secrets, overloaded=(etype == "overloaded_error"))


def output_chars(msg: dict[str, Any]) -> int:
    chars = 0
    for block in msg.get("content") or ():
        if isinstance(block, dict):
            if isinstance(block.get("text"), str):
                chars += len(block["text"])
            elif block.get("type") == "tool_use":
                chars += len(dumps(block.get("input") or {})) + len(str(block.get("name") or ""))
    return chars


class MessagesStreamDecoder(ForwardingDecoder):
    """Anthropic's SSE events forwarded as they are, ``message_start``'s model rewritten."""

    def __init__(self, public_model: str, usage_of, status_of: dict[str, int], provider: str = "",
                 secrets: dict | None = None):
        super().__init__(public_model, provider, secrets)
        self._usage_of, self._status_of = usage_of, status_of  # the adapter's usage reader
        self._counts: dict[str, int] = {}

    def _event(self, type_: str, obj: dict[str, Any], payload: str) -> bytes:
        raw = payload.encode()
        if type_ == "message_start" and isinstance(obj.get("message"), dict):
            obj["message"]["model"] = self.public_model
            self.usage = self._usage_of(self._counts, obj["message"].get("usage"))
            raw = dumps(obj)
        elif type_ == "content_block_delta":
            delta = obj.get("delta") or {}
            self.chars += len(delta.get("text") or delta.get("partial_json") or "")
        elif type_ == "message_delta":
            self.usage = self._usage_of(self._counts, obj.get("usage"))
            self.finish_reason = (obj.get("delta") or {}).get("stop_reason") or self.finish_reason
        elif type_ == "message_stop":
            self._done = True
        elif type_ == "error":
            self._done = True
            self.failed = failure(obj.get("error"), self._status_of, self.provider, self.secrets)
        return frame(type_, raw)

    def error_event(self, err: UpstreamError) -> bytes:
        return frame("error", dumps(error_body(err.status, err.message)))


# gateway status -> Anthropic error type (the statuses Anthropic documents for each)
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
               503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> dict[str, Any]:
    etype = ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": etype, "message": message}}


def parse_message(data: bytes, public_model: str, usage_of, status_of, provider: str,
                  secrets: dict | None) -> tuple[dict[str, Any], Usage]:
    obj = load_json_object(data)
    if obj.get("type") == "error":
        raise failure(obj.get("error"), status_of, provider, secrets)
    if not isinstance(obj.get("content"), list):
        raise malformed()
    obj["model"] = public_model
    if isinstance(obj.get("usage"), dict):
        return obj, usage_of({}, obj["usage"])
    return obj, Usage(0, -(-output_chars(obj) // 4), estimated=True)
