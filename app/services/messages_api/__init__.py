"""POST /v1/messages (the Anthropic Messages API) over the proxy's chat flow: routing, limits,
budgets, cache, content policy and accounting exactly as /v1/chat/completions (one usage record,
endpoint "messages"). Anthropic deployments get the client's body as is (pass-through, see
app.providers.anthropic_messages); every other provider type gets its chat translation and the
answer is translated back, JSON or Anthropic's event stream.
"""
from __future__ import annotations

from typing import Any

from app.providers.anthropic_messages import DIALECT
from app.providers.common import dumps, loads
from app.services.completions import Call, JSONResult, Proxy, ProxyError, StreamResult, estimate_prompt, \
    estimate_tokens, resolve
from app.services.runtime import Snapshot

from . import translate as t
from .stream import EventWriter, translate_stream


def create(proxy: Proxy, snap: Snapshot, call: Call, body: dict[str, Any],
           headers=None) -> JSONResult | StreamResult:
    call.model_name = body.get("model") if isinstance(body.get("model"), str) else None
    try:
        t.validate(body)
        chat = t.to_chat(body)
    except ProxyError as err:
        return proxy.fail(call, err)
    result = proxy.chat(snap, call, chat, headers, native=(DIALECT, body))
    if result.dialect == DIALECT or (isinstance(result, JSONResult) and result.status >= 400):
        return result
    model = call.route.name if call.route is not None else body["model"]
    if isinstance(result, JSONResult):
        return JSONResult(200, dumps(t.from_chat(loads(result.body), model, body)), result.headers, DIALECT)
    writer = EventWriter(model, body, estimate_prompt(chat["messages"]))
    return StreamResult(translate_stream(result.chunks, writer), result.headers, DIALECT)


def count_tokens(snap: Snapshot, key, body: dict[str, Any]) -> dict[str, int]:
    """``{"input_tokens": N}``: the gateway's estimate (~4 characters a token) of the prompt the
    model would see, tools included; the model must exist for the key."""
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise ProxyError(400, "model: Field required", param="model")
    t.validate({**body, "max_tokens": 1})
    resolve(snap, key, body["model"], "chat")
    chat = t.to_chat({**body, "max_tokens": 1})
    tools = sum(len(dumps(x)) for x in chat.get("tools") or ())
    return {"input_tokens": estimate_prompt(chat["messages"]) + estimate_tokens(tools)}
