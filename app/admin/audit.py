"""Audit trail: who changed what, newest first (secrets arrive already masked)."""
from __future__ import annotations

from flask import Blueprint, request

from app.admin import queries
from app.admin.htmx import render

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.get("")
def index():
    entity = request.args.get("entity") or None
    actor = request.args.get("actor") or None
    page = queries.audit_page(request.args.get("page", 1, type=int), entity_type=entity, actor=actor)
    return render("admin/audit/index.html", "admin/audit/_table.html", page=page, entity=entity,
                  actor=actor, entity_types=queries.audit_entity_types())
