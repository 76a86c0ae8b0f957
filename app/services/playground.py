"""The playground: console users chat with models through the very proxy path apps use.

Each user gets their own gateway key (created on first use, listed with the other keys, so an
admin can give it limits and a budget like any key); every playground call is an ordinary
`Proxy.chat` call with that key, so routing, limits, budgets, cache, sensitivity policy and
usage records are exactly what an application would get. This module validates what the page
sends, builds the OpenAI request, turns the proxy's result into the page's event stream and
keeps conversations per user.
"""
from __future__ import annotations

import json
import pprint
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Callable

from app.extensions import db
from app.models import GatewayKey, PlaygroundConversation, PlaygroundProfile, User, utcnow
from app.services import keys as key_service
from app.services.errors import NotFound, ServiceError
from app.services.markdown import render

MAX_MESSAGES = 200
MAX_TEXT = 200_000            # characters per message
MAX_IMAGE_BYTES = 8 * 2**20   # one data-URL image
MAX_TOOLS = 64
RENDER_EVERY_S = 0.12         # how often a streaming answer is re-rendered as markdown
DATA_URL = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]+$")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ROLES = ("user", "assistant", "tool")


class PlaygroundError(ServiceError):
    status = 400
    code = "invalid_playground_request"


# ----------------------------------------------------------------------------- the user's key
def key_for(user: User) -> GatewayKey:
    """The user's playground key, created on first use. A key an admin revoked is not
    silently replaced: the page says so instead."""
    profile = db.session.get(PlaygroundProfile, user.id)
    if profile is not None:
        key = db.session.get(GatewayKey, profile.key_id)
        if key is not None:
            return key
    key, _raw = key_service.create(  # the secret is discarded: the page calls in-process
        {"name": f"Playground · {user.username}"[:120], "scopes": ["chat"],
         "tags": {"playground": user.username[:200]}}, actor=user.username)
    if profile is None:
        db.session.add(PlaygroundProfile(user_id=user.id, key_id=key.id))
    else:
        profile.key_id = key.id
    db.session.commit()
    return key


# ----------------------------------------------------------------------------- model picker
@dataclass
class PickerModel:
    name: str
    providers: list[str]
    streaming: bool
    tools: bool
    vision: bool
    json: bool
    context_window: int | None
    input_price: str
    output_price: str
    deployments: int


def picker(snap, key) -> list[tuple[str, list[PickerModel]]]:
    """Enabled chat models this key may use, grouped by provider (names served by several
    providers form a 'Routing groups' section)."""
    groups: dict[str, list[PickerModel]] = {}
    for name, routes in sorted(snap.by_name.items()):
        chat = [r for r in routes if r.kind == "chat"]
        if not chat or not key.may_use(name):
            continue
        providers = sorted({r.provider_name for r in chat})
        caps = frozenset().union(*(r.capabilities for r in chat))
        windows = [r.context_window for r in chat if r.context_window]
        first = chat[0]
        entry = PickerModel(
            name=name, providers=providers, streaming=all(r.supports_streaming for r in chat),
            tools="tools" in caps, vision="vision" in caps, json="json" in caps,
            context_window=min(windows) if windows else None,
            input_price=_price(first.input_price), output_price=_price(first.output_price),
            deployments=len(chat))
        section = providers[0] if len(providers) == 1 else "Routing groups (several providers)"
        groups.setdefault(section, []).append(entry)
    return sorted(groups.items(), key=lambda kv: (kv[0].startswith("Routing groups"), kv[0].lower()))


