"""Cache keys and the cacheability decision for OpenAI-shaped chat completion requests.

The key is a sha256 over a canonical form of the request: what the model is asked and every
parameter that could change the answer. Two requests with the same key must be
interchangeable, so the rule is *deny-list*, not allow-list: every body field is part of the key
except the few known not to change the answer (``stream``, ``stream_options``, ``user``, request
ids and bookkeeping fields). An unknown or vendor-specific parameter (``top_k``, ``modalities``,
``prediction``, ``verbosity``...) therefore splits the cache instead of returning an answer
computed for different settings: a spurious miss costs one upstream call, a wrong hit returns a
wrong answer.

Equivalences folded into one key (each a no-op for the upstream):
    * dict key order, anywhere;
    * ``1.0`` and ``1`` (floats with an integral value become ints);
    * a string ``content`` and a list of text parts holding only that text
      (``"hi"`` == ``[{"type": "text", "text": "hi"}]``); several text parts are NOT joined;
      image/audio/file parts are kept as they are;
    * ``None`` values at the top level and in a message (``"temperature": null`` == absent,
      an assistant's ``"content": null`` == absent);
    * ``max_completion_tokens`` and ``max_tokens`` (the same cap; when both are given both count);
    * ``stop``: a string, a one-element list, a list in any order with duplicates; empty == absent;
    * defaults that every provider applies the same way: ``n: 1``, ``logprobs: false``,
      ``frequency_penalty``/``presence_penalty: 0``, ``parallel_tool_calls: true``,
      ``tool_choice: "auto"`` with tools / ``"none"`` without, ``logit_bias: {}``, ``tools: []``.
      ``temperature`` and ``top_p`` defaults are NOT folded (1 for OpenAI and Anthropic, 0.8
      for Ollama: absent and 1 can differ behind the same public model name).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

from app.providers.common import dumps

KEY_VERSION = 1

# Fields that never change the answer. ``model`` is replaced by the public model name.
IGNORED = frozenset({
    "model", "messages", "stream", "stream_options", "user", "safety_identifier",
    "prompt_cache_key", "prompt_cache_retention", "metadata", "store", "service_tier",
    "request_id", "x_request_id", "idempotency_key",
})
# Parameter -> the value that means "absent" (folded so absent == default).
_DEFAULTS: dict[str, Any] = {
    "n": 1, "logprobs": False, "frequency_penalty": 0, "presence_penalty": 0,
    "parallel_tool_calls": True, "logit_bias": {}, "tools": [], "functions": [],
}


def _is_default(v: Any, default: Any) -> bool:
    """``v`` is the default, type included (``True`` is not ``1``, ``0`` is ``0.0``)."""
    if isinstance(default, bool) or isinstance(v, bool):
        return v is default
    if isinstance(default, (int, float)):
        return isinstance(v, (int, float)) and v == default
    return type(v) is type(default) and v == default


def _canon(value: Any) -> Any:
    """Sorted dict keys all the way down; integral floats as ints (``1.0`` -> ``1``)."""
    if isinstance(value, dict):
        return {str(k): _canon(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _content(content: Any) -> Any:
    """String content == the list holding just that text part; other parts kept as they are."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        parts = []
        for part in content:
            if (isinstance(part, dict) and part.get("type") == "text" and len(part) == 2
                    and isinstance(part.get("text"), str)):
                parts.append(part["text"])          # a plain string stands for a text part
            else:
                parts.append(_canon(part))
        return parts
    return _canon(content)


def _message(msg: Any) -> Any:
    if not isinstance(msg, dict):
        return _canon(msg)
    out = {}
    for k in sorted(msg, key=str):
        v = msg[k]
        if v is None:
            continue
        out[str(k)] = _content(v) if k == "content" else _canon(v)
    return out


