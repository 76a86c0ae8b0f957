"""Replay a stored chat.completion as a stream, and assemble a streamed answer for storing.

``as_stream_chunks`` produces OpenAI's streaming shape (the recorded streams in
``shared/provider-fixtures/openai/*.sse``), per choice:

    1. ``delta: {"role": "assistant", "content": ""}`` (``content: null`` when the message has
       no text, ``refusal: null`` when the message carries that key);
    2. the text in pieces of about ``piece_chars`` characters cut after whitespace (a word
       longer than that is cut inside), then the refusal text the same way;
    3. each tool call: a first fragment ``{"index", "id", "type", "function": {"name",
       "arguments": ""}}``, then fragments ``{"index", "function": {"arguments": piece}}``;
       (a legacy ``function_call`` likewise, without index);
    4. non-empty ``annotations`` in a delta of their own;
    5. ``delta: {}`` with the ``finish_reason``.

Every chunk carries the response's ``id``, ``created``, ``model`` and ``system_fingerprint``
(and ``service_tier`` when the response has one); ``logprobs`` are null except on the last
delta before the finish chunk, which carries the choice's whole ``logprobs`` object (stored
logprobs cannot be re-aligned with new piece boundaries). The usage chunk and ``[DONE]`` are
the caller's.

``response_from_chunks`` is the inverse and accepts any OpenAI-compatible stream: content and
refusal concatenated, tool calls merged by ``index`` (first ``id``/``type``/``name`` wins,
``arguments`` concatenated), the last ``finish_reason`` of each choice, ``usage`` from the usage
chunk if there was one. It returns None for a stream that is not a complete answer: no choices,
a choice without finish_reason, a tool call without id or name, an error chunk.
"""
from __future__ import annotations

import re
from typing import Any

from app.providers.common import dumps_str

PIECE_CHARS = 20
_TOKEN = re.compile(r"\s+|\S+\s*")


def split_text(text: str, size: int = PIECE_CHARS) -> list[str]:
    """Pieces of about ``size`` characters, cut after whitespace; ``"".join`` gives ``text``."""
    pieces: list[str] = []
    buf = ""
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if buf and len(buf) + len(tok) > size:
            pieces.append(buf)
            buf = ""
        while len(tok) > size:               # a word longer than a piece: cut inside it
            pieces.append(tok[:size])
            tok = tok[size:]
        buf += tok
    if buf:
        pieces.append(buf)
    return pieces