def _price(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value else "0"
    return text


def picker_index(sections) -> dict[str, PickerModel]:
    return {m.name: m for _, models in sections for m in models}


def picker_json(sections) -> list[dict[str, Any]]:
    return [{"provider": provider, "models": [asdict(m) for m in models]}
            for provider, models in sections]


# ----------------------------------------------------------------------------- validation
def _number(params: dict, name: str, lo: float, hi: float) -> float | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PlaygroundError(f"{name} must be a number", field=name) from None
    if isinstance(value, bool) or not lo <= number <= hi:
        raise PlaygroundError(f"{name} must be between {lo:g} and {hi:g}", field=name)
    return number


def _integer(params: dict, name: str, lo: int, hi: int) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise PlaygroundError(f"{name} must be a whole number", field=name) from None
    if isinstance(value, bool) or not lo <= number <= hi:
        raise PlaygroundError(f"{name} must be between {lo} and {hi}", field=name)
    return number


def _stops(value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = [s for s in value.split("\n")]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise PlaygroundError("stop sequences must be text, one per line", field="stop")
    stops = [s.replace("\\n", "\n") for s in value if s != ""]
    if len(stops) > 4 or any(len(s) > 200 for s in stops):
        raise PlaygroundError("at most 4 stop sequences of up to 200 characters", field="stop")
    return stops or None


def params_from(raw: Any) -> dict[str, Any]:
    """The parameters panel, checked, as OpenAI request fields."""
    raw = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for name, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = _number(raw, name, lo, hi)
        if value is not None:
            out[name] = value
    max_tokens = _integer(raw, "max_tokens", 1, 1_000_000)
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    seed = _integer(raw, "seed", -(2**63), 2**63 - 1)
    if seed is not None:
        out["seed"] = seed
    stops = _stops(raw.get("stop"))
    if stops:
        out["stop"] = stops
    if raw.get("json_mode") in (True, "true", "on", "1"):
        out["response_format"] = {"type": "json_object"}
    return out


def tools_from(raw: Any) -> list[dict[str, Any]] | None:
    """Tool definitions typed as JSON: OpenAI's `tools` array (bare function objects are
    wrapped)."""
    if raw in (None, "", []):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise PlaygroundError(f"tools is not valid JSON: {exc}", field="tools") from None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or len(raw) > MAX_TOOLS:
        raise PlaygroundError(f"tools must be a JSON array of at most {MAX_TOOLS} tools", field="tools")
    tools = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise PlaygroundError(f"tools[{i}] must be an object", field="tools")
        fn = tool.get("function") if tool.get("type") == "function" else tool
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not TOOL_NAME.match(fn["name"]):
            raise PlaygroundError(f"tools[{i}] needs a name of letters, digits, _ or - "
                                  "(at most 64)", field="tools")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise PlaygroundError(f"tools[{i}].parameters must be a JSON schema object", field="tools")
        clean = {"name": fn["name"], "parameters": params}
        if isinstance(fn.get("description"), str):
            clean["description"] = fn["description"][:2000]
        tools.append({"type": "function", "function": clean})
    return tools


def _content(content: Any, i: int) -> Any:
    if isinstance(content, str):
        if len(content) > MAX_TEXT:
            raise PlaygroundError(f"message {i + 1} is longer than {MAX_TEXT} characters", field="messages")
        return content
    if not isinstance(content, list) or not content:
        raise PlaygroundError(f"message {i + 1} has no content", field="messages")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str) and len(part["text"]) <= MAX_TEXT:
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            url = part["image_url"].get("url")
            if not isinstance(url, str):
                raise PlaygroundError("an image needs a URL", field="image")
            if url.startswith("data:"):
                if len(url) > MAX_IMAGE_BYTES * 4 // 3 + 100 or not DATA_URL.match(url[:64] + "A"):
                    raise PlaygroundError("images must be PNG, JPEG, GIF or WebP of at most 8 MB",
                                          field="image")
            elif not re.match(r"^https?://[^\s]{1,2000}$", url):
                raise PlaygroundError("image URLs must start with http:// or https://", field="image")
            detail = part["image_url"].get("detail")
            img = {"url": url, **({"detail": detail} if detail in ("low", "high", "auto") else {})}
            parts.append({"type": "image_url", "image_url": img})
        else:
            raise PlaygroundError(f"message {i + 1} has a part that is not text or an image",
                                  field="messages")
    return parts


def messages_from(raw: Any) -> list[dict[str, Any]]:
    """The conversation as the page holds it, checked; `meta` (per-answer figures) is kept
    for storage and stripped before the request is sent."""
    if not isinstance(raw, list) or not raw:
        raise PlaygroundError("write a message first", field="messages")
    if len(raw) > MAX_MESSAGES:
        raise PlaygroundError(f"a conversation may have at most {MAX_MESSAGES} messages", field="messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise PlaygroundError(f"message {i + 1} must be a user, assistant or tool message",
                                  field="messages")
        msg: dict[str, Any] = {"role": m["role"]}
        calls = m.get("tool_calls")
        if m["role"] == "assistant" and calls:
            if not isinstance(calls, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("function"), dict) for c in calls):
                raise PlaygroundError(f"message {i + 1} has malformed tool calls", field="messages")
            msg["tool_calls"] = [{"id": str(c.get("id") or f"call_{i}_{j}")[:100], "type": "function",
                                  "function": {"name": str(c["function"].get("name", ""))[:64],
                                               "arguments": str(c["function"].get("arguments", ""))[:MAX_TEXT]}}
                                 for j, c in enumerate(calls)]
            msg["content"] = m.get("content") if isinstance(m.get("content"), str) and m.get("content") else None
        else:
            msg["content"] = _content(m.get("content"), i)
        if m["role"] == "tool":
            if not isinstance(m.get("tool_call_id"), str) or not m["tool_call_id"]:
                raise PlaygroundError(f"tool result {i + 1} must name its tool call", field="messages")
            msg["tool_call_id"] = m["tool_call_id"][:100]
            if not isinstance(msg["content"], str):
                raise PlaygroundError("a tool result must be text", field="messages")
        if m["role"] == "assistant" and isinstance(m.get("meta"), dict):
            msg["meta"] = {k: v for k, v in m["meta"].items() if isinstance(k, str) and len(k) < 40
                           and (v is None or isinstance(v, (str, int, float, bool, list)))}
        out.append(msg)
    if out[-1]["role"] == "assistant":
        raise PlaygroundError("the last message must be yours (or a tool result)", field="messages")
    return out


