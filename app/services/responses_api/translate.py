"""OpenAI Responses API <-> the internal chat-completions body, both ways (pure functions).

Requests: ``instructions`` + ``input`` (a string or items: messages with input_text /
input_image / input_file parts, ``function_call`` and ``function_call_output`` items) become
chat ``messages``; function tools, ``tool_choice``, ``parallel_tool_calls``, ``text.format``
(-> ``response_format``), ``reasoning.effort``, ``max_output_tokens``, ``temperature``, ``top_p``
and ``user`` map to their chat equivalents. Answers: a chat.completion becomes a ``response``
object (message and function_call output items, Responses-shaped usage).
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from app.services.completions import ProxyError

UNSUPPORTED = ("background", "conversation", "prompt")
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _bad(message: str, param: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param)


def _number(body: dict[str, Any], name: str) -> None:
    val = body.get(name)
    if val is not None and (isinstance(val, bool) or not isinstance(val, (int, float))):
        raise _bad(f"'{name}' must be a number", name)


# ------------------------------------------------------------------------------ request
def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``input`` as a list of items (a plain string is one user message)."""
    inp = body.get("input")
    if isinstance(inp, str):
        return [{"type": "message", "role": "user", "content": inp}]
    if isinstance(inp, list):
        for i, item in enumerate(inp):
            if not isinstance(item, dict):
                raise _bad(f"input[{i}] must be an object", f"input[{i}]")
        return inp
    if inp is None:
        return []
    raise _bad("'input' must be a string or an array of input items", "input")