def _split_args(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def as_stream_chunks(response: dict, piece_chars: int = PIECE_CHARS) -> list[dict]:
    """A stored chat.completion as chat.completion.chunk dicts (no usage chunk, no [DONE])."""
    head: dict[str, Any] = {
        "id": response.get("id"),
        "object": "chat.completion.chunk",
        "created": response.get("created"),
        "model": response.get("model"),
        "system_fingerprint": response.get("system_fingerprint"),
    }
    if "service_tier" in response:
        head["service_tier"] = response["service_tier"]
    chunks: list[dict] = []

    def emit(index: int, delta: dict, finish_reason=None, logprobs=None) -> None:
        chunk = dict(head)
        chunk["choices"] = [{"index": index, "delta": delta, "logprobs": logprobs,
                             "finish_reason": finish_reason}]
        chunks.append(chunk)

    for pos, choice in enumerate(response.get("choices") or ()):
        index = choice.get("index", pos)
        msg = choice.get("message") or {}
        content = msg.get("content")
        if isinstance(content, list):          # content parts (rare in answers): keep the text
            content = "".join(p.get("text", "") for p in content
                              if isinstance(p, dict) and p.get("type") == "text")
        deltas: list[dict] = []
        first: dict[str, Any] = {"role": msg.get("role") or "assistant",
                                 "content": "" if isinstance(content, str) else None}
        if "refusal" in msg:
            first["refusal"] = None
        deltas.append(first)
        if isinstance(content, str):
            deltas.extend({"content": p} for p in split_text(content, piece_chars))
        refusal = msg.get("refusal")
        if isinstance(refusal, str):
            deltas.extend({"refusal": p} for p in split_text(refusal, piece_chars))
        for i, call in enumerate(msg.get("tool_calls") or ()):
            kind = call.get("type") or "function"
            fn = call.get("function")
            if kind != "function" or not isinstance(fn, dict):
                deltas.append({"tool_calls": [{"index": i, **call}]})   # not streamable in parts
                continue
            args = fn.get("arguments") or ""
            if not isinstance(args, str):
                args = dumps_str(args)
            deltas.append({"tool_calls": [{"index": i, "id": call.get("id"), "type": kind,
                                           "function": {"name": fn.get("name"),
                                                        "arguments": ""}}]})
            deltas.extend({"tool_calls": [{"index": i, "function": {"arguments": p}}]}
                          for p in _split_args(args, piece_chars))
        fc = msg.get("function_call")
        if isinstance(fc, dict):
            deltas.append({"function_call": {"name": fc.get("name"), "arguments": ""}})
            deltas.extend({"function_call": {"arguments": p}}
                          for p in _split_args(fc.get("arguments") or "", piece_chars))
        if msg.get("annotations"):
            deltas.append({"annotations": msg["annotations"]})
        logprobs = choice.get("logprobs")
        for j, delta in enumerate(deltas):
            emit(index, delta, logprobs=logprobs if j == len(deltas) - 1 else None)
        emit(index, {}, finish_reason=choice.get("finish_reason"))
    return chunks


class _Choice:
    __slots__ = ("role", "content", "refusal", "has_refusal", "tools", "fn", "annotations",
                 "logprobs", "finish_reason")

    def __init__(self):
        self.role = None
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.has_refusal = False
        self.tools: dict[int, dict] = {}
        self.fn: dict | None = None
        self.annotations: list | None = None
        self.logprobs: dict | None = None
        self.finish_reason = None


def _merge_logprobs(acc: dict | None, lp: Any) -> dict | None:
    if not isinstance(lp, dict):
        return acc
    if acc is None:
        acc = {}
    for k, v in lp.items():
        if isinstance(v, list):
            acc.setdefault(k, [])
            if isinstance(acc[k], list):
                acc[k].extend(v)
        elif k not in acc or acc[k] is None:
            acc[k] = v
    return acc


def response_from_chunks(chunks: list[dict]) -> dict | None:
    """Assemble a chat.completion from streamed chunks; None if the stream is incomplete."""
    top: dict[str, Any] = {}
    usage = None
    choices: dict[int, _Choice] = {}
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error") is not None:
            return None
        for k in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if k in chunk and (top.get(k) in (None, "", 0)) and chunk[k] not in (None, "", 0):
                top[k] = chunk[k]
            elif k in chunk:
                top.setdefault(k, chunk[k])
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for pos, ch in enumerate(chunk.get("choices") or ()):
            if not isinstance(ch, dict):
                continue
            index = ch.get("index", pos)
            c = choices.get(index)
            if c is None:
                c = choices[index] = _Choice()
            delta = ch.get("delta")
            if isinstance(delta, dict):
                _apply_delta(c, delta)
            c.logprobs = _merge_logprobs(c.logprobs, ch.get("logprobs"))
            if ch.get("finish_reason") is not None:
                c.finish_reason = ch["finish_reason"]
    if not choices:
        return None
    out_choices = []
    for index in sorted(choices):
        c = choices[index]
        if c.finish_reason is None:
            return None
        msg: dict[str, Any] = {"role": c.role or "assistant",
                               "content": None if c.content is None else "".join(c.content)}
        if c.has_refusal:
            msg["refusal"] = None if c.refusal is None else "".join(c.refusal)
        if c.annotations is not None:
            msg["annotations"] = c.annotations
        if c.tools:
            calls = []
            for i in sorted(c.tools):
                t = c.tools[i]
                if not t.get("id") or not t["function"].get("name"):
                    return None
                calls.append({"id": t["id"], "type": t.get("type") or "function",
                              "function": {"name": t["function"]["name"],
                                           "arguments": "".join(t["function"]["arguments"])}})
            msg["tool_calls"] = calls
        if c.fn is not None:
            msg["function_call"] = {"name": c.fn.get("name"),
                                    "arguments": "".join(c.fn["arguments"])}
        out_choices.append({"index": index, "message": msg, "logprobs": c.logprobs,
                            "finish_reason": c.finish_reason})
    response: dict[str, Any] = {"id": top.get("id"), "object": "chat.completion",
                                "created": top.get("created"), "model": top.get("model"),
                                "choices": out_choices}
    if usage is not None:
        response["usage"] = usage
    if "system_fingerprint" in top:
        response["system_fingerprint"] = top["system_fingerprint"]
    if "service_tier" in top:
        response["service_tier"] = top["service_tier"]
    return response


def _apply_delta(c: _Choice, delta: dict) -> None:
    if delta.get("role"):
        c.role = c.role or delta["role"]
    text = delta.get("content")
    if isinstance(text, str):
        if c.content is None:
            c.content = []
        c.content.append(text)
    if "refusal" in delta:
        c.has_refusal = True
        if isinstance(delta["refusal"], str):
            if c.refusal is None:
                c.refusal = []
            c.refusal.append(delta["refusal"])
    if delta.get("annotations"):
        c.annotations = (c.annotations or []) + list(delta["annotations"])
    for pos, frag in enumerate(delta.get("tool_calls") or ()):
        if not isinstance(frag, dict):
            continue
        i = frag.get("index", pos)
        t = c.tools.get(i)
        if t is None:
            t = c.tools[i] = {"id": None, "type": None, "function": {"name": None,
                                                                       "arguments": []}}
        if frag.get("id") and not t["id"]:
            t["id"] = frag["id"]
        if frag.get("type") and not t["type"]:
            t["type"] = frag["type"]
        fn = frag.get("function")
        if isinstance(fn, dict):
            if fn.get("name") and not t["function"]["name"]:
                t["function"]["name"] = fn["name"]
            if isinstance(fn.get("arguments"), str):
                t["function"]["arguments"].append(fn["arguments"])
    fc = delta.get("function_call")
    if isinstance(fc, dict):
        if c.fn is None:
            c.fn = {"name": None, "arguments": []}
        if fc.get("name") and not c.fn["name"]:
            c.fn["name"] = fc["name"]
        if isinstance(fc.get("arguments"), str):
            c.fn["arguments"].append(fc["arguments"])
