"""The proxy's chat SSE stream -> Anthropic's event sequence: message_start, ping, then per block
content_block_start / content_block_delta (text_delta, input_json_delta) / content_block_stop,
then message_delta (stop_reason, usage) and message_stop; a failure after the first byte is an
``error`` event (and the stream ends, as Anthropic's does).
"""
from __future__ import annotations

from typing import Any, Iterator

from app.providers.anthropic_messages import error_body
from app.providers.common import dumps
from app.providers.forwarding import frame

from . import translate as t
from app.services.responses_api.stream import parse_chat_sse


def sse(type_: str, data: dict[str, Any]) -> bytes:
    return frame(type_, dumps({"type": type_, **data}))


class EventWriter:
    def __init__(self, model: str, body: dict[str, Any], input_estimate: int):
        self.model, self.body = model, body
        self.input_estimate = input_estimate
        self.index = -1
        self.open: str | None = None  # "text" | "tool_use"
        self.tools: dict[int, int] = {}  # chat tool-call index -> block index
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False

    def start(self) -> list[bytes]:
        msg = {"id": t.new_id(), "type": "message", "role": "assistant", "model": self.model, "content": [],
               "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": self.input_estimate, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 0, "output_tokens": 1}}
        return [sse("message_start", {"message": msg}), sse("ping", {})]

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [sse("content_block_stop", {"index": self.index})]

    def _open(self, block: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.open = block["type"]
        return out + [sse("content_block_start", {"index": self.index, "content_block": block})]

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for ch in chunk.get("choices") or ():
            delta = ch.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.open != "text":
                    out += self._open({"type": "text", "text": ""})
                out.append(sse("content_block_delta", {"index": self.index,
                                                       "delta": {"type": "text_delta", "text": text}}))
            for tc in delta.get("tool_calls") or ():
                ti = tc.get("index", 0)
                fn = tc.get("function") or {}
                if ti not in self.tools:
                    out += self._open({"type": "tool_use", "id": tc.get("id") or f"toolu_{self.index + 1}",
                                       "name": fn.get("name") or "", "input": {}})
                    self.tools[ti] = self.index
                if fn.get("arguments") and self.tools[ti] == self.index:
                    out.append(sse("content_block_delta", {"index": self.index, "delta": {
                        "type": "input_json_delta", "partial_json": fn["arguments"]}}))
            if ch.get("finish_reason"):
                self.finish = ch["finish_reason"]
        return out

    def complete(self) -> list[bytes]:
        self.done = True
        usage = t.usage_of(self.usage) if self.usage else {"output_tokens": 0}
        return self._close() + [
            sse("message_delta", {"delta": {"stop_reason": t.stop_reason(self.finish),
                                            "stop_sequence": None}, "usage": usage}),
            sse("message_stop", {})]

    def fail(self, status: int, message: str) -> list[bytes]:
        self.done = True
        return [frame("error", dumps(error_body(status, message)))]


def translate_stream(chat_chunks: Iterator[bytes], writer: EventWriter) -> Iterator[bytes]:
    """Wrap the proxy's chat stream; closing this closes the inner one (a client disconnect still
    stops the upstream and bills what was delivered)."""
    try:
        yield from writer.start()
        for piece in chat_chunks:
            for obj in parse_chat_sse(piece):
                if obj == "[DONE]":
                    yield from writer.complete()
                elif isinstance(obj, dict) and obj.get("error") is not None:
                    err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
                    status = 429 if err.get("type") == "rate_limit_error" else \
                        504 if err.get("type") == "timeout_error" else 500
                    yield from writer.fail(status, err.get("message") or "The upstream failed.")
                elif isinstance(obj, dict):
                    yield from writer.feed(obj)
        if not writer.done:
            yield from writer.fail(502, "The upstream stream ended before it was complete.")
    finally:
        close = getattr(chat_chunks, "close", None)
        if close is not None:
            close()