def _part(part: Any, where: str, assistant: bool) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, dict):
        raise _bad(f"{where} must be an object", where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        if not isinstance(part.get("text"), str):
            raise _bad(f"{where}.text must be a string", f"{where}.text")
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal") or "")}
    if kind == "input_image" and not assistant:
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise _bad(f"{where}: only input_image parts with an image_url (https or data: URL) "
                       "are supported; file_id needs the provider's Files API", f"{where}.image_url")
        image = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and not assistant:
        file = {k: part[k] for k in ("file_data", "file_id", "filename") if isinstance(part.get(k), str)}
        if not (file.get("file_data") or file.get("file_id")):
            raise _bad(f"{where}: input_file needs file_data or file_id", where)
        return {"type": "file", "file": file}
    raise _bad(f"{where}: content part type {kind!r} is not supported", f"{where}.type")


def _content(content: Any, where: str, assistant: bool) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{where} must be a string or an array of content parts", where)
    parts = [_part(p, f"{where}[{j}]", assistant) for j, p in enumerate(content)]
    if assistant or all(p["type"] == "text" for p in parts) and len(parts) == 1:
        return "".join(p.get("text", "") for p in parts)
    return parts


def _tool_output(output: Any, where: str) -> Any:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        parts = [_part(p, f"{where}[{j}]", False) for j, p in enumerate(output)]
        if all(p["type"] == "text" for p in parts):
            return "".join(p["text"] for p in parts)
        return parts
    raise _bad(f"{where} must be a string or an array of content parts", where)


def items_to_messages(items: list[dict[str, Any]], where: str = "input") -> list[dict[str, Any]]:
    """Responses items -> chat messages (consecutive function calls join one assistant turn)."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = ROLES.get(item.get("role"))
            if role is None:
                raise _bad(f"{at}.role must be one of user, assistant, system, developer", f"{at}.role")
            messages.append({"role": role, "content": _content(item.get("content"), f"{at}.content",
                                                                role == "assistant")})
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise _bad(f"{at}: a function_call item needs call_id and name", at)
            args = item.get("arguments")
            call = {"id": call_id, "type": "function",
                    "function": {"name": name, "arguments": args if isinstance(args, str) else "{}"}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise _bad(f"{at}: a function_call_output item needs call_id", f"{at}.call_id")
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _tool_output(item.get("output"), f"{at}.output")})
        elif kind == "reasoning":
            continue  # reasoning items are the upstream's own state: nothing to translate
        else:
            raise _bad(f"{at}: input item type {kind!r} is not supported by this gateway "
                       "(message, function_call, function_call_output)", f"{at}.type")
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _bad(f"tools[{i}]: tool type {kind!r} is not supported; only function tools are "
                       "(built-in tools need a provider with native Responses support)",
                       f"tools[{i}].type")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise _bad(f"tools[{i}].name is required", f"tools[{i}].name")
        fn = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _bad("'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", "
               "\"name\": ...}", "tool_choice")


def _response_format(text: Any) -> tuple[dict[str, Any] | None, str | None]:
    if text is None:
        return None, None
    if not isinstance(text, dict):
        raise _bad("'text' must be an object", "text")
    fmt, verbosity = text.get("format"), text.get("verbosity")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None, verbosity
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return {"type": "json_object"}, verbosity
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise _bad("text.format json_schema needs a name and a schema", "text.format")
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}, verbosity
    raise _bad("text.format.type must be text, json_object or json_schema", "text.format.type")


def validate(body: dict[str, Any]) -> None:
    """Checks that do not depend on stored state (raise ProxyError 400)."""
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise ProxyError(400, "you must provide a model parameter", param="model", code="missing_model")
    for name in UNSUPPORTED:
        if body.get(name) not in (None, False):
            raise _bad(f"'{name}' is not supported by this gateway", name)
    for name in ("stream", "store", "parallel_tool_calls"):
        if name in body and body[name] is not None and not isinstance(body[name], bool):
            raise _bad(f"'{name}' must be a boolean", name)
    _number(body, "temperature")
    _number(body, "top_p")
    mot = body.get("max_output_tokens")
    if mot is not None and (isinstance(mot, bool) or not isinstance(mot, int) or mot < 1):
        raise _bad("'max_output_tokens' must be a positive integer", "max_output_tokens")
    meta = body.get("metadata")
    if meta is not None and (not isinstance(meta, dict) or len(meta) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in meta.items())):
        raise _bad("'metadata' must be an object of at most 16 string values (keys up to 64, "
                   "values up to 512 characters)", "metadata")
    if body.get("instructions") is not None and not isinstance(body["instructions"], str):
        raise _bad("'instructions' must be a string", "instructions")
    prev = body.get("previous_response_id")
    if prev is not None and not isinstance(prev, str):
        raise _bad("'previous_response_id' must be a string", "previous_response_id")


def to_chat(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The internal chat body for a (validated) Responses request; ``history`` = the stored items
    of the previous responses, oldest first."""
    items = input_items(body)
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    if history:
        messages += items_to_messages(history, "previous_response")
    messages += items_to_messages(items)
    if not messages:
        raise _bad("'input' must not be empty", "input")
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    for name in ("temperature", "top_p", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    fmt, verbosity = _response_format(body.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    if verbosity in ("low", "medium", "high"):
        chat["verbosity"] = verbosity
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") in ("minimal", "low", "medium", "high"):
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}  # usage for response.completed
    return chat


# ------------------------------------------------------------------------------ answers
def usage_of(u: dict[str, Any] | None) -> dict[str, Any]:
    """Chat usage -> Responses usage."""
    u = u or {}
    inp, out = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    cached = int(((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
    reasoning = int(((u.get("completion_tokens_details") or {}).get("reasoning_tokens")) or 0)
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": inp + out}


def message_item(text: str, item_id: str | None = None, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id or new_id("msg"), "type": "message", "status": status, "role": "assistant",
            "content": [text_part(text)]}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(call_id: str, name: str, arguments: str, item_id: str | None = None,
              status: str = "completed") -> dict[str, Any]:
    return {"id": item_id or new_id("fc"), "type": "function_call", "status": status,
            "call_id": call_id or new_id("call"), "name": name, "arguments": arguments}


def output_items(chat: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """(output items, finish_reason) of a chat.completion's first choice."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    items: list[dict[str, Any]] = []
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        items.append(message_item(content))
    if msg.get("refusal"):
        items.append({"id": new_id("msg"), "type": "message", "status": "completed",
                      "role": "assistant", "content": [{"type": "refusal", "refusal": msg["refusal"]}]})
    for tc in msg.get("tool_calls") or []:
        fn = (tc or {}).get("function") or {}
        args = fn.get("arguments")
        items.append(call_item(tc.get("id") or "", fn.get("name") or "",
                               args if isinstance(args, str) else "{}"))
    return items, choice.get("finish_reason")


def envelope(body: dict[str, Any], resp_id: str, created_at: int, model: str, store: bool) -> dict[str, Any]:
    """Every field of a ``response`` object that echoes the request."""
    return {
        "id": resp_id, "object": "response", "created_at": created_at, "status": "in_progress",
        "background": False, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": model, "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") if isinstance(
            body.get("parallel_tool_calls"), bool) else True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None}
        if isinstance(body.get("reasoning"), dict) else {"effort": None, "summary": None},
        "store": store,
        "temperature": body.get("temperature") if body.get("temperature") is not None else 1.0,
        "text": body.get("text") if isinstance(body.get("text"), dict) and body["text"].get("format")
        else {"format": {"type": "text"}, **({"verbosity": body["text"]["verbosity"]}
                                             if isinstance(body.get("text"), dict) and body["text"].get("verbosity") else {})},
        "tool_choice": body.get("tool_choice") if body.get("tool_choice") is not None else "auto",
        "tools": [dict({"strict": None, "description": None, "parameters": None}, **t)
                  for t in body.get("tools") or []],
        "top_p": body.get("top_p") if body.get("top_p") is not None else 1.0,
        "truncation": body.get("truncation") or "disabled", "usage": None,
        "user": body.get("user"), "metadata": body.get("metadata") or {},
    }


def finish(resp: dict[str, Any], items: list[dict[str, Any]], finish_reason: str | None,
           usage: dict[str, Any]) -> dict[str, Any]:
    """Complete an envelope with its output, status and usage."""
    resp["output"] = items
    resp["usage"] = usage
    if finish_reason == "length":
        resp["status"], resp["incomplete_details"] = "incomplete", {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        resp["status"], resp["incomplete_details"] = "incomplete", {"reason": "content_filter"}
    else:
        resp["status"] = "completed"
        resp["completed_at"] = int(time.time())
    return resp


def error_code(status: int) -> str:
    """A ResponseError code for an HTTP-like status."""
    return {429: "rate_limit_exceeded", 400: "invalid_prompt"}.get(status, "server_error")
