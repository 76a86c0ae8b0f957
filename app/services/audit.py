"""Audit trail: every change writes one AuditLog row, with secrets masked."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import has_request_context, request

from app.extensions import db
from app.models import AuditLog

SECRET_MARKERS = ("secret", "password", "api_key", "token", "key_hash", "secrets_encrypted",
                  "access_key")
MASK = "***"


def is_secret_field(name: str) -> bool:
    name = name.lower()
    return any(m in name for m in SECRET_MARKERS)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def mask(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in data.items():
        if is_secret_field(k):
            out[k] = MASK if v not in (None, "", {}) else v
        elif isinstance(v, dict):
            out[k] = mask(v)
        else:
            out[k] = _plain(v)
    return out


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """{field: [old, new]} for fields that changed, secrets masked."""
    changes = {}
    for k in sorted(set(before) | set(after)):
        old, new = before.get(k), after.get(k)
        if old != new:
            if is_secret_field(k):
                changes[k] = ["***" if old else None, "***" if new else None]
            elif isinstance(old, dict) or isinstance(new, dict):
                changes[k] = [mask(old or {}), mask(new or {})]
            else:
                changes[k] = [_plain(old), _plain(new)]
    return changes


def record(actor: str, action: str, entity_type: str, entity_id: int | None,
           entity_name: str | None, changes: dict[str, Any] | None = None,
           ip: str | None = None) -> AuditLog:
    """Add an audit row to the session; the caller's commit makes it durable with the change."""
    if ip is None and has_request_context():
        ip = request.remote_addr
    row = AuditLog(actor=actor or "system", action=action, entity_type=entity_type,
                   entity_id=entity_id, entity_name=entity_name, diff=changes or {}, ip=ip)
    db.session.add(row)
    return row
