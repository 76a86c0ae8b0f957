"""POST /v1/responses over the proxy's chat flow (routing, limits, budgets, cache, sensitivity,
accounting: exactly one usage record, endpoint "responses"), plus stored responses.

The Responses body is translated into the internal chat body and handed to ``Proxy.chat``; its
JSON answer or SSE stream is translated back. A deployment whose adapter speaks the Responses API
itself (OpenAI, Azure's v1 surface, compatible servers configured so) gets the client's body
instead and its answer is passed through (``result.dialect``); routing, limits, budgets and
accounting are the same either way. Storage: only with ``store: true`` (this gateway's
default is not to store: "stateless first"; see README), in ``stored_responses``, per key.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any, Iterator

from app.extensions import db
from app.models import StoredResponse, utcnow
from app.providers.common import dumps, loads
from app.providers.openai_responses import DIALECT
from app.services.completions import Call, JSONResult, Proxy, ProxyError, StreamResult
from app.services.runtime import Snapshot

from . import translate as t
from .stream import EventWriter, translate_stream

log = logging.getLogger(__name__)
MAX_CHAIN = 500


# ------------------------------------------------------------------------------ storage
def _not_found(resp_id: str) -> ProxyError:
    return ProxyError(404, f"Response with id '{resp_id}' not found.", param="response_id",
                      code="not_found", error_class="not_found")


def load(key_id: int, resp_id: str) -> StoredResponse | None:
    row = db.session.get(StoredResponse, resp_id) if isinstance(resp_id, str) and len(resp_id) <= 64 else None
    return row if row is not None and row.key_id == key_id else None


def history(key_id: int, resp_id: str) -> list[dict[str, Any]]:
    """The items of a stored chain, oldest first: each turn's input then its output."""
    chain: list[StoredResponse] = []
    current: str | None = resp_id
    while current and len(chain) < MAX_CHAIN:
        row = load(key_id, current)
        if row is None:
            if not chain:
                raise ProxyError(400, f"Previous response with id '{resp_id}' not found. Only "
                                 "responses created with store: true by this key can be continued.",
                                 param="previous_response_id", code="previous_response_not_found")
            break
        chain.append(row)
        current = row.previous_response_id
    db.session.rollback()  # end the read: nothing is held across the upstream call
    items: list[dict[str, Any]] = []
    for row in reversed(chain):
        items += list(row.input_items or [])
        items += [_as_input(i) for i in (row.response or {}).get("output") or []]
    return items


def _as_input(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("status",)}


def _redact(items: Any, inspector) -> Any:
    """Every text-bearing string of items / a response, redacted."""
    if isinstance(items, list):
        return [_redact(i, inspector) for i in items]
    if isinstance(items, dict):
        out = {}
        for k, v in items.items():
            if k in ("text", "content", "output", "arguments", "instructions", "refusal") and isinstance(v, str):
                out[k] = inspector.redact_text(v)[0]
            else:
                out[k] = _redact(v, inspector)
        return out
    return items


def save(app, snap: Snapshot, call: Call, body: dict[str, Any], response: dict[str, Any]) -> None:
    """Store one finished response (a failure is logged: the client already has its answer).

    Runs in its own app context: a stream's generator has none, and holds no session."""
    with app.app_context():
        _save(snap, call, body, response)


def _save(snap: Snapshot, call: Call, body: dict[str, Any], response: dict[str, Any]) -> None:
    items = t.input_items(body)
    policy = {**(snap.settings.get("sensitivity") or {}), **(call.key.sensitivity or {})}
    if policy.get("action") == "redact":
        from app.services.inspection import inspector_for
        inspector = inspector_for(policy)
        items, response = _redact(items, inspector), _redact(response, inspector)
    try:
        db.session.add(StoredResponse(id=response["id"], key_id=call.key.id, model=response["model"],
                                      previous_response_id=body.get("previous_response_id"),
                                      input_items=items, response=response))
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("could not store response %s", response.get("id"))
    finally:
        db.session.remove()


def delete(key_id: int, resp_id: str) -> dict[str, Any]:
    row = load(key_id, resp_id)
    if row is None:
        raise _not_found(resp_id)
    db.session.delete(row)
    db.session.commit()
    return {"id": resp_id, "object": "response.deleted", "deleted": True}


def get(key_id: int, resp_id: str) -> dict[str, Any]:
    row = load(key_id, resp_id)
    if row is None:
        raise _not_found(resp_id)
    return row.response