@dataclass
class ChatRequest:
    """A checked playground request: what is sent, and what is stored."""

    model: str
    system: str | None
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    tools: list[dict[str, Any]] | None
    stream: bool
    conversation_id: int | None = None
    save: bool = True
    no_cache: bool = False
    raw_params: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The OpenAI chat request, exactly as an application would send it."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages += [{k: v for k, v in m.items() if k != "meta"} for m in self.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages, **self.params}
        if self.tools:
            body["tools"] = self.tools
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body


def parse_request(payload: Any, models: dict[str, PickerModel]) -> ChatRequest:
    if not isinstance(payload, dict):
        raise PlaygroundError("the request must be a JSON object")
    model = payload.get("model")
    if not isinstance(model, str) or model not in models:
        raise PlaygroundError("choose one of the models in the list", field="model")
    info = models[model]
    system = payload.get("system")
    if system is not None and (not isinstance(system, str) or len(system) > MAX_TEXT):
        raise PlaygroundError("the system prompt must be text", field="system")
    messages = messages_from(payload.get("messages"))
    tools = tools_from(payload.get("tools"))
    if tools and not info.tools:
        raise PlaygroundError(f"{model} does not support tools; clear the tool definitions or "
                              "pick a model with the tools badge", field="tools")
    if not info.vision and any(isinstance(m.get("content"), list) and any(
            p.get("type") == "image_url" for p in m["content"]) for m in messages):
        raise PlaygroundError(f"{model} does not accept images; pick a model with the vision badge",
                              field="image")
    cid = payload.get("conversation_id")
    if cid is not None and (isinstance(cid, bool) or not isinstance(cid, int) or not 0 < cid < 2**62):
        raise PlaygroundError("unknown conversation", field="conversation_id")
    raw_params = payload.get("params") if isinstance(payload.get("params"), dict) else {}
    return ChatRequest(model=model, system=(system or "").strip() or None, messages=messages,
                       params=params_from(raw_params), tools=tools, stream=info.streaming,
                       conversation_id=cid, save=payload.get("save", True) is not False,
                       no_cache=payload.get("no_cache") is True,
                       raw_params={k: raw_params.get(k) for k in (
                           "temperature", "top_p", "max_tokens", "stop", "json_mode", "seed")})


