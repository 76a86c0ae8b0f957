"""Chat-completion stream chunks -> the Responses API's typed SSE events.

Emits, with a ``sequence_number`` on each: response.created, response.in_progress, then per
output item output_item.added, content_part.added / output_text.delta / output_text.done /
content_part.done (messages) or function_call_arguments.delta / .done (function calls),
output_item.done, and finally response.completed (or response.incomplete); an upstream failure
after the first byte becomes an ``error`` event followed by response.failed.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator

from app.providers.common import dumps
from app.providers.forwarding import frame

from . import translate as t


def sse(event: dict[str, Any]) -> bytes:
    return frame(event["type"], dumps(event))


class EventWriter:
    """Stateful translator: feed chat chunk dicts, get Responses events (dicts) back."""

    def __init__(self, envelope: dict[str, Any]):
        self.response = envelope
        self.seq = 0
        self.items: list[dict[str, Any]] = []
        self.message: dict[str, Any] | None = None  # the open message item
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> open call item
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False

    def _ev(self, type_: str, **fields) -> dict[str, Any]:
        ev = {"type": type_, "sequence_number": self.seq, **fields}
        self.seq += 1
        return ev

    def start(self) -> list[dict[str, Any]]:
        snap = copy.deepcopy(self.response)
        return [self._ev("response.created", response=snap),
                self._ev("response.in_progress", response=copy.deepcopy(snap))]

    # -- items
    def _open_message(self) -> list[dict[str, Any]]:
        item = t.message_item("", status="in_progress")
        item["content"] = []
        self.message = item
        self.items.append(item)
        idx = len(self.items) - 1
        return [self._ev("response.output_item.added", output_index=idx, item=copy.deepcopy(item)),
                self._ev("response.content_part.added", item_id=item["id"], output_index=idx,
                         content_index=0, part=t.text_part(""))]

    def _close_message(self) -> list[dict[str, Any]]:
        item, self.message = self.message, None
        if item is None:
            return []
        idx = self.items.index(item)
        text = item.pop("_text", "")
        part = t.text_part(text)
        item["content"], item["status"] = [part], "completed"
        return [self._ev("response.output_text.done", item_id=item["id"], output_index=idx,
                         content_index=0, text=text, logprobs=[]),
                self._ev("response.content_part.done", item_id=item["id"], output_index=idx,
                         content_index=0, part=part),
                self._ev("response.output_item.done", output_index=idx, item=copy.deepcopy(item))]

    def _close_calls(self) -> list[dict[str, Any]]:
        out = []
        for item in self.calls.values():
            idx = self.items.index(item)
            item["status"] = "completed"
            out += [self._ev("response.function_call_arguments.done", item_id=item["id"],
                             output_index=idx, arguments=item["arguments"]),
                    self._ev("response.output_item.done", output_index=idx, item=copy.deepcopy(item))]
        self.calls = {}
        return out

    # -- input
    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if isinstance(chunk.get("usage"), dict):
            self.usage = t.usage_of(chunk["usage"])
        for ch in chunk.get("choices") or ():
            if not isinstance(ch, dict) or ch.get("index", 0) != 0:
                continue
            delta = ch.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.message is None:
                    out += self._open_message()
                self.message["_text"] = self.message.get("_text", "") + text
                out.append(self._ev("response.output_text.delta", item_id=self.message["id"],
                                    output_index=self.items.index(self.message), content_index=0,
                                    delta=text, logprobs=[]))
            for tc in delta.get("tool_calls") or ():
                if not isinstance(tc, dict):
                    continue
                index = tc.get("index", 0)
                fn = tc.get("function") or {}
                item = self.calls.get(index)
                if item is None:
                    out += self._close_message()
                    item = t.call_item(tc.get("id") or "", fn.get("name") or "", "",
                                       status="in_progress")
                    self.calls[index] = item
                    self.items.append(item)
                    out.append(self._ev("response.output_item.added",
                                        output_index=len(self.items) - 1, item=copy.deepcopy(item)))
                args = fn.get("arguments")
                if isinstance(args, str) and args:
                    item["arguments"] += args
                    out.append(self._ev("response.function_call_arguments.delta", item_id=item["id"],
                                        output_index=self.items.index(item), delta=args))
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return out

    def complete(self) -> list[dict[str, Any]]:
        """After the chat stream's [DONE]: close every item and send the final response."""
        out = self._close_message() + self._close_calls()
        resp = t.finish(self.response, self.items, self.finish_reason, self.usage or t.usage_of(None))
        self.done = True
        kind = "response.completed" if resp["status"] == "completed" else "response.incomplete"
        return out + [self._ev(kind, response=copy.deepcopy(resp))]

    def fail(self, error: dict[str, Any], status: int = 500) -> list[dict[str, Any]]:
        """An upstream failure after the first byte: ``error``, then response.failed."""
        message = str(error.get("message") or "The upstream provider failed mid-stream.")
        code = error.get("code") if isinstance(error.get("code"), str) else None
        self.done = True
        for item in self.items:
            if item["type"] == "message" and "_text" in item:
                item["content"] = [t.text_part(item.pop("_text"))]
            item["status"] = "incomplete"
        resp = self.response
        resp.update(status="failed", output=self.items, usage=self.usage,
                    error={"code": t.error_code(status), "message": message})
        return [self._ev("error", code=code or t.error_code(status), message=message,
                         param=error.get("param")),
                self._ev("response.failed", response=copy.deepcopy(resp))]


def parse_chat_sse(piece: bytes) -> list[Any]:
    """The events of one piece of the gateway's own chat stream (``data: {...}\\n\\n``)."""
    from app.providers.common import loads
    out = []
    for line in piece.split(b"\n"):
        if line.startswith(b"data: "):
            data = line[6:].strip()
            out.append("[DONE]" if data == b"[DONE]" else loads(data))
    return out


def translate_stream(chat_chunks: Iterator[bytes], writer: EventWriter,
                     on_done=None) -> Iterator[bytes]:
    """Wrap the proxy's chat SSE stream; closing this generator closes the inner one (so a client
    disconnect still stops the upstream and bills what was delivered)."""
    try:
        for ev in writer.start():
            yield sse(ev)
        for piece in chat_chunks:
            for obj in parse_chat_sse(piece):
                if obj == "[DONE]":
                    events = writer.complete()
                elif isinstance(obj, dict) and obj.get("error") is not None:
                    err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
                    events = writer.fail(err, _status_of(err))
                else:
                    events = writer.feed(obj)
                for ev in events:
                    yield sse(ev)
        if not writer.done:  # the inner stream ended without [DONE] or error
            for ev in writer.fail({"message": "The upstream stream ended before it was complete.",
                                   "code": "stream_truncated"}, 502):
                yield sse(ev)
        if on_done is not None:
            on_done(writer)
    finally:
        close = getattr(chat_chunks, "close", None)
        if close is not None:
            close()


def _status_of(err: dict[str, Any]) -> int:
    kind = err.get("type")
    return 429 if kind in ("rate_limit_error", "rate_limit_exceeded") or err.get("code") == "rate_limit_exceeded" \
        else 400 if kind == "invalid_request_error" else 500
