from flask import Response, jsonify, request, stream_with_context

from app.admin import access
from app.api import bp
from app.extensions import db
from app.models import AuditLog, UsageRecord
from app.services import usage_query as uq
from app.services.errors import NotFound

FILTERS = ("model", "provider_id", "key_id", "owner")
LOG_FILTERS = ("start", "end", "key_id", "provider_id", "status", "model", "error_class", "outcome",
               "cache", "stream")


def _window():
    a = request.args
    return uq.window(a.get("range", "24h"), a.get("start"), a.get("end"))


def _filters(names):
    return {k: request.args[k] for k in names if request.args.get(k) not in (None, "")}


@bp.get("/usage/summary")
@access.usage
def usage_summary():
    return jsonify(uq.totals(_window(), _filters(FILTERS)))


@bp.get("/usage/timeseries")
@access.usage
def usage_timeseries():
    return jsonify(uq.timeseries(_window(), request.args.get("group_by") or None, _filters(FILTERS)))


@bp.get("/usage/breakdown")
@access.usage
def usage_breakdown():
    return jsonify({"object": "list", "by": request.args.get("by", "model"),
                    "data": uq.breakdown(_window(), request.args.get("by", "model"), _filters(FILTERS))})


@bp.get("/requests")
@access.ops
def request_log():
    a = request.args
    page = uq.requests_page(_filters(LOG_FILTERS), a.get("sort", "time"), a.get("order", "desc") != "asc",
                            a.get("page", 1, type=int), a.get("per_page", 50, type=int))
    return jsonify({"object": "list", "page": page["page"], "has_more": page["has_more"],
                    "data": [uq.record_dict(r) for r in page["rows"]]})


@bp.get("/requests/<int:record_id>")
@access.ops
def request_detail(record_id: int):
    r = db.session.get(UsageRecord, record_id)
    if r is None:
        raise NotFound(f"request {record_id} not found", code="request_not_found")
    from app.models import UsageBody
    body = db.session.scalar(db.select(UsageBody).where(UsageBody.request_id == r.request_id)) \
        if r.request_id else None
    return jsonify({**uq.record_dict(r),
                    "body": {"request": body.request, "response": body.response} if body else None})


@bp.get("/requests/export")
@access.ops
def request_export():
    fmt = request.args.get("format", "csv")
    lines = uq.export(_filters(LOG_FILTERS), fmt)
    first = next(lines, "")  # validates the arguments before the 200 goes out
    mime = "text/csv" if fmt == "csv" else "application/x-ndjson"

    def body():
        yield first
        yield from lines
    return Response(stream_with_context(body()), mimetype=mime,
                    headers={"Content-Disposition": f"attachment; filename=requests.{fmt}"})


@bp.get("/audit")
@access.admin_area
def audit_log():
    a = request.args
    stmt = db.select(AuditLog).order_by(AuditLog.id.desc())
    for name, col in (("actor", AuditLog.actor), ("action", AuditLog.action),
                      ("entity_type", AuditLog.entity_type)):
        if a.get(name):
            stmt = stmt.where(col == a[name])
    limit = max(1, min(a.get("limit", 100, type=int), 1000))
    before = a.get("before", type=int)
    if before and 0 < before <= 2**31 - 1:  # INTEGER ids
        stmt = stmt.where(AuditLog.id < before)
    rows = db.session.scalars(stmt.limit(limit)).all()
    return jsonify({"object": "list", "data": [
        {"id": r.id, "at": r.at.isoformat() + "Z", "actor": r.actor, "action": r.action,
         "entity_type": r.entity_type, "entity_id": r.entity_id, "entity_name": r.entity_name,
         "diff": r.diff, "ip": r.ip} for r in rows]})
