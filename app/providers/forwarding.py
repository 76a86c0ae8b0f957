"""The common part of the native front-door decoders (openai_responses, anthropic_messages):
SSE events parsed as JSON objects and handed one by one to the dialect's ``_event``, which updates
the decoder's state and returns the framed bytes to forward."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from .base import NativeStreamDecoder, Usage
from .common import loads, malformed
from .sse import SSEParser


def frame(type_: str, data: bytes) -> bytes:
    return b"event: " + type_.encode() + b"\ndata: " + data + b"\n\n"


class ForwardingDecoder(NativeStreamDecoder):
    # a data payload that is a marker, not an event (skipped)
    end_marker: ClassVar[str | None] = None

    def __init__(self, public_model: str, provider: str = "", secrets: dict | None = None):
        self.public_model = public_model
        self.provider, self.secrets = provider, secrets
        self._sse = SSEParser()
        self._done = False
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.error = None
        self.chars = 0
        self.final = None
        self.failed = None

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> list[bytes]:
        return list(self._events(self._sse.feed(data)))

    def close(self) -> list[bytes]:
        return list(self._events(self._sse.close()))

    def _events(self, events) -> Iterator[bytes]:
        for ev in events:
            if self._done:
                break
            payload = ev.data.strip()
            if not payload or payload == self.end_marker:
                continue
            try:
                obj = loads(payload)
            except ValueError:
                raise malformed("stream event") from None
            if not isinstance(obj, dict):
                raise malformed("stream event")
            yield self._event(obj.get("type") or ev.event or "", obj, payload)

    def _event(self, type_: str, obj: dict[str, Any], payload: str) -> bytes:
        """Update the state from one event; the bytes to forward for it."""
        raise NotImplementedError
