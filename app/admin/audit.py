"""Audit trail: who changed what, newest first, filtered by actor, action, entity type and date;
each change shown field by field, old → new (secrets arrive already masked as "***")."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, request
from sqlalchemy import func

from app.admin import access
from app.admin import queries
from app.admin.htmx import render
from app.extensions import db
from app.models import AuditLog
from app.services.audit import MASK

bp = Blueprint("audit", __name__, url_prefix="/audit")

FILTERS = ("entity", "actor", "action", "start", "end")
DETAIL_ACTIONS = {"delete", "rotate_keys", "login", "lockout"}  # values are facts, not [old, new]


@bp.get("")
@access.admin_area
def index():
    f = {k: (request.args.get(k) or "").strip() or None for k in FILTERS}
    page = audit_page(request.args.get("page", 1, type=int), **f)
    return render("admin/audit/index.html", "admin/audit/_table.html", page=page, f=f,
                  entity=f["entity"], actor=f["actor"], choices=choices())


@bp.context_processor
def helpers() -> dict[str, Any]:
    return {"field_changes": field_changes}


# ----------------------------------------------------------------------------- queries
def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None  # a half-typed date filters nothing rather than failing the page


def audit_page(page: int, per_page: int = 50, entity: str | None = None, actor: str | None = None,
               action: str | None = None, start: str | None = None, end: str | None = None):
    """Newest first; dates are whole UTC days, both ends included."""
    stmt = db.select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc())
    for value, column in ((entity, AuditLog.entity_type), (actor, AuditLog.actor), (action, AuditLog.action)):
        if value:
            stmt = stmt.where(column == value)
    if _day(start):
        stmt = stmt.where(AuditLog.at >= datetime.combine(_day(start), time()))
    if _day(end):
        stmt = stmt.where(AuditLog.at < datetime.combine(_day(end) + timedelta(days=1), time()))
    return db.paginate(stmt, page=page, per_page=per_page, max_per_page=200, error_out=False)


def choices() -> dict[str, list[str]]:
    def distinct(column) -> list[str]:
        # GROUP BY, not DISTINCT: PostgreSQL refuses DISTINCT ordered by an expression not selected
        return list(db.session.scalars(db.select(column).group_by(column).order_by(func.lower(column))))
    return {"entity": queries.audit_entity_types(), "actor": distinct(AuditLog.actor),
            "action": distinct(AuditLog.action)}


# ----------------------------------------------------------------------------- diffs
def _show(value: Any) -> str | None:
    """A stored value as text; None stays None (shown as "not set")."""
    if value is None or value == "" or value == {} or value == []:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_show(v) or "∅" for v in value) if all(
            not isinstance(v, (dict, list)) for v in value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _rows(field: str, old: Any, new: Any) -> list[dict[str, Any]]:
    """One row per changed leaf: {"limits": [{"rpm": 60}, {"rpm": 120}]} -> "limits.rpm 60 → 120"."""
    if isinstance(old, dict) or isinstance(new, dict):
        old_d = old if isinstance(old, dict) else {}
        new_d = new if isinstance(new, dict) else {}
        if (old is None or isinstance(old, dict)) and (new is None or isinstance(new, dict)) and (old_d or new_d):
            out = []
            for k in sorted(set(old_d) | set(new_d), key=str):
                if old_d.get(k) != new_d.get(k):
                    out.extend(_rows(f"{field}.{k}", old_d.get(k), new_d.get(k)))
            return out
    old_s, new_s = _show(old), _show(new)
    kind = "added" if old_s is None else "removed" if new_s is None else "changed"
    return [{"field": field, "old": old_s, "new": new_s, "kind": kind,
             "secret": MASK in (old_s, new_s)}]


def field_changes(diff: dict | None, action: str) -> dict[str, Any]:
    """An audit row's diff for the template: "changes" (field, old, new) for edits, or "facts"
    (field, value) for creations and for actions whose details are not before/after pairs."""
    diff = diff or {}
    pairs = action not in DETAIL_ACTIONS and all(
        isinstance(v, list) and len(v) == 2 for v in diff.values())
    if not pairs:
        return {"facts": [(k, _show(v) or "∅") for k, v in diff.items()], "changes": []}
    rows = [row for k, (old, new) in diff.items() for row in _rows(k, old, new)]
    if action in ("create", "import"):
        return {"facts": [(r["field"], r["new"]) for r in rows if r["new"] is not None], "changes": []}
    return {"facts": [], "changes": rows}
