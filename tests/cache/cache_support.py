"""Helpers for the response-cache tests: the OpenAI fixtures, an SSE reader, a fake clock."""
from __future__ import annotations

import copy
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "provider-fixtures" / "openai"
T0 = 1_772_445_600.0          # 2026-03-02 10:00:00 UTC


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def sse_chunks(name: str) -> list[dict]:
    """The ``data:`` payloads of a recorded stream, ``[DONE]`` left out."""
    out = []
    for line in (FIXTURES / name).read_text().splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            if data != "[DONE]":
                out.append(json.loads(data))
    return out


def response(text: str = "Hello! How can I assist you today?", pad: int = 0, **top) -> dict:
    """A chat.completion with ``text`` (+ ``pad`` filler characters) as the answer."""
    r = copy.deepcopy(fixture("chat-response-text.json"))
    r["choices"][0]["message"]["content"] = text + "x" * pad
    r.update(top)
    return r


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t