# ----------------------------------------------------------------------------- conversations
def _title(messages: list[dict[str, Any]]) -> str:
    for m in messages:
        if m["role"] == "user":
            content = m["content"]
            text = content if isinstance(content, str) else " ".join(
                p.get("text", "") for p in content if p.get("type") == "text") or "Image"
            text = " ".join(text.split())
            return (text[:77] + "…") if len(text) > 78 else (text or "Untitled")
    return "Untitled"


def conversations(user_id: int, limit: int = 100) -> list[PlaygroundConversation]:
    stmt = (db.select(PlaygroundConversation).where(PlaygroundConversation.user_id == user_id)
            .order_by(PlaygroundConversation.updated_at.desc(), PlaygroundConversation.id.desc())
            .limit(limit))
    return list(db.session.scalars(stmt))


def conversation(user_id: int, conversation_id: int) -> PlaygroundConversation:
    """Only the owner's: another user's id is a 404, not a 403 (ids reveal nothing)."""
    conv = db.session.get(PlaygroundConversation, conversation_id)
    if conv is None or conv.user_id != user_id:
        raise NotFound("conversation not found", code="conversation_not_found")
    return conv


def save_request(user_id: int, req: ChatRequest) -> PlaygroundConversation | None:
    """Store the conversation as sent (before the answer streams), so a stopped or failed
    answer still leaves the user's turn saved."""
    if not req.save:
        return None
    conv = conversation(user_id, req.conversation_id) if req.conversation_id else None
    if conv is None:
        conv = PlaygroundConversation(user_id=user_id, created_at=utcnow())
        db.session.add(conv)
    conv.title = _title(req.messages)
    conv.model = req.model
    conv.system_prompt = req.system
    conv.params = {k: v for k, v in req.raw_params.items() if v not in (None, "")}
    conv.tools = req.tools
    conv.messages = req.messages
    conv.updated_at = utcnow()
    db.session.commit()
    return conv


def append_answer(conversation_id: int, expected_len: int, answer: dict[str, Any]) -> None:
    """Add the assistant's answer, unless the conversation changed meanwhile (edited in
    another tab): then the stale answer is dropped rather than misplaced."""
    conv = db.session.get(PlaygroundConversation, conversation_id)
    if conv is None or len(conv.messages or []) != expected_len:
        return
    conv.messages = [*conv.messages, answer]
    conv.updated_at = utcnow()
    db.session.commit()


def delete(user_id: int, conversation_id: int) -> None:
    conv = conversation(user_id, conversation_id)
    db.session.delete(conv)
    db.session.commit()


def delete_all(user_id: int) -> int:
    rows = conversations(user_id, limit=10_000)
    for conv in rows:
        db.session.delete(conv)
    db.session.commit()
    return len(rows)


def state(conv: PlaygroundConversation | None) -> dict[str, Any] | None:
    """A saved conversation for the page (assistant answers pre-rendered, sanitised)."""
    if conv is None:
        return None
    messages = []
    for m in conv.messages or []:
        m = dict(m)
        if m["role"] == "assistant" and isinstance(m.get("content"), str):
            m["html"] = str(render(m["content"]))
        messages.append(m)
    return {"id": conv.id, "title": conv.title, "model": conv.model, "system": conv.system_prompt or "",
            "params": conv.params or {}, "tools": json.dumps(conv.tools, indent=2) if conv.tools else "",
            "messages": messages}