def _params(body: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for k, v in body.items():
        if k in IGNORED or v is None:
            continue
        if k in _DEFAULTS and _is_default(v, _DEFAULTS[k]):
            continue
        params[k] = v
    if "max_completion_tokens" in params and "max_tokens" not in params:
        params["max_tokens"] = params.pop("max_completion_tokens")
    if "stop" in params:
        stop = params["stop"]
        if isinstance(stop, str):
            stop = [stop]
        if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            stop = sorted(set(stop))
            if stop:
                params["stop"] = stop
            else:
                del params["stop"]
    has_tools = bool(params.get("tools") or params.get("functions"))
    if params.get("tool_choice") == ("auto" if has_tools else "none"):
        del params["tool_choice"]
    if params.get("function_call") == ("auto" if has_tools else "none"):
        del params["function_call"]
    return {k: _canon(params[k]) for k in sorted(params)}


def cache_key(body: dict, model_name: str, scope: str = "") -> str:
    """sha256 hex of the canonical request (see the module docstring for what counts)."""
    messages = body.get("messages")
    canonical = {
        "v": KEY_VERSION,
        "scope": scope,
        "model": model_name,
        "messages": ([_message(m) for m in messages] if isinstance(messages, list)
                     else _canon(messages)),
        "params": _params(body),
    }
    return hashlib.sha256(dumps(canonical)).hexdigest()


# --- cacheability ---------------------------------------------------------------------------------
# Reasons. Eligible (the cache may be used):
OK_DETERMINISTIC = "temperature_zero"   # temperature == 0: greedy decoding
OK_OPT_IN = "opt_in"                    # x-gateway-cache: on
BYPASS = "bypass"                       # Cache-Control/Pragma no-cache (or max-age=0): no lookup,
                                        # the fresh answer is stored (a refresh)
NO_STORE = "no_store"                   # Cache-Control no-store: lookup allowed, nothing stored
BYPASS_NO_STORE = "bypass_no_store"     # both: the cache is not touched
# Not eligible (neither lookup nor store):
DISABLED = "disabled"                   # x-gateway-cache: off
NOT_CHAT = "not_chat"                   # no messages list: not a chat completion request
TEMPERATURE_UNSET = "temperature_unset"  # default temperature is 1: sampled
TEMPERATURE_NONZERO = "temperature_nonzero"
TEMPERATURE_INVALID = "temperature_invalid"
MULTIPLE_CHOICES = "n_gt_1"             # n > 1 asks for different samples
TOOLS = "tools"                         # tool calls depend on outside state
AUDIO = "audio"                         # audio output carries an id that expires upstream

LOOKUP_REASONS = frozenset({OK_DETERMINISTIC, OK_OPT_IN, NO_STORE})
STORE_REASONS = frozenset({OK_DETERMINISTIC, OK_OPT_IN, BYPASS})


@dataclass(frozen=True)
class Decision:
    lookup: bool     # serve a stored answer if there is one
    store: bool      # store the upstream answer
    reason: str


def _header_map(headers: Any) -> dict[str, str]:
    if not headers:
        return {}
    items = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in items}


def _directives(value: str) -> set[str]:
    return {d.strip().lower().replace(" ", "") for d in value.split(",") if d.strip()}


def decide(body: dict, headers: Mapping[str, str] | None) -> Decision:
    """Whether to look up and whether to store, with the reason (see the reason constants)."""
    h = _header_map(headers)
    switch = h.get("x-gateway-cache", "").strip().lower()
    if switch in ("off", "0", "false", "no"):
        return Decision(False, False, DISABLED)
    opt_in = switch in ("on", "1", "true", "yes")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return Decision(False, False, NOT_CHAT)
    if not opt_in:
        temp = body.get("temperature")
        if temp is None:
            return Decision(False, False, TEMPERATURE_UNSET)
        if isinstance(temp, bool) or not isinstance(temp, (int, float)):
            return Decision(False, False, TEMPERATURE_INVALID)
        if temp != 0:
            return Decision(False, False, TEMPERATURE_NONZERO)
        n = body.get("n")
        if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and n <= 1):
            return Decision(False, False, MULTIPLE_CHOICES)
        if body.get("tools") or body.get("functions"):
            return Decision(False, False, TOOLS)
        modalities = body.get("modalities")
        if body.get("audio") or (isinstance(modalities, list) and "audio" in modalities):
            return Decision(False, False, AUDIO)
    cc = _directives(h.get("cache-control", ""))
    no_cache = ("no-cache" in cc or "max-age=0" in cc
                or "no-cache" in _directives(h.get("pragma", "")))
    no_store = "no-store" in cc
    if no_cache and no_store:
        return Decision(False, False, BYPASS_NO_STORE)
    if no_cache:
        return Decision(False, True, BYPASS)
    if no_store:
        return Decision(True, False, NO_STORE)
    return Decision(True, True, OK_OPT_IN if opt_in else OK_DETERMINISTIC)


def cacheable(body: dict, headers: dict[str, str]) -> tuple[bool, str]:
    """``(lookup, reason)``: may a stored answer be served for this request, and why (not).

    ``lookup`` is False for ``"bypass"`` (no-cache) although the fresh answer should still be
    stored; ``lookup`` is True for ``"no_store"`` although nothing may be stored. Use
    :func:`may_store` (or :func:`decide`) for the store side.
    """
    d = decide(body, headers)
    return d.lookup, d.reason


def may_store(reason: str) -> bool:
    """Whether the upstream answer to a request with this :func:`cacheable` reason is stored."""
    return reason in STORE_REASONS
