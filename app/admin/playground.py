"""Playground: chat with any model the signed-in user's key may use, through the proxy path.

Open to every signed-in role (testers are often viewers): each user's calls go through their
own gateway key, whose limits and budget an admin sets on the Keys page.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from flask_login import current_user

from app.admin import access
from app.admin.htmx import render
from app.services import playground as pg
from app.services import runtime
from app.services.errors import ServiceError
from app.services.validation import clamp_id

bp = Blueprint("playground", __name__, url_prefix="/playground")


def _context():
    """The user's key (plain values from the snapshot) and the models it may use."""
    key = pg.key_for(current_user)
    snap = runtime.cache().get()
    info = snap.keys_by_id.get(key.id)
    if info is None and key.revoked_at is None:  # created a moment ago: re-validate once
        snap = runtime.cache().refresh_soon(0)
        info = snap.keys_by_id.get(key.id)
    sections = pg.picker(snap, info) if info is not None else []
    return key, snap, info, sections


def _json_error(exc: ServiceError, status: int | None = None):
    body = {"error": {"message": exc.message, "code": exc.code, "param": exc.field}}
    return jsonify(body), status or exc.status


def _page(template: str, conv=None, **extra):
    key, snap, info, sections = _context()
    data = {"models": pg.picker_json(sections), "conversation": pg.state(conv),
            "urls": {"chat": url_for(".chat"), "snippet": url_for(".snippet"),
                     "list": url_for(".conversation_list"), "page": url_for(".index")},
            "key_usable": info is not None and info.active(runtime.utcnow())}
    return render(template, None, data=data, key=key, key_usable=data["key_usable"],
                  conversations=pg.conversations(current_user.id), current=conv, **extra)


@bp.get("")
@access.any_role
def index():
    conv = None
    cid = clamp_id(request.args.get("c", type=int))
    if cid:
        conv = pg.conversation(current_user.id, cid)
    return _page("admin/playground/index.html", conv)


@bp.get("/compare")
@access.any_role
def compare():
    return _page("admin/playground/compare.html")


@bp.get("/conversations")
@access.any_role
def conversation_list():
    """The sidebar list (htmx refreshes it after each answer)."""
    current = clamp_id(request.args.get("current", type=int))
    return render("admin/playground/_conversations.html", "admin/playground/_conversations.html",
                  conversations=pg.conversations(current_user.id), current_id=current)


@bp.post("/conversations/<int:conversation_id>/delete")
@access.any_role
def delete(conversation_id: int):
    pg.delete(current_user.id, conversation_id)
    current = clamp_id(request.args.get("current", type=int))
    response = render("admin/playground/_conversations.html", "admin/playground/_conversations.html",
                      conversations=pg.conversations(current_user.id),
                      current_id=None if current == conversation_id else current)
    if current == conversation_id:  # the open conversation is gone: start a new one
        response.headers["HX-Redirect"] = url_for(".index")
    return response


@bp.post("/conversations/delete-all")
@access.any_role
def delete_all():
    pg.delete_all(current_user.id)
    response = current_app.make_response(("", 204))
    response.headers["HX-Redirect"] = url_for(".index")
    return response


@bp.get("/conversations/<int:conversation_id>/export.json")
@access.any_role
def export(conversation_id: int):
    conv = pg.conversation(current_user.id, conversation_id)
    body = json.dumps(pg.export(conv), indent=2, ensure_ascii=False)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="conversation-{conv.id}.json"'})


@bp.post("/snippet")
@access.any_role
def snippet():
    """curl / Python for the request the page would send now."""
    _key, _snap, _info, sections = _context()
    try:
        req = pg.parse_request(request.get_json(silent=True), pg.picker_index(sections))
    except ServiceError as exc:
        return _json_error(exc)
    body = req.body()
    return jsonify({"request": body, **pg.snippets(body, request.host_url.rstrip("/") + "/v1")})


@bp.post("/chat")
@access.any_role
def chat():
    """Stream one answer as server-sent events (see `pg.AnswerStream` for the events)."""
    from app.proxy import proxy
    from app.services.completions import Call

    key, snap, info, sections = _context()
    if info is None or not info.active(runtime.utcnow()):
        return _json_error(pg.PlaygroundError(
            "Your playground key is revoked, disabled or expired; ask an admin to re-enable it "
            f"(Keys → {key.name}).", code="playground_key_unusable"), 403)
    try:
        req = pg.parse_request(request.get_json(silent=True), pg.picker_index(sections))
        conv = pg.save_request(current_user.id, req)
    except ServiceError as exc:
        return _json_error(exc)
    call = Call(key=info, endpoint="chat")
    headers = {"Cache-Control": "no-cache"} if req.no_cache else {}
    result = proxy().chat(snap, call, req.body(), headers)
    started = {"conversation_id": conv.id if conv else None, "request_id": call.request_id,
               "model": req.model}
    on_finish = None
    if conv is not None:
        app, cid, expected = current_app._get_current_object(), conv.id, len(req.messages)

        def on_finish(answer):
            if answer is not None:
                with app.app_context():
                    pg.append_answer(cid, expected, answer)
    stream = pg.AnswerStream(call, result, started, on_finish)
    return Response(stream.events(), mimetype="text/event-stream", direct_passthrough=True,
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                             "x-request-id": call.request_id})