def export(conv: PlaygroundConversation) -> dict[str, Any]:
    """The conversation as an OpenAI chat request (messages in OpenAI's format, no figures)."""
    req = ChatRequest(model=conv.model, system=conv.system_prompt, messages=conv.messages or [],
                      params=params_from(conv.params or {}), tools=conv.tools, stream=False)
    return req.body()


# ----------------------------------------------------------------------------- snippets
def snippets(body: dict[str, Any], base_url: str) -> dict[str, str]:
    """A ready `curl` and Python `openai` call for the current request (the key is read from
    $GATEWAY_API_KEY: the playground's own key is never shown)."""
    payload = json.dumps(body, indent=2, ensure_ascii=False)
    curl = (f"curl {base_url}/chat/completions \\\n"
            "  -H \"Authorization: Bearer $GATEWAY_API_KEY\" \\\n"
            "  -H \"Content-Type: application/json\" \\\n"
            f"  -d @- <<'JSON'\n{payload}\nJSON\n")
    args = {k: v for k, v in body.items() if k not in ("model", "messages")}
    lines = ["import os", "", "from openai import OpenAI", "",
             f"client = OpenAI(base_url={base_url!r}, api_key=os.environ[\"GATEWAY_API_KEY\"])",
             "response = client.chat.completions.create(",
             f"    model={body['model']!r},",
             "    messages=" + _py(body["messages"], 4) + ","]
    for name, value in args.items():
        lines.append(f"    {name}={_py(value, 4)},")
    lines.append(")")
    if body.get("stream"):
        lines += ["for chunk in response:",
                  "    if chunk.choices and chunk.choices[0].delta.content:",
                  "        print(chunk.choices[0].delta.content, end=\"\", flush=True)",
                  "    elif chunk.usage:",
                  "        print(\"\\n\", chunk.usage)"]
    else:
        lines.append("print(response.choices[0].message.content)")
    return {"curl": curl, "python": "\n".join(lines) + "\n"}


