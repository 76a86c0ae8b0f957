"""Incremental parsers for streamed upstream bodies: Server-Sent Events and NDJSON.

Both accept arbitrary byte splits (a line, even a multi-byte UTF-8 character, may be cut anywhere
between two ``feed`` calls) and never do I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .base import UpstreamError
from .common import loads

_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass
class SSEEvent:
    event: str | None
    data: str
    id: str | None = None


class _LineSplitter:
    """Splits a byte stream into lines on CRLF, CR or LF, buffering partial lines."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._started = False

    def feed(self, data: bytes) -> list[bytes]:
        if data:
            self._buf += data
        if not self._started and len(self._buf) >= 3:
            self._started = True
            if self._buf[:3] == b"\xef\xbb\xbf":  # UTF-8 BOM
                del self._buf[:3]
        lines: list[bytes] = []
        pos = 0
        buf = self._buf
        while True:
            m = _EOL.search(buf, pos)
            if m is None:
                break
            # a lone CR at the very end may be the first half of a CRLF: wait for more bytes
            if m.group() == b"\r" and m.end() == len(buf):
                break
            lines.append(bytes(buf[pos:m.start()]))
            pos = m.end()
        if pos:
            del buf[:pos]
        return lines

    def close(self) -> list[bytes]:
        lines = self.feed(b"")
        rest = bytes(self._buf).rstrip(b"\r")
        self._buf.clear()
        if rest:
            lines.append(rest)
        return lines


class SSEParser:
    """Incremental ``text/event-stream`` parser (WHATWG rules).

    ``feed`` returns the events completed by the bytes given; ``close`` flushes an event that
    was not followed by a blank line (some recordings lack the final one).
    """

    def __init__(self) -> None:
        self._lines = _LineSplitter()
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        for raw in self._lines.feed(data):
            ev = self._line(raw)
            if ev is not None:
                out.append(ev)
        return out

    def close(self) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        for raw in self._lines.close():
            ev = self._line(raw)
            if ev is not None:
                out.append(ev)
        ev = self._dispatch()
        if ev is not None:
            out.append(ev)
        return out

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = None
            return None
        ev = SSEEvent(self._event, "\n".join(self._data), self._id)
        self._data = []
        self._event = None
        return ev

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


class NDJSONParser:
    """Incremental newline-delimited JSON parser (Ollama). Blank lines are skipped."""

    def __init__(self) -> None:
        self._lines = _LineSplitter()

    def feed(self, data: bytes) -> list[Any]:
        return [self._parse(l) for l in self._lines.feed(data) if l.strip()]

    def close(self) -> list[Any]:
        return [self._parse(l) for l in self._lines.close() if l.strip()]

    @staticmethod
    def _parse(line: bytes) -> Any:
        try:
            return loads(line)
        except ValueError:
            raise UpstreamError(502, "The upstream provider sent a malformed stream line.",
                                "api_error", "malformed_response", "malformed_response") from None
