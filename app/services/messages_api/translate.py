"""Anthropic Messages request -> the internal chat body, and a chat answer -> an Anthropic message."""
from __future__ import annotations

import json
import uuid
from typing import Any

from app.services.completions import ProxyError

ROLES = ("user", "assistant")
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}


def new_id() -> str:
    return "msg_" + uuid.uuid4().hex[:24]


def _bad(message: str, param: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param, code="invalid_request")


def _text_of(content: Any, where: str) -> str:
    """A string, or the text of a list of text blocks (system, tool_result content)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, b in enumerate(content):
            if not isinstance(b, dict) or b.get("type") not in ("text", "image"):
                raise _bad(f"{where}.{i}: expected a text block", f"{where}.{i}")
            if b.get("type") == "text":
                if not isinstance(b.get("text"), str):
                    raise _bad(f"{where}.{i}.text: Field required", f"{where}.{i}.text")
                parts.append(b["text"])
        return "\n".join(parts)
    if content is None:
        return ""
    raise _bad(f"{where}: Input should be a string or a list of blocks", where)


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source")
    if not isinstance(src, dict):
        raise _bad(f"{where}.source: Field required", f"{where}.source")
    if src.get("type") == "base64" and isinstance(src.get("data"), str) and isinstance(src.get("media_type"), str):
        url = f"data:{src['media_type']};base64,{src['data']}"
    elif src.get("type") == "url" and isinstance(src.get("url"), str):
        url = src["url"]
    else:
        raise _bad(f"{where}.source: expected a base64 (media_type, data) or url source", f"{where}.source")
    return {"type": "image_url", "image_url": {"url": url}}


def _user_turn(content: Any, where: str) -> list[dict[str, Any]]:
    """One Anthropic user turn -> chat messages: tool results first (role tool), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list) or not content:
        raise _bad(f"{where}.content: Input should be a string or a non-empty list of blocks", f"{where}.content")
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, b in enumerate(content):
        at = f"{where}.content.{i}"
        if not isinstance(b, dict):
            raise _bad(f"{at}: Input should be an object", at)
        kind = b.get("type")
        if kind == "text":
            if not isinstance(b.get("text"), str):
                raise _bad(f"{at}.text: Field required", f"{at}.text")
            parts.append({"type": "text", "text": b["text"]})
        elif kind == "image":
            parts.append(_image(b, at))
        elif kind == "tool_result":
            if not isinstance(b.get("tool_use_id"), str):
                raise _bad(f"{at}.tool_use_id: Field required", f"{at}.tool_use_id")
            text = _text_of(b.get("content"), f"{at}.content")
            if b.get("is_error"):
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": b["tool_use_id"], "content": text})
        else:
            raise _bad(f"{at}.type: block type {kind!r} is not supported by this gateway", f"{at}.type")
    if parts:
        plain = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "\n".join(p["text"] for p in parts) if plain else parts})
    return out


def _assistant_turn(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise _bad(f"{where}.content: Input should be a string or a list of blocks", f"{where}.content")
    texts, calls = [], []
    for i, b in enumerate(content):
        at = f"{where}.content.{i}"
        if not isinstance(b, dict):
            raise _bad(f"{at}: Input should be an object", at)
        if b.get("type") == "text" and isinstance(b.get("text"), str):
            texts.append(b["text"])
        elif b.get("type") == "tool_use":
            if not isinstance(b.get("id"), str) or not isinstance(b.get("name"), str):
                raise _bad(f"{at}: tool_use needs id and name", at)
            calls.append({"id": b["id"], "type": "function",
                          "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})}})
        elif b.get("type") in ("thinking", "redacted_thinking"):
            continue  # no chat-completions equivalent
        else:
            raise _bad(f"{at}.type: block type {b.get('type')!r} is not supported here", f"{at}.type")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def validate(body: dict[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise _bad("model: Field required", "model")
    mt = body.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
        raise _bad("max_tokens: Field required (a positive integer)", "max_tokens")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _bad("messages: Field required (a non-empty list)", "messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'", f"messages.{i}.role")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _bad("stream: Input should be a valid boolean", "stream")
    for name in ("temperature", "top_p"):
        v = body.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _bad(f"{name}: Input should be a valid number", name)
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise _bad("stop_sequences: Input should be a list of strings", "stop_sequences")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("tools: Input should be a valid list", "tools")
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise _bad(f"tools.{i}.name: Field required", f"tools.{i}.name")
            if t.get("type") not in (None, "custom") or not isinstance(t.get("input_schema"), dict):
                raise _bad(f"tools.{i}: only custom tools with an input_schema are supported", f"tools.{i}")


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    if choice is None:
        return None, None
    if not isinstance(choice, dict):
        raise _bad("tool_choice: Input should be an object", "tool_choice")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise _bad("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", "tool_choice")


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The internal chat body (``validate`` first)."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        text = _text_of(system, "system")
        if text:
            messages.append({"role": "system", "content": text})
    for i, m in enumerate(body["messages"]):
        if m["role"] == "user":
            messages += _user_turn(m.get("content"), f"messages.{i}")
        else:
            messages.append(_assistant_turn(m.get("content"), f"messages.{i}"))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages, "max_tokens": body["max_tokens"]}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"][:4]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # the final message_delta carries it
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if isinstance(user, str) and user:
        chat["user"] = user
    if body.get("tools"):
        chat["tools"] = [{"type": "function", "function": {
            "name": t["name"], **({"description": t["description"]} if isinstance(t.get("description"), str) else {}),
            "parameters": t["input_schema"]}} for t in body["tools"]]
        choice, parallel = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
        if parallel is not None:
            chat["parallel_tool_calls"] = parallel
    return chat


def usage_of(u: dict[str, Any] | None) -> dict[str, Any]:
    u = u or {}
    cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    return {"input_tokens": max(0, int(u.get("prompt_tokens") or 0) - cached),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached,
            "output_tokens": int(u.get("completion_tokens") or 0)}


def stop_reason(finish: str | None) -> str:
    return STOP_REASONS.get(finish or "stop", "end_turn")


def tool_input(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"value": value}


def from_chat(obj: dict[str, Any], model: str, body: dict[str, Any]) -> dict[str, Any]:
    choice = (obj.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = msg.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text") or "" for p in text if isinstance(p, dict))
    if text:
        content.append({"type": "text", "text": text})
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") or {}
        content.append({"type": "tool_use", "id": tc.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                        "name": fn.get("name"), "input": tool_input(fn.get("arguments"))})
    return {"id": new_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason(choice.get("finish_reason")), "stop_sequence": None,
            "usage": usage_of(obj.get("usage"))}