def prune(days: int, batch: int = 5000) -> int:
    """Delete stored responses older than ``days`` in bounded batches."""
    cutoff = utcnow() - timedelta(days=days)
    total = 0
    while True:
        ids = db.session.scalars(db.select(StoredResponse.id).where(StoredResponse.created_at < cutoff)
                                 .limit(batch)).all()
        if not ids:
            return total
        db.session.execute(db.delete(StoredResponse).where(StoredResponse.id.in_(ids)))
        db.session.commit()
        total += len(ids)


# ------------------------------------------------------------------------------ the flow
def native_body(body: dict[str, Any], past: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The body for a deployment that speaks the Responses API itself: the client's, with a
    stored chain expanded into ``input`` (the upstream stores nothing: see openai_responses).
    Replayed items lose their upstream ids (not stored there) and reasoning items without
    ``encrypted_content`` (the upstream could not resolve them)."""
    if not past:
        return body
    replay = [{k: v for k, v in item.items() if k != "id"} for item in past
              if not (item.get("type") == "reasoning" and not item.get("encrypted_content"))]
    return {**body, "input": replay + t.input_items(body)}


def _own(resp: dict[str, Any], resp_id: str, store: bool, prev: str | None) -> None:
    """A passed-through response under the gateway's id (stored responses are the gateway's:
    an upstream id is neither stored there nor guaranteed unique across providers)."""
    resp["id"], resp["store"], resp["previous_response_id"] = resp_id, store, prev


def _native_events(chunks, resp_id: str, store: bool, prev: str | None,
                   on_final) -> Iterator[bytes]:
    """A native Responses stream with the response snapshots made the gateway's own (``_own``);
    the finished response is handed to ``on_final``."""
    final = None
    try:
        for piece in chunks:
            if piece.startswith(b"event: response.") and b"\ndata: " in piece:
                head, _, data = piece.partition(b"\ndata: ")
                try:
                    ev = loads(data)
                except ValueError:
                    ev = None
                resp = ev.get("response") if isinstance(ev, dict) else None
                if isinstance(resp, dict):
                    _own(resp, resp_id, store, prev)
                    if ev.get("type") in ("response.completed", "response.incomplete"):
                        final = resp
                    piece = head + b"\ndata: " + dumps(ev) + b"\n\n"
            yield piece
        if final is not None:
            on_final(final)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def create(proxy: Proxy, snap: Snapshot, call: Call, body: dict[str, Any],
           headers=None) -> JSONResult | StreamResult:
    """One Responses API call through the chat flow (passed through to deployments that speak
    the Responses API natively, translated for the others)."""
    call.model_name = body.get("model") if isinstance(body.get("model"), str) else None
    try:
        t.validate(body)
        prev = body.get("previous_response_id")
        past = history(call.key.id, prev) if prev else None
        chat = t.to_chat(body, past)
        native = native_body(body, past)
    except ProxyError as err:
        return proxy.fail(call, err)
    store = body.get("store") is True
    from flask import current_app
    app = current_app._get_current_object()
    resp_id = t.new_id("resp")
    result = proxy.chat(snap, call, chat, headers, native=(DIALECT, native))
    if result.dialect == DIALECT:
        if isinstance(result, StreamResult):
            return StreamResult(_native_events(result.chunks, resp_id, store, prev,
                                               lambda r: store and save(app, snap, call, body, r)),
                                result.headers)
        obj = loads(result.body)
        _own(obj, resp_id, store, prev)
        if store:
            save(app, snap, call, body, obj)
        return JSONResult(200, dumps(obj), result.headers)
    model = call.route.name if call.route is not None else body["model"]
    envelope = t.envelope(body, resp_id, int(time.time()), model, store)
    if isinstance(result, JSONResult):
        if result.status >= 400:
            return result
        obj = loads(result.body)
        items, reason = t.output_items(obj)
        resp = t.finish(envelope, items, reason, t.usage_of(obj.get("usage")))
        if store:
            save(app, snap, call, body, resp)
        return JSONResult(200, dumps(resp), result.headers)

    def stored(writer: EventWriter) -> None:
        if store and writer.response.get("status") in ("completed", "incomplete"):
            save(app, snap, call, body, writer.response)

    return StreamResult(translate_stream(result.chunks, EventWriter(envelope), stored),
                        result.headers)
