"""Fixtures for the provider adapter tests.

Wire-format fixtures live outside the repo, in ``shared/provider-fixtures`` next to it; tests
that need them are skipped (with the path in the reason) when that folder is missing.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "provider-fixtures"

if str(REPO) not in sys.path:  # allow `import app` however pytest was started
    sys.path.insert(0, str(REPO))

from app.providers.base import ProviderConfig  # noqa: E402


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not (FIXTURES / "README.md").is_file():
        pytest.skip(f"provider wire-format fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def fx(fixtures_dir):
    """fx("openai/chat-stream-text.sse") -> bytes"""
    def read(rel: str) -> bytes:
        return (fixtures_dir / rel).read_bytes()
    return read


@pytest.fixture(scope="session")
def fxjson(fixtures_dir):
    """fxjson("openai/chat-response-text.json") -> parsed JSON"""
    def read(rel: str):
        return json.loads((fixtures_dir / rel).read_text(encoding="utf-8"))
    return read


def _splits(data: bytes, mode):
    if mode == "whole":
        return [data]
    if mode == "bytes":
        return [data[i:i + 1] for i in range(len(data))]
    rng = random.Random(mode)  # an int seed: random cut points
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 97)
        out.append(data[i:i + n])
        i += n
    return out


SPLIT_MODES = ["whole", "bytes", 1, 2, 3]


@pytest.fixture(params=SPLIT_MODES, ids=lambda m: f"split-{m}")
def split_mode(request):
    return request.param


@pytest.fixture(scope="session")
def run_decoder():
    """run_decoder(decoder, data, mode) -> all chunks from feed()s + close()."""
    def run(decoder, data: bytes, mode="whole"):
        chunks = []
        for piece in _splits(data, mode):
            chunks.extend(decoder.feed(piece))
        chunks.extend(decoder.close())
        return chunks
    return run


@pytest.fixture(scope="session")
def make_cfg():
    def make(type_: str, api_base: str = "", **kw) -> ProviderConfig:
        kw.setdefault("secrets", {"api_key": "sk-test-secret-key-123456"})
        return ProviderConfig(id=1, name=kw.pop("name", "prov"), type=type_, api_base=api_base,
                              **kw)
    return make


def collect_text(chunks) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks
                   if c["choices"])


def collect_tool_calls(chunks) -> dict[int, dict]:
    """Assemble streamed tool calls the way an OpenAI client does (by index)."""
    calls: dict[int, dict] = {}
    for c in chunks:
        for tc in c["choices"][0]["delta"].get("tool_calls") or []:
            slot = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
            if tc.get("id"):
                slot["id"] = tc["id"]
            fn = tc.get("function") or {}
            if fn.get("name"):
                slot["name"] = fn["name"]
            slot["arguments"] += fn.get("arguments") or ""
    return calls


@pytest.fixture(scope="session")
def assemble():
    class A:
        text = staticmethod(collect_text)
        tool_calls = staticmethod(collect_tool_calls)
    return A