def _py(value: Any, indent: int) -> str:
    text = pprint.pformat(value, width=88 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


# ----------------------------------------------------------------------------- the stream
def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def readable_error(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """What the chat shows for a refusal or failure (the proxy's OpenAI error, explained)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    message = str(error.get("message") or "The request failed.")
    code = error.get("code") or error.get("type")
    retry = headers.get("retry-after")
    if status == 429:
        title = "Rate limit reached"
        hint = f"Try again in {retry} s." if retry else "Wait a moment and try again."
    elif status == 402 or code == "insufficient_quota":
        title, hint = "Budget exhausted", "Ask an admin to raise your playground key's budget."
    elif code == "content_policy":
        title, hint = "Blocked by the content policy", "Remove the sensitive content and retry."
    elif status in (401, 403):
        title, hint = "Your playground key cannot be used", "Ask an admin to check your key."
    elif status == 404:
        title, hint = "Model not available", "Pick another model."
    elif status == 499:
        title, hint = "Stopped", ""
    elif status >= 500:
        title = "Upstream timed out" if status == 504 else "Upstream unavailable"
        hint = "The provider did not answer; try again or pick another model."
    else:
        title, hint = "Request refused", ""
    return {"status": status, "code": code, "title": title, "message": message, "hint": hint,
            "retry_after": retry}


class AnswerStream:
    """Turns the proxy's result (JSON or SSE chunks) into the page's events:
    `start`, `delta` (text / tool call pieces), `render` (sanitised markdown so far),
    `error`, and `done` with the answer's figures. `on_finish(answer_or_None)` runs once, in
    a `finally`, even when the browser stops the stream."""

    def __init__(self, call, result, started: dict[str, Any],
                 on_finish: Callable[[dict[str, Any] | None], None] | None = None):
        self.call, self.result, self.started, self.on_finish = call, result, started, on_finish
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None
        self.stopped = False

    # -- pieces -------------------------------------------------------------------------
    def _take(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """Fold one OpenAI chunk in; returns the delta event for it (or None)."""
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        event: dict[str, Any] = {}
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or choice.get("message") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                event["text"] = event.get("text", "") + content
            for j, tc in enumerate(delta.get("tool_calls") or ()):
                idx = tc.get("index", j)
                slot = self.tool_calls.setdefault(idx, {"id": None, "type": "function",
                                                        "function": {"name": "", "arguments": ""}})
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
                event.setdefault("tool_calls", []).append(
                    {"index": idx, "id": slot["id"], "name": slot["function"]["name"],
                     "arguments": slot["function"]["arguments"]})
        return event or None

    def _render(self) -> bytes:
        return sse("render", {"html": str(render("".join(self.text)))})

    def figures(self) -> dict[str, Any]:
        call, route = self.call, self.call.route
        usage = self.usage or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        cost = Decimal(0) if call.cache_hit or route is None else route.cost(prompt, completion, cached)
        latency = call.elapsed_ms()
        ttft = call.ttfb_ms
        gen_s = (latency - (ttft or 0)) / 1000
        return {
            "request_id": call.request_id, "model": route.name if route else None,
            "deployment": f"{route.provider_name} / {route.upstream_id}" if route else None,
            "attempts": list(call.attempts), "cache": call.cache_status or ("HIT" if call.cache_hit else None),
            "prompt_tokens": prompt, "completion_tokens": completion,
            "cost_usd": format(cost, "f"), "latency_ms": round(latency, 1),
            "ttft_ms": round(ttft, 1) if ttft is not None else None,
            "tokens_per_s": round(completion / gen_s, 1) if completion and gen_s > 0.001 else None,
            "finish_reason": "stopped" if self.stopped else self.finish_reason,
        }

    def answer(self) -> dict[str, Any] | None:
        """The assistant message to store (None when nothing came back)."""
        text = "".join(self.text)
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        if not text and not calls:
            return None
        msg: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            msg["tool_calls"] = calls
        msg["meta"] = self.figures()
        if self.error:
            msg["meta"]["error"] = self.error["title"]
        return msg

    # -- the generator ----------------------------------------------------------------------
    def events(self) -> Iterator[bytes]:
        from app.services.completions import JSONResult
        inner = None
        try:
            yield sse("start", self.started)
            result = self.result
            if isinstance(result, JSONResult):
                obj = json.loads(result.body)
                if result.status >= 400:
                    self.error = readable_error(result.status, obj.get("error") or {}, result.headers)
                    yield sse("error", self.error)
                    return
                event = self._take(obj)
                if event:
                    yield sse("delta", event)
            else:
                inner = iter(result.chunks)
                last_render = time.monotonic()
                dirty = False
                for raw in inner:
                    for line in raw.split(b"\n"):
                        if not line.startswith(b"data: ") or line == b"data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        if "error" in chunk and not chunk.get("choices"):
                            self.error = readable_error(502, chunk["error"])
                            yield sse("error", self.error)
                            continue
                        event = self._take(chunk)
                        if event:
                            dirty = dirty or "text" in event
                            yield sse("delta", event)
                    if dirty and time.monotonic() - last_render >= RENDER_EVERY_S:
                        dirty, last_render = False, time.monotonic()
                        yield self._render()
            if self.text:
                yield self._render()
            yield sse("done", self.figures())
        except GeneratorExit:
            self.stopped = True
            raise
        finally:
            if inner is not None and hasattr(inner, "close"):
                inner.close()  # the proxy's finally: upstream closed, usage recorded
            if self.on_finish is not None:
                try:
                    self.on_finish(self.answer())
                except Exception:  # storing a transcript must never break the stream
                    import logging
                    logging.getLogger(__name__).exception("could not save playground answer")
